"""Generate the event-driven inference kernel for a stack of layers.

One Numba kernel runs a whole network, time-major, one sample per thread-iteration
(``prange`` over the batch), so each sample has its own clock: it runs ``steps[b]``
steps and then stops costing anything (the per-sample active mask).  Spikes propagate
as events: a layer's input current is its bias plus the weight rows of the inputs that
are active this step (recurrent layers also add the rows of their own spikes from the
previous step).  Non-spiking layers (LI readouts) pass their full output densely.  The
neuron updates call the same derived step functions as the training kernels.
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from types import ModuleType

from ..kernels.codegen import HEADER, _decorated, _load_module
from ..neurons.base import NeuronModel
from ..neurons.surrogate import SURROGATES


def render_network_module(signature: tuple[tuple[NeuronModel, bool], ...]) -> str:
    """Kernel source for layers ``[(model, recurrent), ...]``; the first layer reads input events."""
    names = "_".join(m.name + ("r" if r else "") for m, r in signature)
    parts = [HEADER.format(name=names, sg="atan", alpha=2.0)]
    # spike_grad is unused in inference but the derived VJPs are not emitted, so only steps are needed.
    parts.append(_decorated(inspect.getsource(SURROGATES["atan"])))
    parts.append(_decorated("def spike_grad(u):\n    return atan(u, ALPHA)\n"))
    seen = set()
    for m, _ in signature:
        if m.name not in seen:
            parts.append(_decorated(m.derived.step_src))
            seen.add(m.name)

    args = ["ev_ptr", "ev_idx", "ev_val", "T", "steps"]
    for li_, (m, rec) in enumerate(signature):
        args += [f"W{li_}", f"b{li_}"] + ([f"R{li_}"] if rec else [])
        args += [f"c{li_}_{c}" for c in m.coefs] + [f"i{li_}_{s}" for s in m.states]
        args += [f"rec{li_}", f"cnt{li_}"]
    args += ["record", "out"]
    L = len(signature)
    body = [
        "@numba.njit(parallel=True, cache=True)",
        f"def run_network({', '.join(args)}):",
        "    B = steps.shape[0]",
        "    for b in prange(B):",
    ]
    ind = " " * 8
    for li_, (m, rec) in enumerate(signature):
        N = f"W{li_}.shape[1]"
        body.append(f"{ind}N{li_} = {N}")
        body.append(f"{ind}cur{li_} = np.empty(N{li_}, dtype=out.dtype)")
        body.append(f"{ind}o{li_} = np.zeros(N{li_}, dtype=out.dtype)")
        for s in m.states:
            body.append(f"{ind}s{li_}_{s} = i{li_}_{s}.copy()")
        if m.spiking:
            body.append(f"{ind}sp{li_} = np.empty(N{li_}, dtype=np.int32)")
            body.append(f"{ind}nsp{li_} = 0")
        body.append(f"{ind}tot{li_} = 0")
    body.append(f"{ind}for t in range(steps[b]):")
    ind2 = " " * 12
    ind3 = " " * 16
    for li_, (m, rec) in enumerate(signature):
        body.append(f"{ind2}for j in range(N{li_}):")
        body.append(f"{ind3}cur{li_}[j] = b{li_}[j]")
        if rec:
            # Recurrent input: last step's spikes of this layer (before they are overwritten).
            body.append(f"{ind2}for q in range(nsp{li_}):")
            body.append(f"{ind3}r = sp{li_}[q]")
            body.append(f"{ind3}for j in range(N{li_}):")
            body.append(f"{ind3}    cur{li_}[j] += R{li_}[r, j]")
        if li_ == 0:
            body.append(f"{ind2}for e in range(ev_ptr[b * T + t], ev_ptr[b * T + t + 1]):")
            body.append(f"{ind3}k = ev_idx[e]")
            body.append(f"{ind3}a = ev_val[e]")
            body.append(f"{ind3}for j in range(N0):")
            body.append(f"{ind3}    cur0[j] += a * W0[k, j]")
        else:
            pm, _ = signature[li_ - 1]
            p = li_ - 1
            if pm.spiking:
                body.append(f"{ind2}for q in range(nsp{p}):")
                body.append(f"{ind3}k = sp{p}[q]")
                body.append(f"{ind3}for j in range(N{li_}):")
                body.append(f"{ind3}    cur{li_}[j] += W{li_}[k, j]")
            else:
                body.append(f"{ind2}for k in range(N{p}):")
                body.append(f"{ind3}a = o{p}[k]")
                body.append(f"{ind3}for j in range(N{li_}):")
                body.append(f"{ind3}    cur{li_}[j] += a * W{li_}[k, j]")
        st = ", ".join(f"s{li_}_{s}[j]" for s in m.states)
        cs = ", ".join(f"c{li_}_{c}[j]" for c in m.coefs)
        news = ", ".join(f"ns_{s}" for s in m.states)
        if m.spiking:
            body.append(f"{ind2}nsp{li_} = 0")
        body.append(f"{ind2}for j in range(N{li_}):")
        body.append(f"{ind3}ov, {news}, = {m.derived.step_name}(cur{li_}[j], {st}, {cs})")
        for s in m.states:
            body.append(f"{ind3}s{li_}_{s}[j] = ns_{s}")
        body.append(f"{ind3}o{li_}[j] = ov")
        if m.spiking:
            body.append(f"{ind3}if ov != 0.0:")
            body.append(f"{ind3}    sp{li_}[nsp{li_}] = j")
            body.append(f"{ind3}    nsp{li_} += 1")
        body.append(f"{ind3}if record:")
        body.append(f"{ind3}    rec{li_}[t, b, j] = ov")
        if m.spiking:
            body.append(f"{ind2}tot{li_} += nsp{li_}")
        if li_ == L - 1:
            body.append(f"{ind2}for j in range(N{li_}):")
            body.append(f"{ind3}out[t, b, j] = o{li_}[j]")
    for li_ in range(L):
        body.append(f"{ind}cnt{li_}[b] = tot{li_}")
    parts.append("\n".join(body) + "\n")
    return "".join(parts)


@lru_cache(maxsize=None)
def network_kernel(signature: tuple[tuple[NeuronModel, bool], ...]) -> ModuleType:
    """Compiled (lazily) event-driven kernel module for a layer signature."""
    stem = "net_" + "_".join(m.name + ("r" if r else "") for m, r in signature)
    return _load_module(render_network_module(signature), stem)


__all__ = ["render_network_module", "network_kernel"]

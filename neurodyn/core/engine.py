"""Generate the event-driven inference kernel for a stack of layers.

One Numba kernel runs a whole network, time-major, one sample per thread-iteration
(``prange`` over the samples listed in ``rows``), so each sample has its own clock: it runs
``steps[b]`` steps and then stops costing anything (the per-sample active mask); a sample not
in ``rows`` is not touched at all.  Spikes propagate as events: a layer's input current is its
bias plus the weight rows of the inputs that are active this step (input events come as CSR
lists, or are found in dense frames [T, B, N] as the sample reaches them) (recurrent layers
also add the rows of their own spikes from the previous step).  Non-spiking layers (LI
readouts) pass their full output densely.  The neuron updates call the same derived step
functions as the training kernels.

Early exit (``exit_code`` > 0): after every step the kernel adds the readout (last layer's
output) to a float64 running sum, evaluates the chosen confidence measure of the evidence
sum / t**gamma (``scales``; ``core.confidence``, compiled in from its one definition) and ends the sample's
time loop at the first step >= ``min_steps`` whose confidence is > ``threshold``.  The
sample's steps run, frozen prediction (argmax of the running sum) and last confidence are
written to ``stop``, ``pred`` and ``conf`` (and ``exited`` set); outputs after the stop step
stay 0.  With ``exit_code`` 0 the outputs are those of the full run (``pred`` is still filled).

State in and out: a call continues each sample from the state its arrays hold ([B, ...]:
neuron states ``st*``, last outputs ``ost*``, delay rings ``rg*``, the readout sum ``accs``,
steps run so far ``stop``, ``exited``) and leaves it there, so a run in chunks (``core.stream``)
equals one run over the whole input: the input, output and record rows [T, B] are the chunk's
steps t, while delay slots, evidence scales and ``min_steps`` count global steps ``stop[b] + t``.
A whole run is one call on a fresh state.  Counts (``cnt*``) are those of this call.
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from types import ModuleType

from ..kernels.codegen import HEADER, decorated, load_module, typed_prelude, typed_literals
from ..neurons.base import NeuronModel


def render_network_module(signature: tuple[tuple[NeuronModel, bool, bool, bool, bool], ...],
                          dtype: str = "float64") -> str:
    """Kernel source for layers ``[(model, recurrent, delayed, conv, pooled), ...]`` in ``dtype``
    (float32/float64); the first layer reads input events.  A delayed layer schedules each input
    event's weight row into per-synapse delay ring buffers (``kernels.delay_buffer``) instead of
    adding it now; a convolutional layer adds each event's kernel patch (``kernels.sparse_conv``);
    a pooled layer first pools its input events (``kernels.event_pool``) and takes the pooled
    frame's nonzero cells as its events."""
    from .confidence import LIMITS, MEASURES, softmax_sums, top2

    if dtype not in ("float32", "float64"):
        raise ValueError(f"network kernel dtype must be float32 or float64, got {dtype!r}")
    names = signature_name(signature)
    parts = [HEADER.format(name=names, sg="atan", alpha=2.0)]
    parts.append("from neurodyn.kernels.delay_buffer import ring_pop, ring_push\n")
    parts.append("from neurodyn.kernels.event_scan import row_nonzeros\n")
    parts.append("from neurodyn.kernels.row_adds import add_rows, add_unit_rows\n")
    parts.append("from neurodyn.kernels.event_pool import pool_events, pooled_events\n")
    parts.append("from neurodyn.kernels.sparse_conv import conv_frame, finish_frame\n")
    # Neuron steps with literals cast to the network's dtype (float32 stays float32, like the
    # dense kernels); the confidence code below works on the float64 running sum and is not cast.
    parts.append(typed_prelude(dtype))
    seen = set()
    for m, *_ in signature:
        if m.name not in seen:
            parts.append(decorated(typed_literals(m.derived.step_src)))
            seen.add(m.name)
    # Early exit: the confidence statistics and measures, compiled from their one definition.
    for fn in (top2, softmax_sums, *MEASURES.values(), *LIMITS.values()):
        parts.append(decorated(inspect.getsource(fn)))

    args = ["rows", "ev_ptr", "ev_idx", "ev_val", "X", "Xb", "xmask", "dense_in", "T", "steps"]
    for li_, (m, rec, dl, cv, pl) in enumerate(signature):
        args += ([f"pg{li_}"] if pl else []) + [f"W{li_}", f"b{li_}"] + ([f"cg{li_}"] if cv else [])
        args += ([f"R{li_}"] if rec else []) + ([f"off{li_}", f"S{li_}"] if dl else [])
        args += [f"c{li_}_{c}" for c in m.coefs] + [f"st{li_}_{s}" for s in m.states] + [f"ost{li_}"]
        args += ([f"rg{li_}"] if dl else []) + [f"rec{li_}", f"cnt{li_}"]
    args += ["record", "out", "exit_code", "threshold", "min_steps", "scales", "log_n", "accs", "stop", "exited",
             "pred", "conf", "conf_rec"]
    L = len(signature)
    last = L - 1
    body = [
        # error_model="numpy": no zero-division checks in the hot loops (IEEE results instead).
        '@numba.njit(parallel=True, cache=True, error_model="numpy")',
        f"def run_network({', '.join(args)}):",
        "    for q_ in prange(rows.shape[0]):",
        "        b = rows[q_]",
        "        t0 = stop[b]",
    ]
    ind = " " * 8
    for li_, (m, rec, dl, cv, pl) in enumerate(signature):
        # (geometry: pg = event_pool.pool_geometry, cg = sparse_conv.conv_args: [C, H, W, Co, Ho, Wo, sh, sw, ph, pw, ...])
        N = f"cg{li_}[3] * cg{li_}[4] * cg{li_}[5]" if cv else f"W{li_}.shape[1]"
        body.append(f"{ind}N{li_} = {N}")
        if cv:  # this sample's channels-last sums of one frame (sparse_conv), zeroed after each step
            body.append(f"{ind}acc{li_} = np.zeros((cg{li_}[4], cg{li_}[5] * cg{li_}[3]), dtype=out.dtype)")
        if pl:  # the pooled frame being summed, and its nonzero cells as events
            body.append(f"{ind}pb{li_} = np.zeros(pg{li_}[0] * pg{li_}[9] * pg{li_}[10], dtype=out.dtype)")
            body.append(f"{ind}pi{li_} = np.empty(pb{li_}.shape[0], dtype=np.int32)")
            body.append(f"{ind}pv{li_} = np.empty(pb{li_}.shape[0], dtype=out.dtype)")
        if dl:  # this sample's future input currents, [2 S N] (see delay_buffer), in place
            body.append(f"{ind}ring{li_} = rg{li_}[b]")
        body.append(f"{ind}cur{li_} = np.empty(N{li_}, dtype=out.dtype)")
        # Working copies of the state (local arrays: the update loop vectorizes as before),
        # written back after the sample's steps.
        body.append(f"{ind}o{li_} = ost{li_}[b].copy()")
        for s in m.states:
            body.append(f"{ind}s{li_}_{s} = st{li_}_{s}[b].copy()")
        if m.spiking:
            body.append(f"{ind}sp{li_} = np.empty(N{li_}, dtype=np.int32)")
            body.append(f"{ind}nsp{li_} = 0")
            if rec:  # the spike list of the last step run, for the recurrent input of the next
                body.append(f"{ind}for j in range(N{li_}):")
                body.append(f"{ind}    sp{li_}[nsp{li_}] = j")
                body.append(f"{ind}    nsp{li_} += o{li_}[j] != 0.0")
        body.append(f"{ind}tot{li_} = 0")
    _, _, _, cv0, pl0 = signature[0]
    body.append(f"{ind}NI = " + ("pg0[0] * pg0[1] * pg0[2]" if pl0 else "cg0[0] * cg0[1] * cg0[2]" if cv0
                                 else "W0.shape[0]"))
    body.append(f"{ind}act = np.empty(NI if dense_in else 1, dtype=np.int32)")
    body.append(f"{ind}actv = np.empty(NI if dense_in else 1, dtype=out.dtype)")
    for li_ in range(1, L):
        _, _, dl, cv, pl = signature[li_]
        if signature[li_ - 1][0].spiking and (dl or cv or pl):  # spike values for rings, patches, pools
            body.append(f"{ind}ones{li_} = np.ones(N{li_ - 1}, dtype=out.dtype)")
        if not signature[li_ - 1][0].spiking:
            body.append(f"{ind}nzi{li_} = np.empty(N{li_ - 1}, dtype=np.int32)")
            body.append(f"{ind}nzv{li_} = np.empty(N{li_ - 1}, dtype=out.dtype)")
    # Running sum of the readout (float64, like the torch-side running_logits).
    body.append(f"{ind}acc = accs[b].copy()")
    body.append(f"{ind}run_b = steps[b]")
    body.append(f"{ind}cf = 0.0")
    # Threshold 1.0 can never be exceeded: no per-step confidence unless it is recorded.
    body.append(f"{ind}check = exit_code != 0 and (threshold < 1.0 or record)")
    body.append(f"{ind}for t in range(steps[b]):")
    ind2 = " " * 12
    body.append(f"{ind2}tg = t0 + t")  # the sample's global step
    ind3 = " " * 16
    for li_, (m, rec, dl, cv, pl) in enumerate(signature):

        def add_events(idx: str, val: str, e0: str, e1: str, ind: str, li_: int = li_, dl: bool = dl,
                       cv: bool = cv, pl: bool = pl) -> list[str]:
            # events e0 <= e < e1 (input idx[e], value val[e]) into layer li_: pooled first (the
            # pooled frame's nonzero cells become the events), then their rows now (row_adds, the
            # sums of the training paths), their kernel patches, or into the delay ring buffers
            out = []
            if pl:
                out += [f"{ind}if {e1} > {e0}:",
                        f"{ind}    pool_events(pb{li_}, pg{li_}, {idx}, {val}, {e0}, {e1})",
                        f"{ind}    npl = pooled_events(pb{li_}, pg{li_}, pi{li_}, pv{li_})",
                        f"{ind}else:",
                        f"{ind}    npl = 0"]
                idx, val, e0, e1 = f"pi{li_}", f"pv{li_}", "0", "npl"
            if cv:
                g = f"cg{li_}"
                return out + [f"{ind}conv_frame(acc{li_}, W{li_}, {idx}, {val}, {e0}, {e1}, {g}[1], {g}[2], "
                              f"{g}[6], {g}[7], {g}[8], {g}[9], {g}[3])"]
            if dl:
                return out + [f"{ind}for e in range({e0}, {e1}):",
                              f"{ind}    ring_push(ring{li_}, tg % S{li_}, {idx}[e], {val}[e], W{li_}, off{li_})"]
            return out + [f"{ind}add_rows(cur{li_}, W{li_}, {idx}, {val}, {e0}, {e1})"]

        if not cv:  # (a convolution writes sums plus bias when its frame is finished)
            body.append(f"{ind2}for j in range(N{li_}):")
            body.append(f"{ind3}cur{li_}[j] = b{li_}[j]")
        if rec:
            # Recurrent input: last step's spikes of this layer (before they are overwritten).
            body.append(f"{ind2}for q in range(nsp{li_}):")
            body.append(f"{ind3}wr = R{li_}[sp{li_}[q]]")
            body.append(f"{ind3}for j in range(N{li_}):")
            body.append(f"{ind3}    cur{li_}[j] += wr[j]")
        if li_ == 0:
            # Input events from CSR lists, or found in the dense frame of this step (so a sample
            # that stops early never reads the rest of its frames either) by the shared scan
            # (event_scan.row_nonzeros, on the frame's bits Xb).
            body.append(f"{ind2}if dense_in:")
            body.append(f"{ind3}xr = X[t, b]")
            body.append(f"{ind3}nin = row_nonzeros(Xb[t, b], xmask, act)")
            body.append(f"{ind3}for q in range(nin):")
            body.append(f"{ind3}    actv[q] = xr[act[q]]")
            body += add_events("act", "actv", "0", "nin", ind3)
            body.append(f"{ind2}else:")
            body += add_events("ev_idx", "ev_val", "ev_ptr[b * T + t]", "ev_ptr[b * T + t + 1]", ind3)
        else:
            pm = signature[li_ - 1][0]
            p = li_ - 1
            if pm.spiking and not (dl or cv or pl):  # a spike is 1: add the rows without multiplies
                body.append(f"{ind2}add_unit_rows(cur{li_}, W{li_}, sp{p}, 0, nsp{p})")
            elif pm.spiking:
                body += add_events(f"sp{p}", f"ones{li_}", "0", f"nsp{p}", ind2)
            else:
                # A non-spiking layer's nonzero outputs are its events (as the event-driven
                # Linear of the training path finds them: the same rows, the same sums).
                body.append(f"{ind2}nnz = 0")
                body.append(f"{ind2}for k in range(N{p}):")
                body.append(f"{ind3}nzi{li_}[nnz] = k")
                body.append(f"{ind3}nzv{li_}[nnz] = o{p}[k]")
                body.append(f"{ind3}nnz += o{p}[k] != 0.0")
                body += add_events(f"nzi{li_}", f"nzv{li_}", "0", "nnz", ind2)
        if dl:  # the currents due now (scheduled at this or earlier steps)
            body.append(f"{ind2}ring_pop(ring{li_}, tg % S{li_}, S{li_}, cur{li_})")
        if cv:
            body.append(f"{ind2}finish_frame(acc{li_}, b{li_}, cur{li_})")
        st = ", ".join(f"s{li_}_{s}[j]" for s in m.states)
        cs = ", ".join(f"c{li_}_{c}[j]" for c in m.coefs)
        news = ", ".join(f"ns_{s}" for s in m.states)
        # The update loop has no branches or stores other than arrays, so it vectorizes;
        # the spike list is collected in a second pass.
        body.append(f"{ind2}for j in range(N{li_}):")
        body.append(f"{ind3}ov, {news}, = {m.derived.step_name}(cur{li_}[j], {st}, {cs})")
        for s in m.states:
            body.append(f"{ind3}s{li_}_{s}[j] = ns_{s}")
        body.append(f"{ind3}o{li_}[j] = ov")
        if m.spiking:
            body.append(f"{ind2}nsp{li_} = 0")
            # Branch-free append (write always, advance on a spike): nsp <= j, so in bounds.
            # (Hidden layers spike at ~10% per step: event_scan's block skip mispredicts there.)
            body.append(f"{ind2}for j in range(N{li_}):")
            body.append(f"{ind3}sp{li_}[nsp{li_}] = j")
            body.append(f"{ind3}nsp{li_} += o{li_}[j] != 0.0")
            body.append(f"{ind2}tot{li_} += nsp{li_}")
        body.append(f"{ind2}if record:")
        body.append(f"{ind3}for j in range(N{li_}):")
        body.append(f"{ind3}    rec{li_}[t, b, j] = o{li_}[j]")
    body.append(f"{ind2}for j in range(N{last}):")
    body.append(f"{ind3}out[t, b, j] = o{last}[j]")
    body.append(f"{ind3}acc[j] += o{last}[j]")
    # Per-sample exit: once the running evidence is confident the sample's loop ends, so
    # it costs nothing more; its prediction is frozen at this step.
    body.append(f"{ind2}if check:")
    body.append(f"{ind3}k1, k2 = top2(acc)")
    body.append(f"{ind3}sc = scales[tg]")
    body.append(f"{ind3}z1 = acc[k1] / sc")
    body.append(f"{ind3}z2 = acc[k2] / sc")
    body.append(f"{ind3}e2 = math.exp(z2 - z1)")
    # S-limit: with S >= lim the sample cannot be confident (1e-9 of slack for rounding); the
    # sums start from the top two classes and stop at the limit, so most steps cost one exp.
    body.append(f"{ind3}lim = math.inf")
    body += _per_measure(ind3, lambda m: f"lim = {LIMITS[m].__name__}(threshold - 1e-9, e2, log_n)")
    body.append(f"{ind3}if record:")
    body.append(f"{ind3}    lim = math.inf")
    body.append(f"{ind3}if 1.0 + e2 < lim:")
    body.append(f"{ind3}    S, Q = softmax_sums(acc, sc, z1, z2, k1, k2, lim)")
    body.append(f"{ind3}    if S < lim:")
    body += _per_measure(ind3 + " " * 8, lambda m: f"cf = {m}(z1, z2, S, Q, log_n)")
    body.append(f"{ind3}        if record:")
    body.append(f"{ind3}            conf_rec[t, b] = cf")
    body.append(f"{ind3}        if cf > threshold and tg + 1 >= min_steps:")
    body.append(f"{ind3}            run_b = t + 1")
    body.append(f"{ind3}            exited[b] = True")
    body.append(f"{ind3}            break")
    # Confidence at the last step run (the limits may have skipped computing it there).
    body.append(f"{ind}if exit_code != 0 and run_b > 0:")
    body.append(f"{ind}    sc = scales[t0 + run_b - 1]")
    body.append(f"{ind}    k1, k2 = top2(acc)")
    body.append(f"{ind}    z1 = acc[k1] / sc")
    body.append(f"{ind}    z2 = acc[k2] / sc")
    body.append(f"{ind}    S, Q = softmax_sums(acc, sc, z1, z2, k1, k2, math.inf)")
    body += _per_measure(ind + " " * 4, lambda m: f"cf = {m}(z1, z2, S, Q, log_n)")
    body.append(f"{ind}    conf[b] = cf")
    for li_, (m, *_) in enumerate(signature):
        body.append(f"{ind}cnt{li_}[b] = tot{li_}")
        body.append(f"{ind}for j in range(N{li_}):")
        body.append(f"{ind}    ost{li_}[b, j] = o{li_}[j]")
        for s in m.states:
            body.append(f"{ind}    st{li_}_{s}[b, j] = s{li_}_{s}[j]")
    body.append(f"{ind}for j in range(N{last}):")
    body.append(f"{ind}    accs[b, j] = acc[j]")
    body.append(f"{ind}stop[b] = t0 + run_b")
    body.append(f"{ind}pred[b] = np.argmax(acc)")
    parts.append("\n".join(body) + "\n")
    return "".join(parts)


def _per_measure(ind: str, line) -> list[str]:
    """``if exit_code == 1: <line(name1)> elif exit_code == 2: ...`` over the measures, in code order."""
    from .confidence import MEASURES
    out = []
    for code, name in enumerate(MEASURES, start=1):
        out += [f"{ind}{'if' if code == 1 else 'elif'} exit_code == {code}:", f"{ind}    {line(name)}"]
    return out


@lru_cache(maxsize=None)
def signature_name(signature) -> str:
    """A file-name stem of a layer signature ``[(model, recurrent, delayed, conv, pooled), ...]``:
    per layer the model's name and r/d/c/p for the flags set (the Numba, CUDA and integer
    network kernels are cached under it)."""
    return "_".join(m.name + "".join(f for f, on in zip("rdcp", flags) if on) for m, *flags in signature)


@lru_cache(maxsize=None)
def network_kernel(signature: tuple[tuple[NeuronModel, bool, bool, bool, bool], ...],
                   dtype: str = "float64") -> ModuleType:
    """Compiled (lazily) event-driven kernel module for a layer signature and dtype (cached:
    rendering the source takes milliseconds, as long as the kernel itself runs)."""
    stem = "net_" + signature_name(signature) + f"_{dtype}"
    return load_module(render_network_module(signature, dtype), stem)


__all__ = ["render_network_module", "network_kernel", "signature_name"]

"""The event-driven network kernel in CUDA C++: one thread block per sample, all steps inside.

The GPU counterpart of ``core.engine``'s Numba kernel for stacks of layers (a Linear
connection, optional recurrent weights, optional integer synaptic delays through per-sample
ring buffers as ``delay_buffer``; or a convolution, each input event adding its kernel taps as
``sparse_conv`` does; optionally pooling of the input events first, as ``event_pool``; any
neuron model): block q runs sample ``rows[q]``
for its own ``steps[b]`` steps, so finished samples cost nothing.  Per step and layer:

1. every thread, for its neurons j (strided by the block size), sums the layer's current in
   the Numba kernel's order -- bias, then the rows of the layer's own last-step spikes
   (recurrent), then the input rows four at a time as ``row_adds`` groups them -- and runs
   the neuron's step (printed from its one definition, ``printers.cxx_step``);
2. the layer's nonzero outputs are compacted, in neuron order, into the list the next layer
   (and the next step's recurrent input) adds rows from: each thread counts its contiguous
   chunk, one thread scans the counts, each thread writes its chunk.

A barrier separates the phases.  With the same summation order and no FMA contraction
(``--fmad=false``, ``-ffp-contract=off``) the outputs equal the Numba kernel's to the bit
(neuron steps without transcendental functions; an exp or log may differ in the last ulp
between CUDA's math library and the host's).  State lives in arrays [B, ...] that the kernel
continues from and leaves updated (as ``core.stream`` does); the last layer's outputs are
added to a float64 evidence sum [B, C].

The text also builds as host C++ (``run_f32_host`` / ``run_f64_host``): the block's threads
run one after another phase by phase, barrier to barrier, which is how it is tested without
a GPU.
"""
from __future__ import annotations

from ..neurons.base import NeuronModel
from .cuda_codegen import PRELUDE
from .printers import cxx_step, cxx_surrogate

Signature = tuple[tuple[NeuronModel, bool, bool, bool, bool], ...]  # (model, recurrent, delayed, conv, pooled)


def kernel_args(signature: Signature) -> list[tuple[str, str]]:
    """The kernel's arguments (C++ type, name) in order; ``scalar_t`` is float or double.

    rows [R] samples to run; ev_ptr [B*T+1] / ev_idx [E] / ev_val [E]: CSR input events (row
    b*T + t); steps [B] steps each sample runs in this call; done [B] steps run so far (+=
    steps); per layer l: pooled (pg{l} ``event_pool.pool_geometry``, the pooled frame pb{l}
    [B, P], its nonzero cells qi{l} / qv{l} [B, P] and their count qn{l} [B]); W{l} [K, N] (a
    convolution: its flipped channels-last taps [C, kh, kw * Co] and geometry cg{l} [C, H, W, Co,
    Ho, Wo, sh, sw, ph, pw, kh, kw], both as ``sparse_conv.conv_args`` gives them), b{l} [N] ([Co]),
    the convolution's sums ca{l} [B, N]; R{l} [N, N] (recurrent), off{l} [K, N] ring
    offsets D * N + j (delayed: ``delay_buffer.ring_offsets``), c{l}_* [N], st{l}_* [B, N] and
    o{l} [B, N] (state and last outputs, in and out), rg{l} [B, 2 S N] (delayed: the ring of
    future currents, in and out), li{l} [B, N] / lv{l} [B, N] /
    ln{l} [B] (scratch: the nonzero-output list), cnt{l} [B] spikes in this call, rec{l}
    [T, B, N] (written when ``record``); kx{l} / ks{l}_* [T, B, N]: each step's input current
    and new state (written when ``keep``, for a backward pass); out [T, B, C]; acc [B, C] float64 evidence; scales
    [>= steps run] t**gamma per global step; exited [B]; conf [B] confidence at the last step
    run; conf_rec [T, B] per step (when ``record``); then record, keep, T, B, exit_code (0: none,
    else the measure's 1-based code), threshold, min_steps, log_n.
    """
    S, I, D = "const scalar_t*", "const ndi*", "scalar_t*"
    a = [(I, "rows"), (I, "ev_ptr"), (I, "ev_idx"), (S, "ev_val"), (I, "steps"), ("ndi*", "done")]
    for l, (m, rec, dl, cv, pl) in enumerate(signature):
        if pl:
            a += [(I, f"pg{l}"), (D, f"pb{l}"), ("ndi*", f"qi{l}"), (D, f"qv{l}"), ("ndi*", f"qn{l}")]
        a += [(S, f"W{l}"), (S, f"b{l}")] + ([(I, f"cg{l}"), (D, f"ca{l}")] if cv else [])
        a += ([(S, f"R{l}")] if rec else []) + ([(I, f"off{l}")] if dl else [])
        a += [(S, f"c{l}_{c}") for c in m.coefs] + [(D, f"st{l}_{s}") for s in m.states] + [(D, f"o{l}")]
        a += [(D, f"rg{l}")] if dl else []
        a += [("ndi*", f"li{l}"), (D, f"lv{l}"), ("ndi*", f"ln{l}"), ("ndi*", f"cnt{l}"), (D, f"rec{l}")]
        a += [(D, f"kx{l}")] + [(D, f"ks{l}_{s}") for s in m.states]
    a += [(D, "out"), ("double*", "acc"), ("const double*", "scales"), ("ndi*", "exited"), ("double*", "conf"),
          ("double*", "conf_rec")]
    return a


def layer_sizes(signature: Signature) -> list[str]:
    """The size arguments after the arrays: K0 (inputs of layer 0), N{l} per layer, then S{l}
    (ring slots, max delay + 1) per delayed layer and P{l} (pooled cells) per pooled layer."""
    return (["K0"] + [f"N{l}" for l in range(len(signature))]
            + [f"S{l}" for l, (_, _, d, _, _) in enumerate(signature) if d]
            + [f"P{l}" for l, (_, _, _, _, p) in enumerate(signature) if p])


INF = """#ifdef __CUDACC__
#define ND_INF __longlong_as_double(0x7ff0000000000000LL)
#else
#include <limits>
#define ND_INF std::numeric_limits<double>::infinity()
#endif
"""


def render_network_cuda(signature: Signature, confidence: str, measures: tuple[str, ...],
                        limits: tuple[str, ...]) -> str:
    """CUDA C++ source of the event-driven network kernel for ``signature`` (see the module docstring).

    confidence: C++ device functions ``top2``, ``softmax_sums``, the measures and their S-limits
    (``py_cxx.to_cxx`` of ``core.confidence``); measures / limits: their names in exit-code
    order.  The early-exit test after each step is ``core.engine``'s, statement for statement.
    """
    seen, parts = set(), [PRELUDE.format(name="+".join(m.name for m, *_ in signature), sg="atan", alpha=2.0,
                                         need_c=(), need_t=(), recurrent=[r for _, r, *_ in signature])]
    # the VJPs in cxx_step call spike_grad; the network kernel runs steps only
    parts += [cxx_surrogate("atan"), "template <typename scalar_t> ND_DEV scalar_t spike_grad(scalar_t u) "
              "{ return sg_atan(u, scalar_t(2.0)); }\n"]
    for m, *_ in signature:
        if m.name not in seen:
            parts.append(cxx_step(m))
            seen.add(m.name)
    parts += [INF, confidence]
    args = kernel_args(signature)
    sizes = layer_sizes(signature)
    scalars = ["ndi record", "ndi keep", "ndi T", "ndi B", "ndi exit_code", "double threshold", "ndi min_steps",
               "double log_n"]
    decl = ", ".join([f"{ty} ND_RESTRICT {n}" for ty, n in args] + scalars + [f"ndi {s}" for s in sizes])
    call = ", ".join([n for _, n in args] + [x.split()[1] for x in scalars] + sizes)
    L = len(signature)
    # --- the phases, as device functions of (b, t, tid, nth, ...) -------------------------
    fns = []
    for l, (m, rec, dl, cv, pl) in enumerate(signature):
        N = f"N{l}"
        # the layer's input events of this step: (first, end, index of e, value of e, unit values)
        if pl:
            src = ("0", f"qn{l}[b]", lambda e: f"qi{l}[b * P{l} + {e}]", lambda e: f"qv{l}[b * P{l} + {e}]", False)
        else:
            src = _source(l, signature)
        if pl:
            fns.append(_pool_phases(l, _source(l, signature), decl))
        st = [f"st{l}_{s}[b * {N} + j]" for s in m.states]
        if cv:
            body = _conv_sums(l, src)
        else:
            lo, hi, idx, val, unit = src
            body = [f"    for (ndi j = tid; j < {N}; j += nth) {{", f"        scalar_t x = b{l}[j];"]
            if rec:  # own spikes of the last step, one row at a time (the Numba kernel's order)
                body += [f"        for (ndi q = 0; q < ln{l}[b]; ++q) x += R{l}[li{l}[b * {N} + q] * {N} + j];"]
            w = [f"W{l}[{idx(f'e + {i}')} * {N} + j]" for i in range(4)]
            if unit:  # spikes are 1: add_unit_rows' grouping, no multiplies
                four = f"x += ({w[0]} + {w[1]}) + ({w[2]} + {w[3]});"
                one = f"x += W{l}[{idx('e')} * {N} + j];"
            else:
                v4 = [val(f"e + {i}") for i in range(4)]
                four = f"x += ({v4[0]} * {w[0]} + {v4[1]} * {w[1]}) + ({v4[2]} * {w[2]} + {v4[3]} * {w[3]});"
                one = f"x += {val('e')} * W{l}[{idx('e')} * {N} + j];"
            if dl:  # each event into the ring at its synapses' delays (ring_push), then the currents due (ring_pop)
                a_ = "scalar_t(1)" if unit else val("e")
                body += [f"        scalar_t* ring = rg{l} + b * 2 * S{l} * {N};", f"        const ndi slot = tg % S{l};",
                         f"        for (ndi e = {lo}; e < {hi}; ++e) "
                         f"ring[slot * {N} + off{l}[{idx('e')} * {N} + j]] += {a_} * W{l}[{idx('e')} * {N} + j];",
                         f"        x += ring[slot * {N} + j] + ring[(slot + S{l}) * {N} + j];",
                         f"        ring[slot * {N} + j] = scalar_t(0); ring[(slot + S{l}) * {N} + j] = scalar_t(0);"]
            else:
                body += [f"        ndi e = {lo};", f"        for (; e + 4 <= {hi}; e += 4) {four}",
                         f"        for (; e < {hi}; ++e) {one}"]
        news = [f"n_{s}" for s in m.states]
        body += [f"        scalar_t ov, {', '.join(news)};",
                 f"        {m.derived.step_name}<scalar_t>(x, {', '.join(st)}, "
                 + ", ".join(f"c{l}_{c}[j]" for c in m.coefs) + f", ov, {', '.join(news)});"]
        body += [f"        {a_} = {n};" for a_, n in zip(st, news)]
        body += [f"        o{l}[b * {N} + j] = ov;", f"        if (record) rec{l}[(t * B + b) * {N} + j] = ov;"]
        # kept for a backward pass: the step's input current and the new state ([T, B, N] each)
        body += [f"        if (keep) {{ kx{l}[(t * B + b) * {N} + j] = x; "
                 + " ".join(f"ks{l}_{s}[(t * B + b) * {N} + j] = {n};" for s, n in zip(m.states, news)) + " }"]
        if l == L - 1:
            body += [f"        out[(t * B + b) * {N} + j] = ov;", f"        acc[b * {N} + j] += (double)ov;"]
        body += ["    }"] + (["    }"] if cv else [])
        fns.append("template <typename scalar_t>\n"
                   f"ND_DEV void layer{l}(ndi b, ndi t, ndi tg, ndi tid, ndi nth, {decl}) {{\n" + "\n".join(body)
                   + "\n}\n")
    # Ordered compaction of a layer's nonzero outputs o{l}[b] into li/lv/ln, in three phases.
    for l, (m, *_) in enumerate(signature):
        N = f"N{l}"
        fns.append(
            "template <typename scalar_t>\n"
            f"ND_DEV void count{l}(ndi b, ndi tid, ndi nth, ndi* cnt_sh, {decl}) {{\n"
            f"    const ndi chunk = ({N} + nth - 1) / nth, j0 = tid * chunk, j1 = j0 + chunk < {N} ? j0 + chunk : {N};\n"
            "    ndi n = 0;\n"
            f"    for (ndi j = j0; j < j1; ++j) n += o{l}[b * {N} + j] != scalar_t(0);\n"
            "    cnt_sh[tid] = n;\n}\n"
            "template <typename scalar_t>\n"
            f"ND_DEV void scan{l}(ndi b, ndi nth, ndi* cnt_sh, {decl}) {{\n"
            "    ndi s = 0;\n"
            "    for (ndi k = 0; k < nth; ++k) { const ndi c = cnt_sh[k]; cnt_sh[k] = s; s += c; }\n"
            f"    ln{l}[b] = s;\n" + (f"    cnt{l}[b] += s;\n" if m.spiking else "") + "}\n"
            "template <typename scalar_t>\n"
            f"ND_DEV void fill{l}(ndi b, ndi tid, ndi nth, const ndi* cnt_sh, {decl}) {{\n"
            f"    const ndi chunk = ({N} + nth - 1) / nth, j0 = tid * chunk, j1 = j0 + chunk < {N} ? j0 + chunk : {N};\n"
            "    ndi n = cnt_sh[tid];\n"
            f"    for (ndi j = j0; j < j1; ++j) {{\n"
            f"        const scalar_t v = o{l}[b * {N} + j];\n"
            f"        if (v != scalar_t(0)) {{ li{l}[b * {N} + n] = j; lv{l}[b * {N} + n] = v; ++n; }}\n"
            "    }\n}\n")
    parts += fns
    parts.append(_exit_functions(f"N{L - 1}", decl, measures, limits))
    # --- the block's schedule, for the device and for the host ----------------------------
    def schedule(each: str, tid: str, nth: str, barrier: str, one: str) -> list[str]:
        """The phases of sample b: ``each`` runs a phase for every thread, ``one`` for thread 0 only."""
        def compact(l: int) -> list[str]:
            return [f"{each}count{l}<T_>(b, {tid}, {nth}, cnt_sh, {call});", barrier,
                    f"{one}scan{l}<T_>(b, {nth}, cnt_sh, {call});", barrier,
                    f"{each}fill{l}<T_>(b, {tid}, {nth}, cnt_sh, {call});", barrier]
        lines = []
        for l, (_, rec, *_) in enumerate(signature):
            if rec:  # the list of the spikes carried in (the last step run before this call)
                lines += compact(l)
        lines += [f"{one}{{ " + " ".join(f"cnt{l}[b] = 0;" for l in range(L)) + " }", barrier]
        # t0: the sample's steps before this call (global step tg = t0 + t, as in core.engine)
        lines += ["const ndi t0 = done[b];", "ndi run_b = steps[b];",
                  "const bool check = exit_code != 0 && (threshold < 1.0 || record);", barrier,
                  "for (ndi t = 0; t < steps[b]; ++t) {"]
        for l in range(L):
            if signature[l][4]:  # pool this step's input events, then list the pooled frame's nonzero cells
                lines += [f"    {each}pool{l}<T_>(b, t, {tid}, {nth}, {call});", f"    {barrier}",
                          f"    {each}pcount{l}<T_>(b, {tid}, {nth}, cnt_sh, {call});", f"    {barrier}",
                          f"    {one}pscan{l}<T_>(b, {nth}, cnt_sh, {call});", f"    {barrier}",
                          f"    {each}pfill{l}<T_>(b, {tid}, {nth}, cnt_sh, {call});", f"    {barrier}"]
            lines += [f"    {each}layer{l}<T_>(b, t, t0 + t, {tid}, {nth}, {call});", f"    {barrier}"]
            lines += ["    " + x for x in compact(l)]
        lines += ["    if (check) {", f"        {one}stop_sh[0] = exit_step<T_>(b, t, t0 + t, {call});",
                  f"        {barrier}", "        if (stop_sh[0]) { run_b = t + 1; break; }", "    }"]
        lines += ["}", f"{one}exit_end<T_>(b, t0, run_b, {call});"]
        return lines

    dev = schedule("", "threadIdx.x", "blockDim.x", "__syncthreads();", "if (threadIdx.x == 0) ")
    host = schedule("for (ndi tid = 0; tid < threads; ++tid) ", "tid", "threads", "// barrier", "")
    out = ["#ifdef __CUDACC__"]
    for suffix, ty in (("f32", "float"), ("f64", "double")):
        d = decl.replace("scalar_t", ty)
        out.append(f'extern "C" __global__ void run_{suffix}({d}) {{\n'
                   "    extern __shared__ long long nd_smem[];  // blockDim.x counters and the stop flag\n"
                   "    ndi* cnt_sh = nd_smem;\n    ndi* stop_sh = nd_smem + blockDim.x;\n"
                   "    const ndi b = rows[blockIdx.x];\n"
                   + "\n".join("    " + x for x in dev).replace("T_", ty) + "\n}")
    out.append("#else")
    for suffix, ty in (("f32", "float"), ("f64", "double")):
        d = decl.replace("scalar_t", ty)
        out.append(f'extern "C" void run_{suffix}_host({d}, ndi n_rows, ndi threads) {{\n'
                   "    std::vector<ndi> counters(threads + 1);  // the block's shared memory\n"
                   "    ndi* cnt_sh = counters.data();\n    ndi* stop_sh = cnt_sh + threads;\n"
                   "    for (ndi q = 0; q < n_rows; ++q) {\n        const ndi b = rows[q];\n"
                   + "\n".join("        " + x for x in host).replace("T_", ty) + "\n    }\n}")
    out.append("#endif\n")
    return "\n".join(parts + out)


def _source(l: int, signature: Signature):
    """Layer l's input events before pooling: the input's CSR row (layer 0) or the list of the
    layer below; (first, end, index of event e, value of e, whether values are unit spikes)."""
    if l == 0:
        return ("ev_ptr[b * T + t]", "ev_ptr[b * T + t + 1]", lambda e: f"ev_idx[{e}]", lambda e: f"ev_val[{e}]", False)
    p = l - 1
    return ("0", f"ln{p}[b]", lambda e: f"li{p}[b * N{p} + {e}]", lambda e: f"lv{p}[b * N{p} + {e}]",
            signature[p][0].spiking)


def _pool_phases(l: int, src, decl: str) -> str:
    """``pool{l}``: this step's input events summed into the pooled frame pb (each thread owns the
    channels c = tid mod nth, so every cell sums its events in event order, as event_pool does);
    ``pcount/pscan/pfill{l}``: its nonzero cells (divided by the window area for average pooling,
    in float64 as Numba divides) listed in cell order into qi / qv / qn, the frame zeroed."""
    lo, hi, idx, val, unit = src
    a = "scalar_t(1)" if unit else val("e")
    g = f"pg{l}"
    P = f"P{l}"
    return f"""template <typename scalar_t>
ND_DEV void pool{l}(ndi b, ndi t, ndi tid, ndi nth, {decl}) {{
    const ndi H = {g}[1], W = {g}[2], kh = {g}[3], kw = {g}[4], sh = {g}[5], sw = {g}[6], ph = {g}[7], pw = {g}[8];
    const ndi Ho = {g}[9], Wo = {g}[10], HW = H * W;
    scalar_t* buf = pb{l} + b * {P};
    for (ndi e = {lo}; e < {hi}; ++e) {{
        const ndi k = {idx("e")}, c = k / HW;
        if (c % nth != tid) continue;
        const ndi r = k - c * HW, y = r / W + ph, x = r - (r / W) * W + pw;
        // windows i with i*sh <= y < i*sh + kh (floor division: the lower bound may be negative)
        const ndi ilo = y - kh < 0 ? 0 : (y - kh) / sh + 1, jlo = x - kw < 0 ? 0 : (x - kw) / sw + 1;
        const ndi ihi = y / sh < Ho - 1 ? y / sh : Ho - 1, jhi = x / sw < Wo - 1 ? x / sw : Wo - 1;
        const scalar_t a = {a};
        for (ndi i = ilo; i <= ihi; ++i)
            for (ndi j = jlo; j <= jhi; ++j) buf[(c * Ho + i) * Wo + j] += a;
    }}
}}
template <typename scalar_t>
ND_DEV void pcount{l}(ndi b, ndi tid, ndi nth, ndi* cnt_sh, {decl}) {{
    const ndi chunk = ({P} + nth - 1) / nth, j0 = tid * chunk, j1 = j0 + chunk < {P} ? j0 + chunk : {P};
    ndi n = 0;
    for (ndi j = j0; j < j1; ++j) n += pb{l}[b * {P} + j] != scalar_t(0);
    cnt_sh[tid] = n;
}}
template <typename scalar_t>
ND_DEV void pscan{l}(ndi b, ndi nth, ndi* cnt_sh, {decl}) {{
    ndi s = 0;
    for (ndi k = 0; k < nth; ++k) {{ const ndi c = cnt_sh[k]; cnt_sh[k] = s; s += c; }}
    qn{l}[b] = s;
}}
template <typename scalar_t>
ND_DEV void pfill{l}(ndi b, ndi tid, ndi nth, const ndi* cnt_sh, {decl}) {{
    const ndi chunk = ({P} + nth - 1) / nth, j0 = tid * chunk, j1 = j0 + chunk < {P} ? j0 + chunk : {P};
    const ndi area = {g}[3] * {g}[4];
    ndi n = cnt_sh[tid];
    for (ndi j = j0; j < j1; ++j) {{
        const scalar_t v = pb{l}[b * {P} + j];
        if (v != scalar_t(0)) {{
            qi{l}[b * {P} + n] = j;
            qv{l}[b * {P} + n] = {g}[11] ? (scalar_t)((double)v / (double)area) : v;
            ++n;
            pb{l}[b * {P} + j] = scalar_t(0);
        }}
    }}
}}
"""


def _conv_sums(l: int, src) -> list[str]:
    """The start of a convolutional layer's phase: each thread owns output rows (co, i) and adds,
    event by event, the kernel taps that reach them (each output once per event: the event order
    of ``sparse_conv.conv_frame``), then takes x = sum + bias per pixel j (its ``finish_frame``)."""
    lo, hi, idx, val, unit = src
    g = f"cg{l}"
    a = "scalar_t(1)" if unit else val("e")
    return [
        f"    const ndi C = {g}[0], H = {g}[1], W = {g}[2], Co = {g}[3], Ho = {g}[4], Wo = {g}[5];",
        f"    const ndi sh = {g}[6], sw = {g}[7], ph = {g}[8], pw = {g}[9], kh = {g}[10], kw = {g}[11], HW = H * W;",
        "    for (ndi r = tid; r < Co * Ho; r += nth) {",
        "        const ndi co = r / Ho, i = r - co * Ho;",
        f"        scalar_t* row = ca{l} + b * N{l} + (co * Ho + i) * Wo;",
        f"        for (ndi e = {lo}; e < {hi}; ++e) {{",
        f"            const ndi k = {idx('e')}, c = k / HW, q = k - c * HW, y = q / W, xx = q - (q / W) * W;",
        "            const ndi u = y + ph - i * sh;",
        "            if (u < 0 || u >= kh) continue;",
        f"            const scalar_t a = {a};",
        f"            const scalar_t* wr = W{l} + (c * kh + u) * kw * Co;  // taps of row u, flipped, channels last",
        "            for (ndi v = 0; v < kw; ++v) {",
        "                const ndi xs = xx + pw - v;",
        "                if (xs < 0 || xs % sw != 0 || xs / sw >= Wo) continue;",
        "                row[xs / sw] += a * wr[(kw - 1 - v) * Co + co];",
        "            }",
        "        }",
        "        for (ndi jj = 0; jj < Wo; ++jj) {",
        "            const ndi j = (co * Ho + i) * Wo + jj;",
        f"            const scalar_t x = row[jj] + b{l}[co];",
        "            row[jj] = scalar_t(0);",
    ]


def _exit_functions(C: str, decl: str, measures: tuple[str, ...], limits: tuple[str, ...]) -> str:
    """Thread 0's early-exit test after step t (``exit_step``: true when the sample stops) and the
    end of a sample (``exit_end``: confidence at its last step, steps run), as in core.engine."""
    def per_code(fmt: str) -> str:
        return " else ".join(f"if (exit_code == {k}) {fmt.format(f)}" for k, f in enumerate(measures, start=1))
    lim = " else ".join(f"if (exit_code == {k}) lim = {f}(threshold - 1e-9, e2, log_n);"
                        for k, f in enumerate(limits, start=1))
    return f"""// the top two classes of the evidence acc_b / sc and their scaled values
ND_DEV void top_evidence(const double* acc_b, ndi C, double sc, ndi& k1, ndi& k2, double& z1, double& z2) {{
    top2(acc_b, C, k1, k2);
    z1 = acc_b[k1] / sc;
    z2 = acc_b[k2] / sc;
}}
template <typename scalar_t>
ND_DEV bool exit_step(ndi b, ndi t, ndi tg, {decl}) {{
    const double* acc_b = acc + b * {C};
    const double sc = scales[tg];
    ndi k1, k2;
    double z1, z2;
    top_evidence(acc_b, {C}, sc, k1, k2, z1, z2);
    const double e2 = exp(z2 - z1);
    // S-limit: with S >= lim the sample cannot be confident (1e-9 of slack for rounding)
    double lim = ND_INF;
    {lim}
    if (record) lim = ND_INF;
    if (1.0 + e2 < lim) {{
        double S, Q, cf = 0.0;
        softmax_sums(acc_b, {C}, sc, z1, z2, k1, k2, lim, S, Q);
        if (S < lim) {{
            {per_code("cf = {}(z1, z2, S, Q, log_n);")}
            if (record) conf_rec[t * B + b] = cf;
            if (cf > threshold && tg + 1 >= min_steps) {{ exited[b] = 1; return true; }}
        }}
    }}
    return false;
}}
template <typename scalar_t>
ND_DEV void exit_end(ndi b, ndi t0, ndi run_b, {decl}) {{
    if (exit_code != 0 && run_b > 0) {{  // the confidence at the last step run
        const double* acc_b = acc + b * {C};
        const double sc = scales[t0 + run_b - 1];
        ndi k1, k2;
        double z1, z2, S, Q, cf = 0.0;
        top_evidence(acc_b, {C}, sc, k1, k2, z1, z2);
        softmax_sums(acc_b, {C}, sc, z1, z2, k1, k2, ND_INF, S, Q);
        {per_code("cf = {}(z1, z2, S, Q, log_n);")}
        conf[b] = cf;
    }}
    done[b] = t0 + run_b;
}}
"""


__all__ = ["Signature", "kernel_args", "layer_sizes", "render_network_cuda"]

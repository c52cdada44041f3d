"""A single LIF neuron driven by a constant current, against its closed form.

With exact integration over a step dt, the membrane of ``ndn.LIF(tau_mem, reset="zero")``
(input normalized, as SpikingJelly's ``decay_input=True``) follows

    v[t] = I + (v[t-1] - I) * exp(-dt / tau)        (below threshold)

so from rest it reaches the threshold 1 after ceil(ln(1 - 1/I) / ln(exp(-dt/tau))) steps, and
with a hard reset it fires periodically at that interval (no spikes at all for I <= 1). The
example checks the simulated membrane and the firing rate over a range of currents (the f-I
curve) against these formulas and plots both.

    python examples/lif_neuron.py [--out runs/examples/lif_neuron]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402

TAU_MS, DT_MS, T = 20.0, 1.0, 300


def closed_form_period(current: float) -> float:
    """Steps between spikes from rest for a constant normalized current (inf below threshold)."""
    if current <= 1.0:
        return math.inf
    return math.ceil(math.log(1.0 - 1.0 / current) / (-DT_MS / TAU_MS))


def main(out: Path = Path("runs/examples/lif_neuron")) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    lif = ndn.LIF(tau_mem=TAU_MS, dt=DT_MS, reset="zero").double()
    currents = torch.linspace(0.5, 4.0, 36, dtype=torch.float64)      # float64: compare to 1e-12
    x = currents.expand(T, -1)[:, :, None].contiguous()         # [T, B=36 currents, N=1]
    spikes, (v,) = lif.run(x)                                    # spikes and membrane [T, B, 1]

    # below threshold: the exact exponential approach to I
    i_sub = 0                                                    # I = 0.5 never fires
    t = torch.arange(1, T + 1, dtype=torch.float64)
    v_exact = currents[i_sub] * (1 - torch.exp(-t * DT_MS / TAU_MS))
    membrane_error = float((v[:, i_sub, 0] - v_exact).abs().max())

    rate_sim = spikes[:, :, 0].sum(0) / (T * DT_MS) * 1000.0     # Hz
    period = torch.tensor([closed_form_period(float(c)) for c in currents])
    n_expected = torch.where(torch.isinf(period), torch.zeros_like(period), torch.floor(T / period))
    rate_theory = n_expected / (T * DT_MS) * 1000.0
    count_mismatch = int((spikes[:, :, 0].sum(0) != n_expected).sum())   # currents whose spike count differs

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    k = int(torch.argmin((currents - 1.5).abs()))
    ax[0].plot(t[:120], v[:120, k, 0], label=f"membrane, I = {currents[k]:.2f}")
    ax[0].plot(t[:120], v[:120, i_sub, 0], label=f"membrane, I = {currents[i_sub]:.2f}")
    ax[0].plot(t[:120], v_exact[:120], "k:", label="closed form")
    ax[0].axhline(1.0, color="r", lw=0.8, ls="--", label="threshold")
    ax[0].set(xlabel="time (ms)", ylabel="membrane potential (threshold = 1)", title="LIF membrane")
    ax[0].legend(fontsize=8)
    ax[1].plot(currents, rate_theory, "k-", label="closed form")
    ax[1].plot(currents, rate_sim, "o", ms=4, label="neurodyn")
    ax[1].set(xlabel="input current (threshold = 1)", ylabel="firing rate (Hz)", title="f-I curve")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "lif_neuron.png", dpi=120)
    plt.close(fig)
    print(f"max membrane error vs closed form: {membrane_error:.1e}; currents with a spike count other "
          f"than the closed form's: {count_mismatch} of {len(currents)}; "
          f"plot: {out / 'lif_neuron.png'}")
    return {"membrane_error": membrane_error, "count_mismatch": count_mismatch, "plot": out / "lif_neuron.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/lif_neuron"))
    main(ap.parse_args().out)

"""From a trained spiking network to a neuromorphic chip format, and back through NIR.

A spiking MLP is trained on the N-MNIST sample, then quantized to the Loihi-like fixed-point
preset (8-bit weights, integer state; per-layer scales chosen from 64 training samples). The
integer network runs in neurodyn's integer simulator (Numba, integer arithmetic only), which is
checked bit for bit against a plain numpy implementation of the same integer step and scored
on the test split next to the float model. The float model is written to a NIR file, read back
and compared output for output, and the quantized network is written as the layered HDF5 file a
chip tool chain reads.

    python examples/export_to_chip.py [--data datasets/nmnist_sample] [--epochs 4]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from neurodyn.data import load_dataset  # noqa: E402
from neurodyn.export import (from_nir, quantize, read_hdf5, read_nir, simulate,  # noqa: E402
                             simulate_reference, write_hdf5, write_nir)
from neurodyn.export.evaluate import calibration_input, evaluate_quantized  # noqa: E402
from neurodyn.train import load_config, train  # noqa: E402
from neurodyn.train.evaluation import eval_run, load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = Path("runs/examples/export_to_chip"), data: Path = ROOT / "datasets" / "nmnist_sample",
         epochs: int = 4) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ROOT / "configs" / "nmnist_mlp.toml",
                      [f'data.path="{data}"', f'out="{out / "run"}"', f"train.epochs={epochs}"])
    train(cfg, plots=False)
    run = load_run(out / "run" / "model.pt")
    float_acc = eval_run(run, progress=False)["accuracy"]

    train_ds, _ = load_dataset(cfg.data.path, dt_us=cfg.data.bin_us)
    calib = calibration_input(train_ds, 64)                       # [T, 64, 2312] event counts
    q = quantize(run.model, "loihi", calib=calib)
    int_acc = evaluate_quantized(q, run.test_loader(), loss=cfg.train.loss, progress=False)["accuracy"]

    x = calib[:, :16]
    fast, ref = simulate(q, x), simulate_reference(q, x)         # Numba kernel vs numpy reference
    bit_exact = bool(np.array_equal(fast.out, ref.out)) and all(
        np.array_equal(a, b) for a, b in zip(fast.counts, ref.counts))

    nir_path = write_nir(run.model, out / "model.nir")          # float graph, dt and integration in metadata
    back = from_nir(read_nir(nir_path))
    with torch.no_grad():
        y0 = run.model(x.to(torch.float32)).double()
        y1 = back(x.double())
    nir_error = float((y0 - y1).abs().max())
    h5_path = write_hdf5(q, out / "model_loihi.h5")
    q2 = read_hdf5(h5_path)
    hdf5_same = bool(np.array_equal(simulate(q2, x).out, fast.out))

    b, k = 0, int(run.model(x.to(torch.float32))[:, 0].mean(0).argmax())
    scale = q.layers[-1].scale
    fig, ax = plt.subplots(figsize=(7, 3.5))
    t = np.arange(x.shape[0]) * cfg.dt_ms
    ax.plot(t, y0[:, b, k], label="float model")
    ax.plot(t, fast.out[:, b, k] / scale, "--", label="integer simulator (dequantized)")
    ax.set(xlabel="time (ms)", ylabel=f"readout membrane, class {k}",
           title=f"float {float_acc:.3f} vs Loihi-like integer {int_acc:.3f} test accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "export_to_chip.png", dpi=120)
    plt.close(fig)
    print(f"float test accuracy {float_acc:.3f}, integer {int_acc:.3f}; integer kernel bit-exact vs numpy: "
          f"{bit_exact}; NIR round trip max |error| {nir_error:.1e}; HDF5 round trip identical: {hdf5_same}; "
          f"files: {nir_path}, {h5_path}")
    return {"float_accuracy": float_acc, "int_accuracy": int_acc, "bit_exact": bit_exact, "nir_error": nir_error,
            "hdf5_same": hdf5_same, "plot": out / "export_to_chip.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/export_to_chip"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "nmnist_sample")
    ap.add_argument("--epochs", type=int, default=4)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

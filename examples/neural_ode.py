"""A neural-ODE classifier, with and without regularizing the solver's heuristics.

8x8 handwritten digits (scikit-learn's copy of the UCI set) are encoded to 32 features, flowed
through ``dy/dt = f(y)`` from t = 0 to 1 by ``NeuralODE`` (adaptive Dormand-Prince, each sample its
own steps), and classified from y(1). Training on the loss alone says nothing about how hard
the learned field is to integrate; adding the solver's own accumulated local-error estimate to
the loss (``SolverRegularization(error=1.0)``, Pal et al. 2021) asks for a field the solver gets
through in fewer steps. The example trains both and reports test accuracy and function
evaluations per sample. Needs scikit-learn (part of the ``dev`` extra).

    python examples/neural_ode.py [--epochs 15]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from tqdm import trange  # noqa: E402

from neurodyn.nn import NeuralODE  # noqa: E402
from neurodyn.solvers import SolverRegularization  # noqa: E402


class Field(nn.Module):
    """Autonomous vector field f(t, y) = W2 tanh(W1 y + b1) + b2 on [B, 32]."""

    def __init__(self, d: int = 32, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, d))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    return (torch.tensor(Xtr, dtype=torch.float32), torch.tensor(ytr),
            torch.tensor(Xte, dtype=torch.float32), torch.tensor(yte))


def fit(reg: SolverRegularization, data, epochs: int) -> dict:
    Xtr, ytr, Xte, yte = data
    torch.manual_seed(0)
    enc, head = nn.Linear(64, 32), nn.Linear(32, 10)
    node = NeuralODE(Field(), (0.0, 1.0), rtol=1e-6, atol=1e-6)
    params = [*enc.parameters(), *node.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    bs, nfe = 128, []
    for _ in trange(epochs, desc=f"error weight {reg.error}", leave=False):
        perm = torch.randperm(len(Xtr), generator=g)
        for i in range(math.ceil(len(Xtr) / bs)):
            idx = perm[i * bs:(i + 1) * bs]
            sol = node(enc(Xtr[idx]))                             # y(0) [b, 32] -> solution up to t = 1
            loss = nn.functional.cross_entropy(head(sol.y_final), ytr[idx])
            if reg.active:
                loss = loss + reg.terms(sol.stats)["total"]       # the solver's own statistics, differentiable
            opt.zero_grad()
            loss.backward()
            opt.step()
            nfe.append(float(sol.stats.nfe.float().mean()))
    with torch.no_grad():
        sol = node(enc(Xte))
        acc = float((head(sol.y_final).argmax(1) == yte).float().mean())
    return {"accuracy": acc, "nfe": float(sol.stats.nfe.float().mean()), "train_nfe": nfe}


def main(out: Path = Path("runs/examples/neural_ode"), epochs: int = 15) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = digits()
    res = {name: fit(reg, data, epochs) for name, reg in
           (("plain", SolverRegularization()), ("error-regularized", SolverRegularization(error=1.0)))}
    for name, r in res.items():
        print(f"{name:18s} test accuracy {r['accuracy']:.3f}, evaluations per test sample {r['nfe']:.1f}")

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in res.items():
        ax[0].plot(r["train_nfe"], label=name)
    ax[0].set(xlabel="training step", ylabel="evaluations per sample", title="cost of a solve while training")
    ax[0].legend()
    names = list(res)
    ax[1].bar(names, [res[n]["nfe"] for n in names], color=["C0", "C1"])
    ax[1].set(ylabel="evaluations per test sample",
              title=f"test accuracy {res[names[0]]['accuracy']:.3f} vs {res[names[1]]['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(out / "neural_ode.png", dpi=120)
    plt.close(fig)
    print(f"plot: {out / 'neural_ode.png'}")
    return {"plain": {k: v for k, v in res["plain"].items() if k != "train_nfe"},
            "regularized": {k: v for k, v in res["error-regularized"].items() if k != "train_nfe"},
            "plot": out / "neural_ode.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/neural_ode"))
    ap.add_argument("--epochs", type=int, default=15)
    a = ap.parse_args()
    main(a.out, a.epochs)

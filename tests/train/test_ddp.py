"""`neurodyn train` under torchrun with 2 gloo processes equals one process on the same global batches."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from neurodyn.train import build_model, load_checkpoint, load_config, train

SETS = ["model.hidden=[24]", "model.dropout=0.0", "train.epochs=2", "train.batch_size=8", "train.lr=0.05",
        "train.seed=5"]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo needed")
def test_two_gloo_processes_match_one_process(tiny_shd, tmp_path):
    out2 = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--module",
           "neurodyn.cli", "train", "--data", str(tiny_shd), "--out", str(out2)]
    for s in SETS:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("test accuracy:") == 1  # rank 0 reports

    # the same config in one process: global batch 8 in one piece instead of 2 x 4
    cfg = load_config(None, SETS, base={"data": {"path": str(tiny_shd)}, "out": str(tmp_path / "one")})
    one = train(cfg, plots=False)

    two = json.loads((out2 / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    a, b = load_checkpoint(out2 / "model.pt"), load_checkpoint(tmp_path / "one" / "model.pt")
    assert len(a["rng"]) == 2  # every process's random state is checkpointed
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5, msg=k)
    torch.manual_seed(cfg.train.seed)
    init = build_model(cfg.model, 700, 3, cfg.dt_ms).state_dict()
    assert max(float((b["model"][k] - init[k]).abs().max()) for k in init) > 1e-2  # training moved the weights
    assert two["history"]["loss"] == pytest.approx(one["history"]["loss"], rel=1e-5)
    assert two["confusion"] == one["confusion"]
    # only rank 0 wrote files
    assert sorted(p.name for p in out2.iterdir()) == ["config.toml", "confusion.png", "curves.png", "metrics.json",
                                                      "model.pt", "raster.png"]

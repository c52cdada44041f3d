"""Checkpoints: exact resume after an interruption, and a crash while saving keeps the old one."""
import io
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from neurodyn.errors import ConfigError, DataFormatError
from neurodyn.train import TrainConfig, load_checkpoint, save_checkpoint, train
from neurodyn.train import checkpoint as ckmod


class Interrupted(Exception):
    pass


def _cfg(data, out, **train_kw):
    # dropout and augmentation draw random numbers every epoch, so resume must restore both streams
    return TrainConfig(data={"path": str(data), "augment": True}, out=str(out),
                       model={"hidden": [24], "dropout": 0.3},
                       train={"epochs": 2, "batch_size": 8, "lr": 0.05, "seed": 3, **train_kw})


def _stop_after(epoch):
    def cb(ep, row):
        if ep == epoch:
            raise Interrupted
    return cb


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_gives_bit_identical_weights(tiny_shd, tmp_path):
    full = train(_cfg(tiny_shd, tmp_path / "full"), plots=False)
    with pytest.raises(Interrupted):
        train(_cfg(tiny_shd, tmp_path / "cut"), on_epoch_end=_stop_after(1), plots=False)
    after1 = load_checkpoint(tmp_path / "cut" / "model.pt")
    assert after1["epoch"] == 1
    resumed = train(_cfg(tiny_shd, tmp_path / "cut"), resume=True, plots=False)
    assert resumed["resumed_from_epoch"] == 1

    a, b = load_checkpoint(tmp_path / "full" / "model.pt"), load_checkpoint(tmp_path / "cut" / "model.pt")
    assert a["epoch"] == b["epoch"] == 2
    _assert_same_state(a["model"], b["model"])
    assert not all(torch.equal(after1["model"][k], a["model"][k]) for k in a["model"])  # epoch 2 changed weights
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        _assert_same_state(sa, sb)
    assert a["scheduler"] == b["scheduler"]
    assert full["history"]["loss"] == resumed["history"]["loss"]
    assert full["history"]["test_acc"] == resumed["history"]["test_acc"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    assert a["rng"][0]["augment"] == b["rng"][0]["augment"]


def test_resume_refuses_a_different_config_and_finishes_a_done_run(tiny_shd, tmp_path):
    train(_cfg(tiny_shd, tmp_path, epochs=1), plots=False)
    with pytest.raises(ConfigError, match=r"train\.lr \(0\.05 in the checkpoint, 0\.01 now\)"):
        train(_cfg(tiny_shd, tmp_path, epochs=1, lr=0.01), resume=True)
    before = load_checkpoint(tmp_path / "model.pt")
    again = train(_cfg(tiny_shd, tmp_path, epochs=1), resume=True, plots=False)  # nothing left to train
    assert again["resumed_from_epoch"] == 1 and len(again["history"]["epoch"]) == 1
    _assert_same_state(before["model"], load_checkpoint(tmp_path / "model.pt")["model"])


_real_save = torch.save


def _half_then_fail(obj, f):
    buf = io.BytesIO()
    _real_save(obj, buf)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    raise OSError("disk full (simulated)")


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    old = {"model": {"w": torch.arange(1000.0)}, "epoch": 1}
    save_checkpoint(path, old)
    monkeypatch.setattr(ckmod.torch, "save", _half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "epoch": 2})
    monkeypatch.undo()
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and torch.equal(back["model"]["w"], old["model"]["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # the half-written temp file is gone


def test_killed_mid_save_keeps_previous_checkpoint(tmp_path):
    """SIGKILL while the new checkpoint is half written: no cleanup runs, the old file still loads."""
    path = tmp_path / "model.pt"
    child = textwrap.dedent(f"""
        import io, os, signal, torch
        from neurodyn.train import checkpoint as ck
        path = {str(path)!r}
        ck.save_checkpoint(path, {{"model": {{"w": torch.arange(1000.0)}}, "epoch": 1}})
        real = torch.save
        def half_then_die(obj, f):
            buf = io.BytesIO(); real(obj, buf); data = buf.getvalue()
            f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        ck.torch.save = half_then_die
        ck.save_checkpoint(path, {{"model": {{"w": torch.zeros(1000)}}, "epoch": 2}})
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")  # the torn write, never renamed
    with pytest.raises(DataFormatError, match="not a readable checkpoint"):
        load_checkpoint(leftovers[0])
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and torch.equal(back["model"]["w"], torch.arange(1000.0))


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataFormatError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(bad)

"""Config files, overrides, validation and the model registry."""
from pathlib import Path

import pytest
import torch
from torch import nn

from neurodyn.errors import ConfigError
from neurodyn.train import TrainConfig, apply_overrides, build_model, dump_toml, load_config, register_model
from neurodyn.train.config import parse_value, read_toml, write_config
from neurodyn.train.models import _MODELS, available_models, resolve_model_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_complete_and_valid():
    cfg = TrainConfig()
    assert cfg.model["kind"] == "mlp" and cfg.model["hidden"] == [128]  # kind defaults filled in
    assert cfg.train.loss == "mean_membrane" and cfg.train.optimizer == "adam" and cfg.train.scheduler == "cosine"
    assert TrainConfig(data="somewhere").data.path == "somewhere"


def test_toml_round_trip(tmp_path):
    cfg = load_config(None, ["data.path=\"a b/c\\\\d\"", "model.hidden=[7, 5]", "lr=1e-3", "augment=true",
                             "loss=per_step", "scheduler=step", "gamma=0.25"])
    p = write_config(cfg, tmp_path / "run" / "config.toml")
    back = load_config(p)
    assert back == cfg
    assert back.data.path == "a b/c\\d" and back.model["hidden"] == [7, 5] and back.train.lr == 1e-3
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_precedence_file_then_overrides_in_order(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('out = "runs/x"\n[data]\npath = "d"\nbin_us = 5000\n[model]\nkind = "mlp"\nhidden = [64]\n'
                 '[train]\nepochs = 9\nlr = 0.01\n')
    cfg = load_config(f, ["epochs=3", "model.hidden=[256,256]", "train.epochs=4"])
    assert cfg.train.epochs == 4                       # later override wins
    assert cfg.model["hidden"] == [256, 256]
    assert cfg.data.bin_us == 5000 and cfg.train.lr == 0.01 and cfg.out == "runs/x"  # from the file
    assert cfg.model["neuron"] == "lif"                # kind default where the file is silent
    assert cfg.train.batch_size == TrainConfig().train.batch_size


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("[256, 256]") == [256, 256] and parse_value('"x y"') == "x y"
    assert parse_value("alif") == "alif" and parse_value("runs/a") == "runs/a"  # bare strings


@pytest.mark.parametrize("text, key", [
    ('[train]\nepoch = 3\n', "train.epoch"),
    ('[data]\npaht = "x"\n', "data.paht"),
    ('[model]\nkind = "mlp"\nhiden = [3]\n', "model.hiden"),
    ('outt = "x"\n', "outt"),
    ('[optim]\nlr = 1.0\n', "optim"),
])
def test_unknown_keys_in_files_are_named(tmp_path, text, key):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=f"'{key}'") as e:
        load_config(f)
    assert str(f) in str(e.value)


@pytest.mark.parametrize("override, match", [
    ("epoch=3", "unknown config key 'epoch'"),
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("model.hiden=[3]", "model.hiden"),
    ("train=3", "'train' is a section"),
    ("epochs", "not key=value"),
    ("epochs=three", "train.epochs = 'three': expected int"),
    ("lr=-1", "train.lr = -1.0 is out of range"),
    ("loss=mse", "train.loss = 'mse': choose one of mean_membrane, spike_count, per_step"),
    ("scheduler=linear", "train.scheduler"),
    ("model.hidden=3", "model.hidden = 3: expected list"),
    ("augment=1", "data.augment = 1: expected bool"),
    ("kind=transformer", "unknown model kind 'transformer'"),
])
def test_bad_overrides_raise_one_clear_error(override, match):
    with pytest.raises(ConfigError, match=match.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, [override])


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[train\nepochs = 3\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        read_toml(f)
    with pytest.raises(ConfigError, match="no such config file"):
        read_toml(tmp_path / "missing.toml")


def test_shipped_configs_load_and_point_at_the_sample_data():
    for name in sorted(p.name for p in (ROOT / "configs").glob("*.toml")):
        cfg = load_config(ROOT / "configs" / name)
        assert (ROOT / cfg.data.path).is_dir() and cfg.data.path.startswith("datasets/"), name
    # the plain SHD MLP spells out the defaults: the same run as `neurodyn train --data <sample>`
    assert load_config(ROOT / "configs" / "shd_mlp.toml") == load_config(None, ["data.path=datasets/shd_sample"])


class _Toy(nn.Module):
    def __init__(self, n_in, n_classes, width):
        super().__init__()
        self.lin = nn.Linear(n_in, n_classes)
        self.width = width

    def forward(self, x):
        return self.lin(x)


@pytest.fixture
def toy_kind():
    register_model("toy_for_test", lambda n_in, n_cls, cfg, dt, backend: _Toy(n_in, n_cls, cfg["width"]),
                   {"width": 4, "seed": 1})
    yield "toy_for_test"
    _MODELS.pop("toy_for_test", None)


def test_registry_builds_registered_kinds_from_config(toy_kind):
    assert toy_kind in available_models()
    cfg = load_config(None, [f"kind={toy_kind}", "model.width=9"])
    assert cfg.model == {"kind": toy_kind, "width": 9, "seed": 1}
    m = build_model(cfg.model, 5, 3, 1.0)
    assert isinstance(m, _Toy) and m.width == 9 and m(torch.zeros(2, 1, 5)).shape == (2, 1, 3)
    # switching kind drops the old kind's options; a bare name shared by two sections is ambiguous
    assert load_config(None, ["hidden=[3]", f"kind={toy_kind}"]).model == {"kind": toy_kind, "width": 4, "seed": 1}
    with pytest.raises(ConfigError, match="'seed' is ambiguous"):
        load_config(None, [f"kind={toy_kind}", "seed=3"])
    assert load_config(None, [f"kind={toy_kind}", "train.seed=3"]).train.seed == 3
    with pytest.raises(ConfigError, match="unknown config key 'model.hidden' for model kind 'toy_for_test'"):
        resolve_model_config({"kind": toy_kind, "hidden": [3]})


def test_registry_rejects_bad_registrations(toy_kind):
    with pytest.raises(ConfigError, match="already registered"):
        register_model(toy_kind, lambda *a: None, {})
    with pytest.raises(ConfigError, match="'kind' is reserved"):
        register_model("other_toy", lambda *a: None, {"kind": "x"})
    register_model(toy_kind, lambda *a: "not a module", {"width": 1}, replace=True)
    with pytest.raises(ConfigError, match="returned str, not an nn.Module"):
        build_model({"kind": toy_kind}, 3, 2, 1.0)


def test_mlp_kind_builds_what_the_config_says():
    m = build_model({"kind": "mlp", "hidden": [6, 5], "dropout": 0.0, "readout": "lif"}, 4, 3, 2.0, "torch")
    lin = [x for x in m if type(x).__name__ == "Linear"]
    assert [(x.in_features, x.out_features) for x in lin] == [(4, 6), (6, 5), (5, 3)]
    assert type(m[-1]).__name__ == "LIF" and m[-1].dt == 2.0
    with pytest.raises(ConfigError, match="readout"):
        build_model({"kind": "mlp", "readout": "softmax"}, 4, 3, 1.0)


@pytest.mark.parametrize("neuron, taus", [("lif", ["tau_mem"]), ("alif", ["tau_mem", "tau_adapt"]),
                                          ("cuba", ["tau_mem", "tau_syn"])])
@pytest.mark.parametrize("recurrent", [False, True])
def test_mlp_learns_one_time_constant_per_neuron(neuron, taus, recurrent):
    m = build_model({"kind": "mlp", "hidden": [6, 5], "neuron": neuron, "recurrent": recurrent, "learn_tau": True,
                     "tau_mem": 15.0}, 4, 3, 1.0, "torch")
    learned = {n: p for n, p in m.named_parameters() if n.rsplit(".", 1)[-1].startswith("tau")}
    assert sorted({n.rsplit(".", 1)[-1] for n in learned}) == sorted(taus)
    assert sorted(p.shape[0] for p in learned.values() if p.shape) == sorted([6] * len(taus) + [5] * len(taus))
    assert all(torch.all(p == 15.0) for n, p in learned.items() if n.endswith("tau_mem"))
    fixed = build_model({"kind": "mlp", "hidden": [6], "neuron": neuron}, 4, 3, 1.0, "torch")
    assert not any("tau" in n for n, _ in fixed.named_parameters())


def test_dump_toml_rejects_unwritable_values():
    with pytest.raises(ConfigError, match="cannot write"):
        dump_toml({"model": {"x": None}})


def test_apply_overrides_does_not_mutate_input():
    d = TrainConfig().to_dict()
    before = repr(d)
    apply_overrides(d, ["epochs=2", "model.hidden=[1]"])
    assert repr(d) == before

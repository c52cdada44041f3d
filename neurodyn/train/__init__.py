"""Training: run configs, the model registry, losses, the training loop, atomic checkpoints
with exact resume, evaluation of saved runs, plots."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig, TrainOptions, apply_overrides, dump_toml, load_config, write_config
from .losses import class_scores, loss_fn, readout_logits, running_mean, spike_counts
from .models import available_models, build_model, register_model, spiking_mlp
from .trainer import confusion_matrix, evaluate, train

__all__ = ["DataConfig", "TrainConfig", "TrainOptions", "apply_overrides", "available_models", "build_model",
           "class_scores", "confusion_matrix", "dump_toml", "evaluate", "load_checkpoint", "load_config", "loss_fn",
           "readout_logits", "register_model", "running_mean", "save_checkpoint", "spike_counts", "spiking_mlp",
           "train", "write_config"]

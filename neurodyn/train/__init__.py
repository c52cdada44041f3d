"""Training: models, the training loop, atomic checkpoints, plots."""
from .checkpoint import save_checkpoint
from .models import spiking_mlp
from .trainer import TrainConfig, evaluate, readout_logits, train

__all__ = ["TrainConfig", "evaluate", "readout_logits", "save_checkpoint", "spiking_mlp", "train"]

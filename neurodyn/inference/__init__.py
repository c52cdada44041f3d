"""Dynamic-confidence early termination: each sample stops once its running readout is confident.

The measures (max softmax, top-2 margin, entropy) live in ``core.confidence``, defined once for the
kernels and torch; they are re-exported here.

curves      exit steps and accuracy-vs-timesteps curves replayed from one recorded run
calibrate   threshold choice on held-out data for a target accuracy loss (method documented there)
oracle      best achievable mean timesteps knowing the labels
loss        anytime_loss: cross-entropy of every step's running readout, for training
compact     early exit on the dense torch path with batch compaction between chunks
report      early_exit_report / plot_pareto behind ``neurodyn eval --early-exit``
"""
from .calibrate import Calibration, calibrate_from_trace, calibrate_threshold
from .compact import ExitResult, run_dense_early_exit
from ..core.confidence import MEASURES, EarlyExit, confidence, confidence_trace, running_logits
from .curves import Curve, exit_from_trace, fixed_steps_curve, threshold_sweep
from .loss import anytime_loss
from .oracle import ORACLES, oracle_steps, oracle_summary
from .report import early_exit_report, eval_early_exit_run, format_report, plot_pareto, record_readout

__all__ = ["EarlyExit", "MEASURES", "confidence", "confidence_trace", "running_logits", "Calibration",
           "calibrate_threshold", "calibrate_from_trace", "ExitResult", "run_dense_early_exit", "Curve",
           "exit_from_trace", "fixed_steps_curve", "threshold_sweep", "anytime_loss", "ORACLES", "oracle_steps",
           "oracle_summary", "early_exit_report", "eval_early_exit_run", "format_report", "plot_pareto", "record_readout"]

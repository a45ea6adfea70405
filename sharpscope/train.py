"""0.1's import path of training: re-exports :mod:`sharpscope.training`."""

from __future__ import annotations

from .training import (
    NO_TEST_DATA,
    PERTURBATIONS,
    SCHEDULES,
    TrainResult,
    TrainSettings,
    lr_factor,
    train,
)
from .training.epoch import check_world as _check_world
from .training.epoch import rank_batches as _rank_batches
from .training.evaluate import autocast as _autocast
from .training.evaluate import check_bf16 as _check_bf16
from .training.evaluate import check_labels as _check_labels
from .training.evaluate import evaluate as _evaluate
from .training.evaluate import non_finite_weights as _non_finite_weights
from .training.resume import RUN_DIRS as _RUN_DIRS
from .training.resume import RUN_FILES as _RUN_FILES
from .training.resume import move_run_aside as _move_run_aside
from .training.resume import restore_run as _restore_run
from .training.resume import rng_state as _rng_state
from .training.resume import run_entries as _run_entries
from .training.resume import set_rng_state as _set_rng_state
from .training.resume import settings_diff as _settings_diff
from .training.resume import to_cpu as _to_cpu
from .training.resume import write_metrics as _write_metrics

__all__ = [
    "NO_TEST_DATA",
    "PERTURBATIONS",
    "SCHEDULES",
    "TrainResult",
    "TrainSettings",
    "lr_factor",
    "train",
]
_PRIVATE = (
    _RUN_DIRS, _RUN_FILES, _autocast, _check_bf16, _check_labels, _check_world, _evaluate,
    _move_run_aside, _non_finite_weights, _rank_batches, _restore_run, _rng_state,
    _run_entries, _set_rng_state, _settings_diff, _to_cpu, _write_metrics,
)  # fmt: skip

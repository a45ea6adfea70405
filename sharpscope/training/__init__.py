"""Training with SGD, SAM, ASAM or XSAM into a resumable run folder (see :mod:`.loop`).

Modules: :mod:`.settings` (:class:`TrainSettings`), :mod:`.schedule` (:func:`lr_factor`),
:mod:`.run` (a run's state and checkpoints), :mod:`.epoch` (one epoch), :mod:`.evaluate`,
:mod:`.resume` (RNG state, settings check, ``--force``), :mod:`.loop` (:func:`train`),
:mod:`.seeds` (:func:`train_seeds`: one run folder per seed).
"""

from __future__ import annotations

from .loop import train
from .result import NO_TEST_DATA, TrainResult
from .schedule import SCHEDULES, lr_factor
from .seeds import seed_folder, train_seeds
from .settings import PERTURBATIONS, TrainSettings

__all__ = [
    "NO_TEST_DATA",
    "PERTURBATIONS",
    "SCHEDULES",
    "TrainResult",
    "TrainSettings",
    "lr_factor",
    "seed_folder",
    "train",
    "train_seeds",
]

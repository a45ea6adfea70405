"""sharpscope: did this training really find a flatter minimum?

Sharpness-aware optimizers (SAM, ASAM, XSAM) and fast, exact-tested probes of
the minima they find: Hessian spectra, loss-landscape slices, XSAM's slerp plane
and sharpness measures, for any ``nn.Module`` and any iterable of batches.

The names below are importable from ``sharpscope`` directly; the heavier ones
(Hessian, landscape, plane, compare...) are loaded on first use, so
``import sharpscope`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import (
    CheckpointError,
    DataError,
    DiskFullError,
    FolderLockedError,
    ModelSpecError,
    NonFiniteLossError,
    SharpscopeError,
)

# Every other name is imported on first use: ``import sharpscope`` (and every CLI
# ``--help``) must not pay for torch, scipy or matplotlib.
_LAZY: dict[str, str] = {
    # models and data
    "MODELS": "sharpscope.models",
    "ModelSpec": "sharpscope.models",
    "build_model": "sharpscope.models",
    "count_parameters": "sharpscope.models",
    "register_model": "sharpscope.models",
    "DataSpec": "sharpscope.data",
    "DataSplits": "sharpscope.data",
    "load_data": "sharpscope.data",
    "iterate_batches": "sharpscope.data",
    "subsample": "sharpscope.data",
    "get_loss": "sharpscope.losses",
    # checkpoints and problems
    "Checkpoint": "sharpscope.checkpoint",
    "save_checkpoint": "sharpscope.checkpoint",
    "load_checkpoint": "sharpscope.checkpoint",
    "Problem": "sharpscope.problem",
    "load_problem": "sharpscope.problem",
    "check_comparable": "sharpscope.problem",
    # exact references
    "dense_hessian": "sharpscope.reference",
    "dense_loss": "sharpscope.reference",
    # optimizers and training
    "SAM": "sharpscope.optim",
    "ASAM": "sharpscope.optim",
    "XSAM": "sharpscope.optim",
    "make_optimizer": "sharpscope.optim",
    "xsam_ascent": "sharpscope.optim",
    "alpha_search": "sharpscope.optim",
    "AscentResult": "sharpscope.optim",
    "train": "sharpscope.train",
    "TrainResult": "sharpscope.train",
    # Hessian
    "HessianOperator": "sharpscope.hessian",
    "lanczos": "sharpscope.hessian",
    "hessian_eigenvalues": "sharpscope.hessian",
    "layer_eigenvalues": "sharpscope.hessian",
    "EigenResult": "sharpscope.hessian",
    "hessian_trace": "sharpscope.hessian",
    "hutchinson_trace": "sharpscope.hessian",
    "hutchpp_trace": "sharpscope.hessian",
    "TraceResult": "sharpscope.hessian",
    "spectral_density": "sharpscope.hessian",
    "slq_density": "sharpscope.hessian",
    "DensityResult": "sharpscope.hessian",
    "save_vectors": "sharpscope.hessian",
    "load_vectors": "sharpscope.hessian",
    "probe_over_training": "sharpscope.hessian",
    # landscapes
    "Directions": "sharpscope.landscape",
    "random_directions": "sharpscope.landscape",
    "save_directions": "sharpscope.landscape",
    "load_directions": "sharpscope.landscape",
    "pca_directions": "sharpscope.landscape",
    "Surface": "sharpscope.landscape",
    "evaluate_grid": "sharpscope.landscape",
    # plane and sharpness
    "xsam_plane": "sharpscope.plane",
    "PlaneResult": "sharpscope.plane",
    "plot_plane": "sharpscope.plane",
    "sharpness": "sharpscope.sharpness",
    "SharpnessResult": "sharpscope.sharpness",
    "SHARPNESS_MEASURES": "sharpscope.sharpness",
    "worst_case_sharpness": "sharpscope.sharpness",
    "average_case_sharpness": "sharpscope.sharpness",
    # distributed (torchrun)
    "DistContext": "sharpscope.distributed",
    "init_distributed": "sharpscope.distributed",
    # comparison
    "compare": "sharpscope.compare",
    "ComparisonReport": "sharpscope.compare",
    "run_demo": "sharpscope.demo",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sharpscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    # errors
    "SharpscopeError",
    "CheckpointError",
    "DataError",
    "ModelSpecError",
    "NonFiniteLossError",
    "FolderLockedError",
    "DiskFullError",
    *_LAZY,
]

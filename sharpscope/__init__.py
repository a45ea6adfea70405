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
    "MODELS": "sharpscope.problem.models",
    "ModelSpec": "sharpscope.problem.models",
    "build_model": "sharpscope.problem.models",
    "count_parameters": "sharpscope.problem.models",
    "register_model": "sharpscope.problem.models",
    "DataSpec": "sharpscope.problem.data",
    "DataSplits": "sharpscope.problem.data",
    "load_data": "sharpscope.problem.data",
    "iterate_batches": "sharpscope.problem.data",
    "subsample": "sharpscope.problem.data",
    "get_loss": "sharpscope.problem.losses",
    # checkpoints and problems
    "Checkpoint": "sharpscope.problem.checkpoint",
    "save_checkpoint": "sharpscope.problem.checkpoint",
    "load_checkpoint": "sharpscope.problem.checkpoint",
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
    "train": "sharpscope.training",
    "TrainResult": "sharpscope.training",
    "TrainSettings": "sharpscope.training",
    "train_seeds": "sharpscope.training",
    # Hessian
    "HessianOperator": "sharpscope.hessian",
    "lanczos": "sharpscope.hessian",
    "hessian_eigenvalues": "sharpscope.hessian",
    "layer_eigenvalues": "sharpscope.hessian",
    "EigenResult": "sharpscope.hessian",
    "hessian_trace": "sharpscope.hessian",
    "hutchinson_trace": "sharpscope.hessian",
    "hutchpp_trace": "sharpscope.hessian",
    "trace_to_stderr": "sharpscope.hessian",
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
    "GridSettings": "sharpscope.landscape",
    # plane and sharpness
    "xsam_plane": "sharpscope.sharpness",
    "PlaneResult": "sharpscope.sharpness",
    "PlaneSettings": "sharpscope.sharpness",
    "plot_plane": "sharpscope.sharpness",
    "sharpness": "sharpscope.sharpness",
    "SharpnessResult": "sharpscope.sharpness",
    "SHARPNESS_MEASURES": "sharpscope.sharpness",
    "worst_case_sharpness": "sharpscope.sharpness",
    "average_case_sharpness": "sharpscope.sharpness",
    # distributed (torchrun)
    "DistContext": "sharpscope.runtime.distributed",
    "init_distributed": "sharpscope.runtime.distributed",
    # comparison
    "compare": "sharpscope.compare",
    "ComparisonReport": "sharpscope.compare",
    "CompareSettings": "sharpscope.compare",
    "summarize": "sharpscope.compare.stats",
    "compare_groups": "sharpscope.compare.stats",
    "kendall_with_gap": "sharpscope.compare.stats",
    "FigureOptions": "sharpscope.report",
    # any batch structure
    "loss_on_batch": "sharpscope.runtime.batches",
    "batch_loss_fn": "sharpscope.runtime.batches",
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

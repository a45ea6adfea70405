"""sharpscope: did this training really find a flatter minimum?

Sharpness-aware optimizers (SAM, ASAM, XSAM) and fast, exact-tested probes of
the minima they find: Hessian spectra, loss-landscape slices, XSAM's slerp plane
and sharpness measures, for any ``nn.Module`` and any iterable of batches.
"""

from ._version import __version__
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import DataSpec, DataSplits, iterate_batches, load_data, subsample
from .errors import CheckpointError, DataError, ModelSpecError, NonFiniteLossError, SharpscopeError
from .losses import get_loss
from .models import MODELS, ModelSpec, build_model, count_parameters, register_model
from .problem import Problem, check_comparable, load_problem
from .reference import dense_hessian, dense_loss

__all__ = [
    "__version__",
    # models and data
    "MODELS",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "register_model",
    "DataSpec",
    "DataSplits",
    "load_data",
    "iterate_batches",
    "subsample",
    "get_loss",
    # checkpoints and problems
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "Problem",
    "load_problem",
    "check_comparable",
    # exact references
    "dense_hessian",
    "dense_loss",
    # errors
    "SharpscopeError",
    "CheckpointError",
    "DataError",
    "ModelSpecError",
    "NonFiniteLossError",
]

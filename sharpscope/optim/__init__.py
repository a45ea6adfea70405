"""Sharpness-aware optimizers (SAM, ASAM, XSAM) and the geometry they share."""

from .base import BN_POLICIES, SharpnessAwareOptimizer, running_stats_frozen
from .factory import make_optimizer, optimizer_hparams
from .geometry import angle, global_dot, global_norm, slerp, slerp_coefficients
from .sam import ASAM, SAM
from .xsam import XSAM, AscentResult, alpha_grid, alpha_search, xsam_ascent

__all__ = [
    # geometry
    "angle",
    "global_dot",
    "global_norm",
    "slerp",
    "slerp_coefficients",
    # optimizers
    "SharpnessAwareOptimizer",
    "SAM",
    "ASAM",
    "XSAM",
    "BN_POLICIES",
    "running_stats_frozen",
    "make_optimizer",
    "optimizer_hparams",
    # XSAM building blocks
    "AscentResult",
    "xsam_ascent",
    "alpha_search",
    "alpha_grid",
]

"""Sharpness-aware optimizers and the geometry they share."""

from .geometry import angle, global_dot, global_norm, slerp, slerp_coefficients

__all__ = ["angle", "global_dot", "global_norm", "slerp", "slerp_coefficients"]

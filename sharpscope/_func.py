"""Compatibility: 0.1's ``sharpscope._func``, now :mod:`sharpscope.runtime.functional`."""

from __future__ import annotations

from .runtime.functional import (  # noqa: F401
    flatten_dict,
    functional_loss,
    layer_groups,
    params_dict,
    preserved,
    probe_mode,
    select_parameters,
    unflatten_vector,
)

__all__ = [
    "select_parameters",
    "layer_groups",
    "preserved",
    "probe_mode",
    "functional_loss",
    "flatten_dict",
    "unflatten_vector",
    "params_dict",
]

"""Compatibility: 0.1's ``sharpscope.models``, now :mod:`sharpscope.problem.models`."""

from __future__ import annotations

from .problem.models import (  # noqa: F401
    MLP,
    MODELS,
    VGG,
    BasicBlock,
    CifarResNet,
    ModelFactory,
    ModelSpec,
    SmallCNN,
    build_model,
    check_model_source,
    count_parameters,
    register_model,
)

__all__ = [
    "ModelSpec",
    "MODELS",
    "build_model",
    "check_model_source",
    "register_model",
    "count_parameters",
]

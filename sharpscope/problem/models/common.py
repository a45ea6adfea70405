"""Helpers shared by the built-in models: input shapes and activations by name."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from ...errors import ModelSpecError


def _prod(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


def _image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (1, shape[0], shape[1])
    raise ModelSpecError(
        f"this model needs image inputs (C, H, W) but the data has shape {list(shape)}; use 'mlp'"
    )


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def _activation(name: str) -> Callable[[], nn.Module]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ModelSpecError(
            f"unknown activation {name!r}: choose one of {', '.join(_ACTIVATIONS)}"
        ) from None

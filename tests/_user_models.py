"""Model factories that tests name by import path (``_user_models:make_net``), as a user would."""

from __future__ import annotations

from torch import nn


def make_net(input_shape=(1, 8, 8), num_classes=10, width: int = 8) -> nn.Module:
    """A tiny MLP that takes the data's shape and class count plus a ``width`` option."""
    size = 1
    for s in input_shape:
        size *= int(s)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(size, width), nn.Tanh(), nn.Linear(width, num_classes)
    )


def make_fixed(hidden: int = 4) -> nn.Module:
    """A factory that knows nothing about the data: 64 inputs, 10 outputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def make_any(**kwargs) -> nn.Module:
    """Takes ``**kwargs``: receives ``input_shape`` and ``num_classes`` too."""
    return make_net(kwargs["input_shape"], kwargs["num_classes"], kwargs.get("width", 8))


def not_a_module(**kwargs) -> str:
    return "a string"


def broken(**kwargs) -> nn.Module:
    raise RuntimeError("boom inside the user's factory")


NOT_CALLABLE = 3

"""Input normalisation, explicit and recorded: ``none``, ``standard`` or fixed numbers.

=======================  ==============================================================
``--normalize``          what the inputs become
=======================  ==============================================================
``none``                 the data exactly as stored on disk
``standard``             ``(x - mean) / std`` per channel, with the training split's
                         statistics (those stored in a sharpscope checkpoint when it
                         has them: never recomputed then)
``MEAN,STD``             ``(x - MEAN) / STD`` with the same two numbers for every channel
``M1,M2,../S1,S2,..``    per-channel means before the ``/``, standard deviations after
=======================  ==============================================================

The channel is dimension 1 of ``x`` (``(N, C, H, W)``: per colour channel; ``(N, F)``:
per feature). Only floating inputs are normalised: token ids never are, nor mapping batches.
The same value is accepted in a data spec as ``SPEC?normalize=VALUE``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...errors import DataError

__all__ = ["parse_normalize", "normalize_mode", "standard_stats", "apply_stats"]


def _numbers(text: str, where: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise DataError(f"{where}: {text!r} is not a comma-separated list of numbers") from exc
    if not values or not all(math.isfinite(v) for v in values):
        raise DataError(f"{where}: {text!r} must hold finite numbers")
    return values


def parse_normalize(value: Any, *, where: str = "--normalize") -> bool | str:
    """``True`` (standard), ``False`` (none) or the canonical ``MEAN/STD`` string.

    Accepts booleans, ``none``/``off``/``false``, ``standard``/``true``, ``MEAN,STD``
    and ``M1,M2,../S1,S2,..``; anything else is one :class:`DataError` line.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("none", "off", "false", "raw", "0"):
        return False
    if text in ("standard", "true", "on", "1"):
        return True
    if "/" in text:
        left, _, right = text.partition("/")
        mean, std = _numbers(left, where), _numbers(right, where)
    else:
        both = _numbers(text, where)
        if len(both) != 2:
            raise DataError(
                f"{where} must be none, standard, MEAN,STD or M1,M2,../S1,S2,.. "
                f"(per-channel lists), got {value!r}"
            )
        mean, std = both[:1], both[1:]
    if len(mean) != len(std):
        raise DataError(f"{where}: {len(mean)} means but {len(std)} standard deviations")
    if any(s <= 0 for s in std):
        raise DataError(f"{where}: standard deviations must be positive, got {std}")
    return ",".join(repr(m) for m in mean) + "/" + ",".join(repr(s) for s in std)


def normalize_mode(normalize: bool | str) -> str:
    """``"standard"``, ``"none"`` or ``"fixed"``."""
    if isinstance(normalize, str):
        return "fixed"
    return "standard" if normalize else "none"


def fixed_stats(normalize: str) -> tuple[list[float], list[float]]:
    left, _, right = normalize.partition("/")
    return [float(v) for v in left.split(",")], [float(v) for v in right.split(",")]


def standard_stats(x_train: torch.Tensor) -> tuple[list[float], list[float]]:
    """The per-channel mean and std of ``x_train`` exactly as sharpscope 0.1 computed them."""
    dims = [0] + list(range(2, x_train.ndim))
    m = x_train.mean(dim=dims, keepdim=True)
    s = (
        x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
        if len(x_train) > 1
        else torch.ones_like(m)
    )
    return m.flatten().tolist(), s.flatten().tolist()


def apply_stats(
    x: torch.Tensor, mean: list[float], std: list[float], *, where: str = "data"
) -> torch.Tensor:
    """``(x - mean) / std`` per channel (dimension 1); one value applies to every channel."""
    channels = int(x.shape[1]) if x.ndim > 1 else 1
    if len(mean) not in (1, channels):
        raise DataError(
            f"{where}: the normalisation has {len(mean)} channel values but the inputs have "
            f"{channels} channels (shape {list(x.shape[1:])})"
        )
    shape = [1] * x.ndim
    if x.ndim > 1:
        shape[1] = len(mean)
    m = torch.tensor(mean, dtype=x.dtype).reshape(shape)
    s = torch.tensor(std, dtype=x.dtype).reshape(shape)
    return (x - m) / s

"""Evaluation and the numeric checks of a run: mean loss and accuracy of a split, labels
that fit the model, finite weights, bfloat16 autocast."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import nn

from ..data import DataSplits, iterate_batches
from ..errors import SharpscopeError

__all__ = [
    "IGNORE_INDEX",
    "SplitMetrics",
    "autocast",
    "check_bf16",
    "check_labels",
    "evaluate",
    "non_finite_weights",
    "perplexity",
    "prediction_counts",
]

IGNORE_INDEX = -100  # the target of a sequence position that no loss or accuracy counts


class SplitMetrics(NamedTuple):
    """A split's mean loss (per sample), accuracy (per counted target) and mean loss per
    counted target (for a token loss: the mean token cross-entropy); all None when empty."""

    loss: float | None
    acc: float | None
    token_loss: float | None


def prediction_counts(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, counted)`` predictions of a batch, as tensors.

    Every target element counts: one per sample for ``(B, C)`` outputs, one per token for
    sequence outputs ``(B, T, V)`` with ``(B, T)`` targets, except the positions whose
    target is ``ignore_index`` (-100), which no loss counts either.
    """
    hit = out.argmax(-1) == y
    if out.ndim >= 3 and not y.is_floating_point():
        keep = y != IGNORE_INDEX
        return (hit & keep).sum(), keep.sum()
    return hit.sum(), torch.tensor(y.numel(), device=y.device)


def perplexity(mean_ce: float | None) -> float | None:
    """``exp(mean token cross-entropy)`` (``inf`` when it overflows; None for None)."""
    if mean_ce is None:
        return None
    try:
        return math.exp(mean_ce)
    except OverflowError:
        return math.inf


def autocast(device: torch.device, bf16: bool) -> Any:
    """bfloat16 autocast on ``device`` when ``bf16``, else nothing."""
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def check_bf16(device: torch.device) -> None:
    """Refuse ``--bf16`` where bfloat16 autocast is missing or fails."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SharpscopeError(
            f"--bf16: this GPU ({torch.cuda.get_device_name(device)}) does not support bfloat16"
        )
    if not torch.amp.is_autocast_available(device.type):
        raise SharpscopeError(
            f"--bf16: bfloat16 autocast is not available on device {device.type!r}"
        )
    try:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except RuntimeError as exc:
        raise SharpscopeError(f"--bf16: bfloat16 autocast fails on {device.type}: {exc}") from exc


@torch.no_grad()
def evaluate(
    net: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    bf16: bool,
    ctx: Any = None,
) -> SplitMetrics:
    """Mean loss and accuracy on ``(x, y)`` (see :class:`SplitMetrics`); all None for an empty
    split (no test data)."""
    n = len(y)
    if n == 0:
        return SplitMetrics(None, None, None)
    if ctx is not None:  # each rank evaluates a contiguous part; the sums are all-reduced
        part = torch.tensor_split(torch.arange(n), ctx.world_size)[ctx.rank]
        x, y = x[part], y[part]
    was = net.training
    net.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, correct, counted, token loss
    for xb, yb in iterate_batches(x, y, batch_size, device=device):
        with autocast(device, bf16):
            out = net(xb)
            loss = loss_fn(out, yb)
        correct, counted = prediction_counts(out, yb)
        sums += torch.stack(
            [loss.double() * len(yb), correct.double(), counted.double(), loss.double() * counted]
        )
    net.train(was)
    if ctx is not None:
        sums = ctx.all_reduce(sums)
    total, correct, counted, token_total = (float(v) for v in sums)
    return SplitMetrics(total / n, correct / max(1.0, counted), token_total / max(1.0, counted))


def check_labels(net: nn.Module, splits: DataSplits, device: torch.device) -> None:
    """Every class label must index one of the model's outputs (else the loss fails mid-run)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        width = net(splits.x_train[:1].to(device)).shape
    net.train(was)
    if len(width) != 2:
        return
    width = int(width[-1])
    for split, y in (("training", splits.y_train), ("test", splits.y_test)):
        bad = ((y < 0) | (y >= width)).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            raise SharpscopeError(
                f"{split} label {int(y[i])} at index {i} is outside 0..{width - 1} "
                f"for a model with {width} outputs"
            )


def non_finite_weights(net: nn.Module) -> str | None:
    """The name of the first parameter or buffer holding NaN/Inf, else None."""
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None

"""Evaluation and the numeric checks of a run: mean loss and accuracy of a split, labels
that fit the model, finite weights, bfloat16 autocast."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from ..data import DataSplits, iterate_batches
from ..errors import SharpscopeError

__all__ = ["autocast", "check_bf16", "check_labels", "evaluate", "non_finite_weights"]


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
) -> tuple[float | None, float | None]:
    """Mean loss and accuracy on ``(x, y)``; ``(None, None)`` for an empty split (no test data)."""
    n = len(y)
    if n == 0:
        return None, None
    if ctx is not None:  # each rank evaluates a contiguous part; the sums are all-reduced
        part = torch.tensor_split(torch.arange(n), ctx.world_size)[ctx.rank]
        x, y = x[part], y[part]
    was = net.training
    net.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for xb, yb in iterate_batches(x, y, batch_size, device=device):
        with autocast(device, bf16):
            out = net(xb)
            loss = loss_fn(out, yb)
        total += loss.double() * len(yb)
        correct += (out.argmax(-1) == yb).sum()
    net.train(was)
    if ctx is not None:
        sums = ctx.all_reduce(torch.stack([total, correct.double()]))
        total, correct = sums[0], sums[1]
    return float(total) / n, float(correct) / n


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

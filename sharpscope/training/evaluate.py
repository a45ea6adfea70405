"""Evaluation and the numeric checks of a run: mean loss and accuracy of a split, labels
that fit the model, finite weights, bfloat16 autocast."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import SharpscopeError
from ..problem.data import DataSplits, iterate_batches
from ..runtime.batches import batch_target, batch_weight, call_model, loss_of_output, output_tensor

__all__ = [
    "IGNORE_INDEX",
    "SplitMetrics",
    "autocast",
    "check_bf16",
    "check_labels",
    "evaluate",
    "evaluate_batches",
    "is_token_target",
    "score_counts",
    "non_finite_weights",
    "perplexity",
    "prediction_counts",
]

IGNORE_INDEX = -100  # the target of a sequence position that no loss or accuracy counts


class SplitMetrics(NamedTuple):
    """A split's mean loss (per sample; per token for a loss that weighs batches by their
    tokens, :func:`~sharpscope.runtime.batches.batch_weight`), accuracy (per counted target) and mean loss per
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


def is_token_target(y: Any) -> bool:
    """Integer ``(N, T)`` targets: token windows (perplexity is recorded for them)."""
    return (
        isinstance(y, torch.Tensor)
        and y.ndim == 2
        and not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
    )


def score_counts(out: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prediction_counts` of any batch, counted only where ``out`` is a class score
    (``(B, C)`` or ``(B, T, V)`` with integer targets of the matching shape); else ``(0, 0)``.
    An ``(x, y)`` pair of tensors is counted exactly as :func:`prediction_counts`."""
    if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        return prediction_counts(out.detach(), batch[1])
    y = batch_target(batch)
    if (
        not isinstance(out, torch.Tensor)
        or not isinstance(y, torch.Tensor)
        or y.is_floating_point()
        or out.ndim < 2
        or tuple(out.shape[:-1]) != tuple(y.shape)
    ):
        zero = torch.zeros((), dtype=torch.int64)
        return zero, zero
    return prediction_counts(out.detach(), y)


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
    # loss, correct, counted, token loss, weight
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    for xb, yb in iterate_batches(x, y, batch_size, device=device):
        with autocast(device, bf16):
            out = net(xb)
            loss = loss_of_output(loss_fn, out, (xb, yb))
        correct, counted = prediction_counts(out, yb)
        sums += _row(loss, batch_weight((xb, yb), loss_fn), correct, counted)
    net.train(was)
    if ctx is not None:
        sums = ctx.all_reduce(sums)
    return _metrics(sums, scored=True)


def _row(loss: torch.Tensor, w: float, correct: torch.Tensor, counted: torch.Tensor) -> Any:
    """One batch's sums: weighted loss, correct, counted, token loss, weight."""
    loss = loss.double()
    correct, counted = correct.to(loss.device).double(), counted.to(loss.device).double()
    weight = torch.tensor(w, dtype=torch.float64, device=loss.device)
    return torch.stack([loss * w, correct, counted, loss * counted, weight])


def _metrics(sums: torch.Tensor, *, scored: bool) -> SplitMetrics:
    total, correct, counted, token_total, weight = (float(v) for v in sums)
    acc = correct / max(1.0, counted) if scored or counted > 0 else None
    return SplitMetrics(total / weight, acc, token_total / max(1.0, counted))


@torch.no_grad()
def evaluate_batches(
    net: nn.Module, loss_fn: Callable, batches: list[Any], *, device: torch.device, bf16: bool
) -> SplitMetrics:
    """:func:`evaluate` on batches of any structure (on ``device``): the loss weighted by
    :func:`~sharpscope.runtime.batches.batch_weight`; accuracy only where the output is a
    class score (None otherwise); all None for no batches."""
    if not batches:
        return SplitMetrics(None, None, None)
    was = net.training
    net.eval()
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    for batch in batches:
        with autocast(device, bf16):
            output = call_model(net, batch)
            loss = loss_of_output(loss_fn, output, batch)
        try:
            out = output_tensor(output)
        except SharpscopeError:
            out = None
        correct, counted = score_counts(out, batch)
        sums += _row(loss, batch_weight(batch, loss_fn), correct, counted).to(device)
    net.train(was)
    return _metrics(sums, scored=False)


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

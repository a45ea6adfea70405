"""Loss functions by name. Every loss returns the mean over the batch (over the tokens
for sequences).

``cross_entropy`` takes class logits ``(N, C)`` with labels ``(N,)``, and also next-token
logits ``(B, T, V)`` with token targets ``(B, T)`` (the GPT on the text sources), which it
hands to :func:`sequence_cross_entropy`. PyTorch's own K-dimensional form ``(N, C, L)``
with ``(N, L)`` keeps its meaning; a shape that reads both ways (``T == V``) is refused
with a pointer to ``sequence_cross_entropy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import DataError, SharpscopeError
from ..runtime.sanitize import printable

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


__all__ = [
    "LossFn",
    "LOSSES",
    "cross_entropy",
    "mse",
    "sequence_cross_entropy",
    "perplexity",
    "get_loss",
]


def _token_targets(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """``(B, T, V)`` logits with integer ``(B, T)`` targets: next-token prediction."""
    return (
        logits.ndim >= 3
        and not (target.is_floating_point() or target.is_complex())
        and tuple(target.shape) == tuple(logits.shape[:-1])
    )


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy; token logits ``(B, T, V)`` with ``(B, T)`` targets go to
    :func:`sequence_cross_entropy` (the mean over tokens)."""
    if _token_targets(logits, target):
        torch_form = tuple(target.shape) == (logits.shape[0], *logits.shape[2:])
        if torch_form:  # (B, T, T): classes along dim 1 or dim -1? never guess
            raise DataError(
                f"cross_entropy: logits {list(logits.shape)} with targets "
                f"{list(target.shape)} read both as (N, C, L) and as (B, T, V); use the loss "
                "sequence_cross_entropy for next-token logits (B, T, V)"
            )
        return sequence_cross_entropy(logits, target)
    return F.cross_entropy(logits, target)


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error; integer class targets are one-hot encoded first.

    Averaged over samples and summed over outputs, so it is ``1/N sum_i ||f(x_i) - y_i||^2 / 2``.
    """
    if target.dtype in (torch.int64, torch.int32) and output.ndim == 2:
        target = F.one_hot(target, output.shape[-1]).to(output.dtype)
    return 0.5 * ((output - target) ** 2).sum(dim=-1).mean()


def sequence_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -100
) -> torch.Tensor:
    """Mean token cross-entropy over the tokens whose target is not ``ignore_index``.

    ``logits`` ``(B, T, V)`` (or ``(T, V)``), ``target`` ``(B, T)`` (or ``(T,)``) integer ids.
    Note: this is the mean over the batch's *tokens*; Hessian operators that weight
    batches by ``len(target)`` (sequences) combine batches exactly only when every
    sequence has the same number of counted tokens.
    """
    if logits.ndim < 2 or tuple(target.shape) != tuple(logits.shape[:-1]):
        raise DataError(
            f"sequence loss: logits {list(logits.shape)} and targets {list(target.shape)} "
            "must be (B, T, V) and (B, T)"
        )
    if target.is_floating_point() or target.is_complex():
        raise DataError(f"sequence loss: targets must be integer token ids, got {target.dtype}")
    flat_t = target.reshape(-1)
    if not bool((flat_t != ignore_index).any()):
        raise DataError(f"sequence loss: every target is ignore_index ({ignore_index})")
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), flat_t, ignore_index=ignore_index, reduction="mean"
    )


def perplexity(mean_ce: float | torch.Tensor) -> float:
    """``exp(mean token cross-entropy)`` (``inf`` when it overflows)."""
    value = float(mean_ce)
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy,
    "mse": mse,
    "sequence_cross_entropy": sequence_cross_entropy,
}


def get_loss(name: str) -> LossFn:
    """Look up a loss by name (``cross_entropy``, ``mse`` or ``sequence_cross_entropy``).

    Only names in :data:`LOSSES` resolve: a name (from a checkpoint, say) is never imported.
    """
    if isinstance(name, str) and name in LOSSES:
        return LOSSES[name]
    raise SharpscopeError(
        f"unknown loss {printable(repr(name), limit=120)}: choose one of {', '.join(sorted(LOSSES))}"
    )

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
from ..runtime.batches import batch_loss_fn
from ..runtime.sanitize import printable
from .imports import import_object, is_import_path

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


def _token_count(batch: object, ignore_index: int = -100) -> int:
    """The tokens a sequence loss counts in ``batch``: its targets that are not ignored."""
    from ..runtime.batches import batch_target

    target = batch_target(batch)
    return int((target != ignore_index).sum())


#: batches are weighted by the tokens they count, so the mean over batches is the mean
#: over tokens even when sequences hold different numbers of ignored positions
sequence_cross_entropy.weight = _token_count  # type: ignore[attr-defined]


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


def get_loss(name: str, *, allow_import: bool = False) -> LossFn:
    """Look up a loss by name (``cross_entropy``, ``mse`` or ``sequence_cross_entropy``), or
    import the user's ``pkg.module:fn`` named by the caller.

    A user loss is called as ``fn(output, batch)`` and returns the mean loss of the
    batch (a scalar tensor; anything else is one error line); ``fn.weight(batch)``, when
    it has one, is how much the batch weighs in a mean over batches (default: its samples).
    Only with ``allow_import=True`` (the caller named it: ``--loss``, ``loss=``) is an
    import path imported; by default (a name read from a file, say) only names in
    :data:`LOSSES` resolve.
    """
    choices = ", ".join(sorted(LOSSES))
    if isinstance(name, str) and name in LOSSES:
        return LOSSES[name]
    if isinstance(name, str) and is_import_path(name):
        if not allow_import:
            raise SharpscopeError(
                f"unknown loss {printable(repr(name), limit=200)}: choose one of {choices}; "
                "sharpscope never imports a loss named in a file: pass --loss "
                f"{printable(name, limit=200)} if you trust it"
            )
        fn = import_object(name, what="loss", error=SharpscopeError)
        return batch_loss_fn(fn, name=name)
    raise SharpscopeError(
        f"unknown loss {printable(repr(name), limit=120)}: choose one of {choices} "
        "or give 'package.module:fn' (fn(output, batch) -> mean loss)"
    )

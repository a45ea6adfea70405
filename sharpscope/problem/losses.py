"""Loss functions by name. Every loss returns the mean over the batch."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import SharpscopeError
from ..runtime.sanitize import printable

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy."""
    return F.cross_entropy(logits, target)


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error; integer class targets are one-hot encoded first.

    Averaged over samples and summed over outputs, so it is ``1/N sum_i ||f(x_i) - y_i||^2 / 2``.
    """
    if target.dtype in (torch.int64, torch.int32) and output.ndim == 2:
        target = F.one_hot(target, output.shape[-1]).to(output.dtype)
    return 0.5 * ((output - target) ** 2).sum(dim=-1).mean()


LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse}


def get_loss(name: str) -> LossFn:
    """Look up a loss by name (``cross_entropy`` or ``mse``).

    Only names in :data:`LOSSES` resolve: a name (from a checkpoint, say) is never imported.
    """
    if isinstance(name, str) and name in LOSSES:
        return LOSSES[name]
    raise SharpscopeError(
        f"unknown loss {printable(repr(name), limit=120)}: choose one of {', '.join(sorted(LOSSES))}"
    )

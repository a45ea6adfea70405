"""Exact (dense) references for tests and cross-checks on tiny models.

Ground truth for every curvature estimator in sharpscope: the full Hessian of the
mean loss, built with ``torch.func`` as ``jacfwd(grad(loss))`` (use float64 models
for tests). Note: :func:`torch.func.hessian` itself (``jacfwd(jacrev)``) returns a
wrong, asymmetric matrix through train-mode BatchNorm; ``tests`` check the
reference against plain double-backward autograd for that reason.
Only for models with a few thousand parameters: the matrix is ``n x n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .runtime.batches import batch_weight, is_batch, loss_on_batch
from .runtime.functional import (
    flatten_dict,
    params_dict,
    preserved,
    probe_mode,
    select_parameters,
    unflatten_vector,
)

__all__ = ["dense_hessian", "dense_loss", "full_loss"]

Batch = Any  # (x, y), (mapping, y) or a mapping: see sharpscope.runtime.batches


def _weighted(batches: Iterable[Batch] | Batch, loss_fn: Any) -> list[tuple[Batch, float]]:
    """The batches with their weights (samples, or ``loss_fn.weight(batch)``)."""
    out = [batches] if is_batch(batches) else list(batches)
    if not out:
        raise ValueError("no data: the batch iterable is empty")
    return [(b, batch_weight(b, loss_fn)) for b in out]


def dense_hessian(
    model: nn.Module,
    loss_fn,
    batches: Iterable[Batch] | Batch,
    *,
    params: Sequence[str] | str | None = None,
    mode: str = "eval",
) -> torch.Tensor:
    """The dense Hessian of the mean loss over all samples of ``batches``.

    The loss over several batches is the sample-weighted mean of the batch losses
    (the same definition every sharpscope operator uses). Rows and columns follow
    the order of the selected parameter names, each flattened.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Linear(3, 2).double()
        >>> x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1])
        >>> H = dense_hessian(net, nn.functional.cross_entropy, (x, y))
        >>> H.shape
        torch.Size([8, 8])
    """
    data = _weighted(batches, loss_fn)
    names = (
        select_parameters(model, params)
        if (params is None or isinstance(params, str))
        else list(params)
    )
    with preserved(model), probe_mode(model, mode):
        base = params_dict(model, names)
        theta = flatten_dict(base)
        total = sum(w for _, w in data)

        def f(vec: torch.Tensor) -> torch.Tensor:
            p = unflatten_vector(vec, base)
            return sum(loss_on_batch(model, loss_fn, b, p) * (w / total) for b, w in data)

        # ``torch.func.hessian`` is ``jacfwd(jacrev(f))``; its vmapped reverse-over-reverse
        # pass gives wrong second derivatives through train-mode BatchNorm (torch 2.3-2.13),
        # while ``jacfwd(grad(f))`` (forward-over-reverse, unbatched reverse) is exact.
        try:
            return torch.func.jacfwd(torch.func.grad(f))(theta).detach()
        except RuntimeError as exc:
            # Some losses have no forward-mode derivative of their backward (torch's
            # ``F.mse_loss`` raises "ZeroTensors are immutable"): use double backward.
            if "ZeroTensor" not in str(exc) and "forward AD" not in str(exc):
                raise
            return torch.autograd.functional.hessian(f, theta).detach()


def dense_loss(
    model: nn.Module, loss_fn, batches: Iterable[Batch] | Batch, *, mode: str = "eval"
) -> float:
    """The weighted mean loss over ``batches`` (no gradient; weights: samples, or
    ``loss_fn.weight(batch)``, see :func:`sharpscope.runtime.batches.batch_weight`)."""
    data = _weighted(batches, loss_fn)
    total = sum(w for _, w in data)
    with preserved(model), probe_mode(model, mode), torch.no_grad():
        return float(sum(loss_on_batch(model, loss_fn, b) * (w / total) for b, w in data))


full_loss = dense_loss

"""The two Hessian-vector product kernels of :class:`~sharpscope.hessian.HessianOperator`.

``forward``: forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``, ``vmap``
over a block of vectors); ``double``: double-backward autograd on a gradient graph.
Each takes the operator (its loss, parameters and shapes) and one batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..errors import SharpscopeError
from ..runtime.batches import input_bytes
from ..runtime.device import available_memory
from ..runtime.functional import forward_output_bytes, probe_mode
from .checks import _active_dropout

__all__ = [
    "forward_products",
    "gradient_graph",
    "double_products",
    "available_memory",
    "vector_bytes",
    "RankShare",
]


def forward_products(op: Any, batch: Any, rows: torch.Tensor) -> torch.Tensor:
    from torch.func import grad, jvp, vmap

    base = op._params
    sizes, names = op._sizes, op.names

    def hvp_one(vec: torch.Tensor) -> torch.Tensor:
        tangent = {
            n: t.view(op.shapes[n]) for n, t in zip(names, torch.split(vec, sizes), strict=False)
        }
        _, out = jvp(grad(lambda p: op._loss(p, batch)), (base,), (tangent,))
        return torch.cat([out[n].reshape(-1) for n in names])

    try:
        with torch.no_grad():
            if rows.shape[0] == 1:
                return hvp_one(rows[0]).unsqueeze(0)
            return vmap(hvp_one)(rows)
    except RuntimeError as exc:
        if "randomness" in str(exc):
            raise SharpscopeError(
                "Hessian products are random: the model uses random operations "
                f"({', '.join(_active_dropout(op.model)) or 'e.g. Dropout'}) in {op.mode} mode; "
                "use --mode eval"
            ) from exc
        raise


def gradient_graph(op: Any, batch: Any) -> tuple[list[torch.Tensor], tuple]:
    with torch.enable_grad():
        leaves = {n: t.detach().requires_grad_(True) for n, t in op._params.items()}
        loss = op._loss(leaves, batch)
        inputs = list(leaves.values())
        grads = torch.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
    return inputs, grads


def double_products(
    op: Any, graph: tuple[list[torch.Tensor], tuple], rows: torch.Tensor, *, retain: bool
) -> torch.Tensor:
    inputs, grads = graph
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    out = torch.zeros_like(rows)
    if not live:
        return out
    outputs = [grads[i] for i in live]
    for j in range(rows.shape[0]):
        parts = list(torch.split(rows[j], op._sizes))
        tangents = [parts[i].view_as(grads[i]) for i in live]
        hv = torch.autograd.grad(
            outputs,
            inputs,
            grad_outputs=tangents,
            retain_graph=retain or j < rows.shape[0] - 1,
            allow_unused=True,
        )
        out[j] = torch.cat(
            [
                (h if h is not None else torch.zeros_like(p)).reshape(-1)
                for h, p in zip(hv, inputs, strict=False)
            ]
        )
    return out


def vector_bytes(op: Any) -> int:
    """Estimated bytes one vector of a forward-over-reverse ``vmap`` pass holds (see
    :meth:`HessianOperator.vector_bytes`), measured with forward hooks on the first batch."""
    batch = next(iter(op.batches()))
    with torch.no_grad(), probe_mode(op.model, op.mode):
        outputs = forward_output_bytes(op.model, lambda: op._loss(op._params, batch))
    total = [input_bytes(batch), outputs]
    elem = torch.finfo(op.dtype).bits // 8
    return int(4 * sum(total) + 4 * op.dim * elem)


class RankShare:
    """Every ``world``-th batch of a re-iterable, starting at ``rank`` (one rank's share)."""

    def __init__(self, data: Iterable[Any], rank: int, world: int) -> None:
        self.data, self.rank, self.world = data, rank, world

    def __iter__(self):
        for i, b in enumerate(self.data):
            if i % self.world == self.rank:
                yield b

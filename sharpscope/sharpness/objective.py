"""The loss ``L(theta + delta)`` over fixed batches, and the checks shared by every measure.

The loss over several batches is the sample-weighted mean of the batch losses, as in
every sharpscope probe; the model's own parameters are never written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import DataError, NonFiniteLossError, SharpscopeError
from ..optim.geometry import global_norm
from ..runtime.batches import batch_weight, is_batch, loss_on_batch, sample_count
from ..runtime.functional import params_dict, select_parameters

__all__ = ["Batch", "NORMS"]

Batch = Any  # (x, y), (mapping, y) or a mapping: see sharpscope.runtime.batches
NORMS = ("l2", "linf")


def _as_batches(batches: Iterable[Batch] | Batch) -> list[Batch]:
    if is_batch(batches):
        return [batches]
    data = list(batches)
    if not data:
        raise DataError("no data: the batch iterable is empty")
    return data


class _Objective:
    """``L(theta + delta)`` and its gradient over fixed batches, through ``functional_call``.

    The model's own parameters are never written; call inside ``probe_mode``.
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable, data: list[Batch], names: Sequence[str]
    ) -> None:
        self.model, self.loss_fn, self.data = model, loss_fn, data
        self.names = list(names)
        base = params_dict(model, self.names)
        self.theta = [base[n] for n in self.names]
        self.weights = [batch_weight(b, loss_fn) for b in data]  # samples, or loss.weight(b)
        self.total = sum(self.weights)
        self.evals = 0

    def _params(self, delta: Sequence[torch.Tensor] | None) -> dict[str, torch.Tensor]:
        if delta is None:
            return dict(zip(self.names, self.theta, strict=True))
        return {n: t + d for n, t, d in zip(self.names, self.theta, delta, strict=True)}

    def _check(self, value: float, delta: Sequence[torch.Tensor] | None) -> float:
        if not math.isfinite(value):
            where = (
                "at theta"
                if delta is None
                else f"at a perturbation of norm {float(global_norm(delta)):.4g}"
            )
            raise NonFiniteLossError(
                f"the loss is {value} {where}; lower rho or check the checkpoint"
            )
        return value

    def loss(self, delta: Sequence[torch.Tensor] | None = None) -> float:
        """The mean loss at ``theta + delta`` (no gradient)."""
        self.evals += 1
        params = self._params(delta)
        with torch.no_grad():
            total = sum(
                float(loss_on_batch(self.model, self.loss_fn, b, params)) * w
                for b, w in zip(self.data, self.weights, strict=True)
            )
        return self._check(total / self.total, delta)

    def loss_grad(
        self, delta: Sequence[torch.Tensor] | None = None
    ) -> tuple[float, list[torch.Tensor]]:
        """The mean loss at ``theta + delta`` and its gradient (with respect to ``delta``)."""
        self.evals += 1
        shift = [torch.zeros_like(t) for t in self.theta] if delta is None else list(delta)
        leaves = [d.detach().requires_grad_(True) for d in shift]
        grad = [torch.zeros_like(t) for t in self.theta]
        total = 0.0
        for b, w in zip(self.data, self.weights, strict=True):
            with torch.enable_grad():
                params = {n: t + d for n, t, d in zip(self.names, self.theta, leaves, strict=True)}
                loss = loss_on_batch(self.model, self.loss_fn, b, params) * (w / self.total)
                g = torch.autograd.grad(loss, leaves, allow_unused=True)
            torch._foreach_add_(
                grad,
                [
                    gi if gi is not None else torch.zeros_like(t)
                    for gi, t in zip(g, self.theta, strict=True)
                ],
            )
            total += float(loss.detach())
        return self._check(total, delta), [gi.detach() for gi in grad]


def _check_settings(
    *,
    rho: float,
    norm: str,
    steps: int | None = None,
    restarts: int | None = None,
    samples: int | None = None,
    step_size: float | None = None,
) -> None:
    if not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise SharpscopeError(f"rho must be a positive number, got {rho!r}")
    if norm not in NORMS:
        raise SharpscopeError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")
    if steps is not None and steps < 1:
        raise SharpscopeError(f"steps must be at least 1, got {steps}")
    if restarts is not None and restarts < 0:
        raise SharpscopeError(f"restarts must be 0 or more, got {restarts}")
    if samples is not None and samples < 1:
        raise SharpscopeError(f"samples must be at least 1, got {samples}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise SharpscopeError(f"step_size must be a positive number, got {step_size!r}")


def _names(model: nn.Module, params: str | Sequence[str] | None) -> list[str]:
    return (
        select_parameters(model, params)
        if (params is None or isinstance(params, str))
        else list(params)
    )


def _random_like(
    theta: Sequence[torch.Tensor], gen: torch.Generator, kind: str
) -> list[torch.Tensor]:
    """Seeded noise drawn on the CPU (same numbers on every device), moved to each tensor's device."""
    out = []
    for t in theta:
        if kind == "normal":
            r = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        else:  # uniform on [-1, 1]
            r = torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1
        out.append(r.to(device=t.device, dtype=t.dtype))
    return out


def _base_settings(
    data: list[Batch],
    names: Sequence[str],
    *,
    measure: str,
    rho: float,
    norm: str,
    adaptive: bool,
    mode: str,
    seed: int,
) -> dict[str, Any]:
    return {
        "measure": measure,
        "rho": float(rho),
        "norm": norm,
        "adaptive": bool(adaptive),
        "mode": mode,
        "seed": int(seed),
        "data_samples": sample_count(data),
        "batches": len(data),
        "parameters": len(names),
    }

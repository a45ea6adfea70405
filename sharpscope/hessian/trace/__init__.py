"""Stochastic trace estimators of the Hessian: Hutchinson and Hutch++."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from ..._func import preserved
from ...errors import SharpscopeError
from ..operator import Batch, HessianOperator
from ._common import TraceResult
from .hutchinson import hutchinson_trace
from .meyer2020hutch import hutchpp_trace

__all__ = ["TraceResult", "hutchinson_trace", "hutchpp_trace", "hessian_trace", "TRACE_METHODS"]

TRACE_METHODS = ("hutchinson", "hutchpp")


def hessian_trace(
    model: nn.Module,
    loss_fn: Any,
    data: Batch | Iterable[Batch],
    *,
    method: str = "hutchinson",
    probes: int = 100,
    params: str | Sequence[str] | None = None,
    mode: str = "eval",
    backend: str = "auto",
    block_size: int | None = None,
    seed: int = 0,
    check: bool = True,
    quiet: bool = True,
) -> TraceResult:
    """``tr(H)`` (with standard error) and ``tr(H^2)`` of the mean loss of ``model`` over ``data``.

    ``method`` is ``"hutchinson"`` (:func:`hutchinson_trace`) or ``"hutchpp"``
    (:func:`hutchpp_trace`); ``probes`` counts Hessian-vector products. The caller's
    model is left exactly as it was.
    """
    if method not in TRACE_METHODS:
        raise SharpscopeError(f"unknown trace method {method!r}: choose hutchinson or hutchpp")
    with preserved(model):
        op = HessianOperator(
            model,
            loss_fn,
            data,
            params=params,
            mode=mode,
            backend=backend,
            block_size=block_size or 8,
        )
        if method == "hutchinson":
            return hutchinson_trace(
                op, probes=probes, block_size=block_size, seed=seed, check=check, quiet=quiet
            )
        return hutchpp_trace(op, probes=probes, seed=seed, check=check, quiet=quiet)

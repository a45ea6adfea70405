"""Stochastic trace estimators of the Hessian: Hutchinson, Hutch++ and XTrace."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from ...errors import SharpscopeError
from ...runtime.functional import preserved
from ..operator import Batch, HessianOperator
from ._common import TraceResult
from .adaptive import ADAPTIVE_METHODS, exact_trace, trace_to_stderr
from .epperly2024xtrace import xtrace
from .hutchinson import hutchinson_trace
from .meyer2020hutch import hutchpp_trace

__all__ = [
    "TraceResult",
    "hutchinson_trace",
    "hutchpp_trace",
    "xtrace",
    "hessian_trace",
    "trace_to_stderr",
    "exact_trace",
    "TRACE_METHODS",
    "ADAPTIVE_METHODS",
]

TRACE_METHODS = ("hutchinson", "hutchpp", "xtrace")


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
    check_determinism: bool | None = None,
    max_memory: int | str | None = "auto",
    rel_stderr: float | None = None,
) -> TraceResult:
    """``tr(H)`` (with standard error) and ``tr(H^2)`` of the mean loss of ``model`` over ``data``.

    ``method`` is ``"hutchinson"`` (:func:`hutchinson_trace`), ``"hutchpp"``
    (:func:`hutchpp_trace`) or ``"xtrace"`` (:func:`xtrace`); ``probes`` counts
    Hessian-vector products. ``check_determinism=False`` (or ``check=False``) skips the
    two-product check that products of the same vector agree. ``hvp_count`` includes
    the products spent timing the backends when ``backend="auto"`` had to time them.
    The caller's model is left exactly as it was.

    ``rel_stderr``: run to a stated standard error instead of a fixed count
    (:func:`trace_to_stderr`): products are added until the standard error is at most
    ``rel_stderr * |trace|``, ``probes`` is then the most to spend, and ``method`` must
    be ``"xtrace"`` or ``"hutchinson"``; the result may be the exact trace
    (``method="exact"``) when that is cheaper.
    """
    if method not in TRACE_METHODS:
        raise SharpscopeError(
            f"unknown trace method {method!r}: choose hutchinson, hutchpp or xtrace"
        )
    if check_determinism is not None:
        check = bool(check_determinism)
    with preserved(model):
        op = HessianOperator(
            model,
            loss_fn,
            data,
            params=params,
            mode=mode,
            backend=backend,
            block_size=block_size or 8,
            max_memory=max_memory,
        )
        if rel_stderr is not None:
            return trace_to_stderr(
                op,
                rel_stderr=rel_stderr,
                method=method,
                max_products=probes,
                seed=seed,
                check=check,
                quiet=quiet,
            )
        if method == "hutchinson":
            return hutchinson_trace(
                op, probes=probes, block_size=block_size, seed=seed, check=check, quiet=quiet
            )
        if method == "xtrace":
            return xtrace(op, probes=probes, seed=seed, check=check, quiet=quiet)
        return hutchpp_trace(op, probes=probes, seed=seed, check=check, quiet=quiet)

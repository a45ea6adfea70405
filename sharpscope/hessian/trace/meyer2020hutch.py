"""Hutch++ (Meyer, Musco, Musco & Woodruff 2020)."""

from __future__ import annotations

import time

import torch

from ..operator import HessianOperator
from ._common import TraceResult, begin, check_probes, mean_stderr, products, rademacher

__all__ = ["hutchpp_trace"]


def hutchpp_trace(
    op: HessianOperator, *, probes: int = 99, seed: int = 0, check: bool = True, quiet: bool = True
) -> TraceResult:
    """Estimate ``tr(H)`` with Hutch++: exact trace on a sketched top subspace plus
    Hutchinson on the rest.

    With ``m = probes`` products split in thirds, ``S`` and ``G`` Rademacher of
    ``m/3`` columns each and ``Q = orth(H S)``:

    .. math::

        \\widehat{\\operatorname{tr}}(H) = \\operatorname{tr}(Q^\\top H Q)
        + \\frac{3}{m} \\operatorname{tr}\\big(G^\\top (I - QQ^\\top) H (I - QQ^\\top) G\\big).

    The error falls as ``O(1/m)`` instead of Hutchinson's ``O(1/sqrt(m))`` when the
    spectrum decays (as Hessian spectra do). The standard error is that of the
    Hutchinson part. ``tr(H^2)`` is estimated as ``mean ||H s||^2`` over the
    columns of ``S``.

    Meyer, R. A., Musco, C., Musco, C., & Woodruff, D. P. (2021). Hutch++: Optimal
    stochastic trace estimation. SOSA (arXiv:2010.09649, 2020).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2).double()
        >>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> op = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="double")
        >>> est = hutchpp_trace(op, probes=24)  # 8 = dim: the sketch captures all of H
        >>> from sharpscope.reference import dense_hessian
        >>> exact = float(dense_hessian(net, nn.functional.cross_entropy, (x, y)).trace())
        >>> abs(est.trace - exact) < 1e-10
        True
    """
    check_probes(probes, 3)
    t0 = time.perf_counter()
    start = begin(op, check=check, seed=seed)
    gen = torch.Generator().manual_seed(int(seed))
    third = int(probes) // 3
    n_sketch = min(third, op.dim)
    n_rest = int(probes) - 2 * n_sketch
    S = rademacher(op, n_sketch, gen)
    HS = products(op, S)
    sq = (HS * HS).sum(0)
    Q = torch.linalg.qr(HS)[0]
    HQ = products(op, Q)
    exact_part = float((Q * HQ).sum().double())
    G = rademacher(op, n_rest, gen)
    G = G - Q @ (Q.T @ G)
    HG = products(op, G)
    quad = (G * HG).sum(0)
    rest, se = mean_stderr(quad) if n_rest > 1 else (float(quad.double().sum()), float("nan"))
    tr2, se2 = mean_stderr(sq) if n_sketch > 1 else (float(sq.double().sum()), float("nan"))
    return TraceResult(
        trace=exact_part + rest,
        stderr=se,
        trace_h2=tr2,
        stderr_h2=se2,
        method="hutchpp",
        probes=int(probes),
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        samples=[float(v) for v in quad.double().cpu()],
        backend=op.backend,
        mode=op.mode,
        num_samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
    )

"""Hutchinson's stochastic trace estimator (Hutchinson 1989)."""

from __future__ import annotations

import time

import torch

from ...runtime.progress import progress
from ..operator import HessianOperator
from ._common import TraceResult, begin, check_probes, mean_stderr, rademacher

__all__ = ["hutchinson_trace"]


def hutchinson_trace(
    op: HessianOperator,
    *,
    probes: int = 100,
    block_size: int | None = None,
    seed: int = 0,
    check: bool = True,
    quiet: bool = True,
) -> TraceResult:
    """Estimate ``tr(H)`` and ``tr(H^2)`` with Rademacher probes.

    .. math::

        \\operatorname{tr}(H) = \\mathbb{E}[v^\\top H v], \\qquad
        \\operatorname{tr}(H^2) = \\mathbb{E}[\\|H v\\|^2], \\qquad v_i \\in \\{\\pm 1\\}.

    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the influence
    matrix for Laplacian smoothing splines. The standard errors come from the spread of
    the ``probes`` values. ``check``: run the operator's determinism check first
    (once per operator; ``False`` skips it).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2).double()
        >>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> op = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="double")
        >>> est = hutchinson_trace(op, probes=2000)
        >>> from sharpscope.reference import dense_hessian
        >>> exact = float(dense_hessian(net, nn.functional.cross_entropy, (x, y)).trace())
        >>> abs(est.trace - exact) < 4 * est.stderr
        True
    """
    check_probes(probes, 2)
    t0 = time.perf_counter()
    start = begin(op, check=check, seed=seed)
    gen = torch.Generator().manual_seed(int(seed))
    b = int(block_size or op.preferred_block)  # the block Lanczos uses (same matmat)
    quad, sq = [], []
    steps = range(0, int(probes), b)
    for i in progress(steps, desc="Hutchinson", total=len(steps), quiet=quiet, unit="block"):
        V = rademacher(op, min(b, int(probes) - i), gen)
        HV = op.matmat(V)
        quad.append((V * HV).sum(0))
        sq.append((HV * HV).sum(0))
    q = torch.cat(quad)
    s = torch.cat(sq)
    tr, se = mean_stderr(q)
    tr2, se2 = mean_stderr(s)
    return TraceResult(
        trace=tr,
        stderr=se,
        trace_h2=tr2,
        stderr_h2=se2,
        method="hutchinson",
        probes=int(probes),
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        samples=[float(v) for v in q.double().cpu()],
        backend=op.backend,
        mode=op.mode,
        num_samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
    )

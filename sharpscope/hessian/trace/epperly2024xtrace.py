"""XTrace (Epperly, Tropp & Webber 2024): the exchangeable Hutch++."""

from __future__ import annotations

import time

import torch

from ..operator import HessianOperator
from ._common import TraceResult, begin, check_probes, mean_stderr, products, rademacher

__all__ = ["xtrace", "xtrace_estimates", "low_rank_trace"]


def xtrace(
    op: HessianOperator, *, probes: int = 100, seed: int = 0, check: bool = True, quiet: bool = True
) -> TraceResult:
    """Estimate ``tr(H)`` with XTrace: every test vector serves both as a sketch of the
    top subspace and as a Hutchinson probe of its complement.

    With ``s = probes // 2`` Rademacher vectors ``Omega``, ``Y = H Omega = Q R`` and, for
    each ``i``, ``Q_(i)`` an orthonormal basis of ``Y`` without its ``i``-th column:

    .. math::

        t_i = \\operatorname{tr}(Q_{(i)}^\\top H Q_{(i)})
        + \\omega_i^\\top (I - Q_{(i)} Q_{(i)}^\\top) H (I - Q_{(i)} Q_{(i)}^\\top) \\omega_i,
        \\qquad \\widehat{\\operatorname{tr}}(H) = \\frac{1}{s} \\sum_i t_i .

    Each ``t_i`` is unbiased (``omega_i`` is independent of ``Q_(i)``); the standard
    error is the spread of the ``t_i`` over ``sqrt(s)``, as in the paper. All ``s``
    leave-one-out bases come from one QR through the columns of ``R^{-T}`` (the
    paper's Algorithm 2), so the cost is ``2 s`` products (``H Omega`` and ``H Q``)
    plus ``O(n s^2)`` float64 arithmetic. ``tr(H^2)`` is estimated as ``mean ||H omega||^2``.
    When ``H Omega`` is rank-deficient (``H`` has rank ``r < s``, common for small
    models) the sketch holds the range of ``H`` and the trace is ``tr(U_r^T H U_r)``,
    exact, from ``r`` more products (standard error 0).

    Epperly, E. N., Tropp, J. A., & Webber, R. J. (2024). XTrace: making the most of
    every sample in stochastic trace estimation. SIAM J. Matrix Anal. Appl. 45(1).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2).double()
        >>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> op = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="double")
        >>> est = xtrace(op, probes=16)  # 8 = dim: the leave-one-out sketches hold all of H
        >>> from sharpscope.reference import dense_hessian
        >>> exact = float(dense_hessian(net, nn.functional.cross_entropy, (x, y)).trace())
        >>> abs(est.trace - exact) < 1e-8
        True
    """
    check_probes(probes, 4)
    t0 = time.perf_counter()
    start = begin(op, check=check, seed=seed)
    gen = torch.Generator().manual_seed(int(seed))
    s = min(int(probes) // 2, op.dim)
    f64 = torch.float64
    Om = rademacher(op, s, gen)
    Y = products(op, Om).to(f64)
    Om = Om.to(f64)
    sq = (Y * Y).sum(0)
    Q, R = torch.linalg.qr(Y)
    diag = R.diagonal().abs()
    if float(diag.min()) <= 100 * float(torch.finfo(op.dtype).eps) * float(diag.max()):
        return _low_rank(op, Y, probes, start, t0)
    Z = products(op, Q.to(op.dtype)).to(f64)
    ests = xtrace_estimates(Om, Q, R, Z)
    tr, se = mean_stderr(ests)
    tr2, se2 = mean_stderr(sq)
    return TraceResult(
        trace=tr,
        stderr=se,
        trace_h2=tr2,
        stderr_h2=se2,
        method="xtrace",
        probes=int(probes),
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        samples=[float(v) for v in ests.cpu()],
        backend=op.backend,
        mode=op.mode,
        num_samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
    )


def xtrace_estimates(
    Om: torch.Tensor, Q: torch.Tensor, R: torch.Tensor, Z: torch.Tensor
) -> torch.Tensor:
    """The ``s`` leave-one-out estimates ``t_i`` from ``Omega``, ``Y = H Omega = Q R`` and
    ``Z = H Q`` (float64), all leave-one-out bases from the one QR (Algorithm 2)."""
    s = Om.shape[1]
    H = Q.T @ Z
    H = 0.5 * (H + H.T)
    W = Q.T @ Om
    eye = torch.eye(s, dtype=R.dtype, device=R.device)
    S = torch.linalg.solve_triangular(R, eye, upper=True).T  # R^{-T}: column i is _|_ R_j, j != i
    S = S / torch.linalg.vector_norm(S, dim=0, keepdim=True)
    T = Z.T @ Om

    def dp(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:  # column-wise inner products
        return (A * B).sum(0)

    HW = H @ W
    dSW = dp(S, W)
    dSHS = dp(S, H @ S)
    dTW = dp(T, W)
    dWHW = dp(W, HW)
    dSRmHW = dp(S, R - HW)
    dTmHRS = dp(T - H.T @ W, S)
    return torch.trace(H) - dSHS + dWHW - dTW + dTmHRS * dSW + dSW**2 * dSHS + dSW * dSRmHW


def low_rank_trace(op: HessianOperator, Y: torch.Tensor) -> tuple[float, float, float]:
    """``tr(H)`` when the sketch ``Y = H Omega`` is rank-deficient: the range of ``Y`` holds
    the range of ``H``, so ``tr(H) = tr(U_r^T H U_r)`` (``r`` more products). Returns it
    with ``tr(H^2)`` estimated from the sketch and that estimate's standard error."""
    U, sv, _ = torch.linalg.svd(Y, full_matrices=False)
    r = int((sv > 100 * float(torch.finfo(op.dtype).eps) * float(sv[0])).sum())
    Ur = U[:, : max(r, 1)]
    Z = products(op, Ur.to(op.dtype)).to(torch.float64)
    tr2, se2 = mean_stderr((Y * Y).sum(0))
    return float((Ur * Z).sum()), tr2, se2


def _low_rank(op, Y, probes, start, t0) -> TraceResult:
    """The sketch ``H Omega`` is rank-deficient: ``H`` has (numerical) rank ``r < s``, so
    the range of ``Y`` holds the range of ``H`` and ``tr(H) = tr(U_r^T H U_r)`` (``r`` more
    products); the leave-one-out bases of the full-rank formula would not exist."""
    tr, tr2, se2 = low_rank_trace(op, Y)
    return TraceResult(
        trace=tr,
        stderr=0.0,  # the sketch spans the range of H: no stochastic part is left
        trace_h2=tr2,
        stderr_h2=se2,
        method="xtrace",
        probes=int(probes),
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        samples=[tr],
        backend=op.backend,
        mode=op.mode,
        num_samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
    )


def xtrace_naive(H: torch.Tensor, Om: torch.Tensor) -> torch.Tensor:
    """The ``t_i`` of XTrace by their definition (one QR per ``i``): the test reference."""
    Y = H @ Om
    out = []
    for i in range(Om.shape[1]):
        Qi = torch.linalg.qr(torch.cat([Y[:, :i], Y[:, i + 1 :]], dim=1))[0]
        w = Om[:, i] - Qi @ (Qi.T @ Om[:, i])
        out.append(torch.trace(Qi.T @ H @ Qi) + w @ H @ w)
    return torch.stack(out)

"""The trace to a stated standard error: products are added until the estimate's standard
error is at most ``rel_stderr`` times its magnitude (or the budget is spent).

* ``"xtrace"`` (default) grows its test matrix ``Omega`` without discarding anything: the
  new columns' products extend ``Y = H Omega``, block Gram-Schmidt extends ``Q`` and
  ``Z = H Q`` (``Y = Q R`` stays a QR factorisation with ``R = Q^T Y``), so reaching
  ``s`` test vectors costs ``2 s`` products however many rounds it took.
* ``"hutchinson"`` adds blocks of probes one at a time.
* Either switches to the **exact** trace (``dim`` products with the unit vectors,
  standard error 0) when the products still needed, predicted from the standard error
  falling as ``1/sqrt(probes)``, exceed the dimension and the budget allows it: on small
  models with a flat spectrum a tight standard error costs more than ``dim`` products.

Hutch++ splits its budget between sketch and residual in advance and has no
incremental form here; XTrace is its exchangeable successor and reuses every product.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ...errors import SharpscopeError
from ..operator import HessianOperator
from ._common import TraceResult, begin, mean_stderr, products, rademacher
from .epperly2024xtrace import low_rank_trace, xtrace_estimates

__all__ = ["trace_to_stderr", "exact_trace", "ADAPTIVE_METHODS"]

ADAPTIVE_METHODS = ("xtrace", "hutchinson")
MIN_HUTCHINSON = 10  # probes before a Hutchinson standard error is trusted to stop on
MIN_XTRACE = 8  # test vectors (16 products) before an XTrace standard error is trusted


def _check(rel_stderr: float, method: str, max_products: int) -> None:
    if method not in ADAPTIVE_METHODS:
        raise SharpscopeError(
            f"a target standard error needs method xtrace or hutchinson, got {method!r} "
            "(Hutch++ fixes its split in advance; XTrace reuses every product)"
        )
    if not (math.isfinite(rel_stderr) and 0 < rel_stderr < 1):
        raise SharpscopeError(f"relative standard error must be in (0, 1), got {rel_stderr}")
    if int(max_products) < 2 * MIN_XTRACE:
        raise SharpscopeError(f"the product budget must be at least 16, got {max_products}")


def _met(est: float, se: float, rel: float) -> bool:
    return math.isfinite(se) and se <= rel * abs(est)


def _more_needed(n: int, est: float, se: float, rel: float) -> float:
    """Products still needed if the standard error falls as ``1/sqrt(n)`` from here."""
    if not math.isfinite(se) or est == 0:
        return math.inf
    return n * (se / (rel * abs(est))) ** 2 - n


def exact_trace(op: HessianOperator) -> tuple[float, float]:
    """``tr(H)`` and ``tr(H^2) = ||H||_F^2`` from ``dim`` products with the unit vectors."""
    b = max(1, int(getattr(op, "preferred_block", 1)))
    tr = tr2 = 0.0
    for i in range(0, op.dim, b):
        cols = min(b, op.dim - i)
        E = torch.zeros(op.dim, cols, dtype=op.dtype, device=op.device)
        E[torch.arange(i, i + cols), torch.arange(cols)] = 1
        HE = op.matmat(E).to(torch.float64)
        tr += float(HE[i : i + cols].diagonal().sum())
        tr2 += float((HE * HE).sum())
    return tr, tr2


def trace_to_stderr(
    op: HessianOperator,
    *,
    rel_stderr: float = 0.02,
    method: str = "xtrace",
    max_products: int = 1000,
    allow_exact: bool = True,
    seed: int = 0,
    check: bool = True,
    quiet: bool = True,
) -> TraceResult:
    """``tr(H)`` with a standard error at most ``rel_stderr * |tr(H)|``, spending at most
    ``max_products`` products (the result says whether the target was ``reached``).

    ``method`` is ``"xtrace"`` or ``"hutchinson"`` (see the module docstring);
    ``allow_exact=False`` never switches to the exact trace. The stop looks at the
    estimated standard error after every round, so the reported error is an estimate
    like any other (the estimators' calibration is tested against exact traces).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        >>> x, y = torch.randn(64, 6, dtype=torch.float64), torch.randint(0, 3, (64,))
        >>> op = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="double")
        >>> res = trace_to_stderr(op, rel_stderr=0.01, max_products=400)
        >>> res.reached and res.stderr <= 0.01 * abs(res.trace)
        True
    """
    _check(rel_stderr, method, max_products)
    t0 = time.perf_counter()
    start = begin(op, check=check, seed=seed)
    budget = int(max_products)
    bar = _Bar(quiet, budget, rel_stderr, op, start)
    try:
        if method == "hutchinson":
            out = _hutchinson(op, rel_stderr, budget, allow_exact, seed, start, bar)
        else:
            out = _xtrace(op, rel_stderr, budget, allow_exact, seed, start, bar)
    finally:
        bar.close()
    est, se, tr2, se2, samples, label, n = out
    return TraceResult(
        trace=est,
        stderr=se,
        trace_h2=tr2,
        stderr_h2=se2,
        method=label,
        probes=n,
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        samples=samples,
        backend=op.backend,
        mode=op.mode,
        num_samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
        target_rel_stderr=float(rel_stderr),
        reached=label == "exact" or _met(est, se, rel_stderr),
    )


class _Bar:
    """Products spent against the budget, with the relative standard error reached so far
    (stderr; silent when ``quiet`` and on the ranks other than 0)."""

    def __init__(self, quiet: bool, budget: int, rel: float, op: Any, start: int) -> None:
        from ...runtime.distributed import is_main

        self.op, self.start, self.tqdm = op, start, None
        if not quiet and is_main():
            from tqdm.auto import tqdm

            self.tqdm = tqdm(total=budget, desc=f"trace to {100 * rel:g}%", unit="hvp",
                             leave=False, dynamic_ncols=True)  # fmt: skip

    def tick(self, est: float, se: float) -> None:
        if self.tqdm is not None:
            self.tqdm.update(self.op.hvp_count - self.start - self.tqdm.n)
            rel = se / abs(est) if est else math.inf
            self.tqdm.set_postfix(stderr=f"{100 * rel:.2g}%")

    def exact(self) -> None:
        if self.tqdm is not None:
            self.tqdm.set_description("exact trace")
            self.tqdm.total += self.op.dim

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def _exact_pays(op: Any, spent: int, budget: int, more: float, allow: bool) -> bool:
    return allow and more > op.dim and spent + op.dim <= budget


def _exact(op: Any, bar: _Bar) -> tuple:
    bar.exact()
    tr, tr2 = exact_trace(op)
    return tr, 0.0, tr2, 0.0, [tr], "exact", op.dim


def _hutchinson(
    op: Any, rel: float, budget: int, allow: bool, seed: int, start: int, bar: _Bar
) -> tuple:
    gen = torch.Generator().manual_seed(int(seed))
    b = max(1, int(getattr(op, "preferred_block", 1)))
    quad: list[torch.Tensor] = []
    sq: list[torch.Tensor] = []
    n = 0
    while True:
        cols = min(max(b, MIN_HUTCHINSON - n), budget - (op.hvp_count - start))
        if cols <= 0:
            break
        V = rademacher(op, cols, gen)
        HV = products(op, V)
        quad.append((V * HV).sum(0))
        sq.append((HV * HV).sum(0))
        n += cols
        est, se = mean_stderr(torch.cat(quad))
        bar.tick(est, se)
        if n >= MIN_HUTCHINSON and _met(est, se, rel):
            break
        spent = op.hvp_count - start
        more = _more_needed(n, est, se, rel) if n >= 3 * MIN_HUTCHINSON else 0.0
        if _exact_pays(op, spent, budget, more, allow):
            return _exact(op, bar)
    q = torch.cat(quad)
    est, se = mean_stderr(q)
    tr2, se2 = mean_stderr(torch.cat(sq))
    return est, se, tr2, se2, [float(v) for v in q.double().cpu()], "hutchinson", n


class _Sketch:
    """XTrace's growing ``Omega``, ``Y = H Omega``, ``Q`` (orthonormal, ``Y = Q R``) and ``Z = H Q``."""

    def __init__(self, op: Any, gen: torch.Generator) -> None:
        f64 = torch.float64
        self.op, self.gen = op, gen
        self.Om = torch.zeros(op.dim, 0, dtype=f64, device=op.device)
        self.Y, self.Q, self.Z = self.Om.clone(), self.Om.clone(), self.Om.clone()
        self.deficient = False

    def grow(self, cols: int) -> None:
        f64, op = torch.float64, self.op
        om = rademacher(op, cols, self.gen)
        y = products(op, om).to(f64)
        w = y
        for _ in range(2):
            w = w - self.Q @ (self.Q.T @ w)
        q, r = torch.linalg.qr(w)
        self.Om, self.Y = torch.cat([self.Om, om.to(f64)], 1), torch.cat([self.Y, y], 1)
        diag = r.diagonal().abs()
        scale = float(torch.linalg.vector_norm(self.Y, dim=0).max())
        if float(diag.min()) <= 100 * float(torch.finfo(op.dtype).eps) * scale:
            self.deficient = True  # H has (numerical) rank below the sketch: exact below
            return
        self.Z = torch.cat([self.Z, products(op, q.to(op.dtype)).to(f64)], 1)
        self.Q = torch.cat([self.Q, q], 1)


def _xtrace(
    op: Any, rel: float, budget: int, allow: bool, seed: int, start: int, bar: _Bar
) -> tuple:
    sk = _Sketch(op, torch.Generator().manual_seed(int(seed)))
    left = budget - (op.hvp_count - start)  # the determinism check may have spent some
    s_next = max(2, min(MIN_XTRACE, op.dim, left // 2))
    while True:
        sk.grow(s_next - sk.Om.shape[1])
        s = sk.Om.shape[1]
        if sk.deficient:
            tr, tr2, se2 = low_rank_trace(op, sk.Y)
            return tr, 0.0, tr2, se2, [tr], "xtrace", 2 * s
        R = torch.triu(sk.Q.T @ sk.Y)
        ests = xtrace_estimates(sk.Om, sk.Q, R, sk.Z)
        est, se = mean_stderr(ests)
        bar.tick(est, se)
        spent = op.hvp_count - start
        if _met(est, se, rel) or s >= op.dim:
            break
        more = _more_needed(2 * s, est, se, rel)
        if s >= 2 * MIN_XTRACE and _exact_pays(op, spent, budget, more, allow):
            return _exact(op, bar)
        grow = max(4, min(s, math.ceil(1.1 * more / 2)))  # at most doubling per round
        grow = min(grow, (budget - spent) // 2, op.dim - s)
        if grow <= 0:
            break
        s_next = s + grow
    tr2, se2 = mean_stderr((sk.Y * sk.Y).sum(0))
    return est, se, tr2, se2, [float(v) for v in ests.cpu()], "xtrace", 2 * s

"""Hessian spectral density by stochastic Lanczos quadrature (Ghorbani et al. 2019)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..runtime.functional import preserved
from .krylov import small_eigh
from .operator import Batch, HessianOperator

__all__ = ["DensityResult", "slq_density", "spectral_density", "broaden"]


@dataclass
class DensityResult:
    """A spectral density estimate.

    Attributes:
        nodes: ``(runs, m)`` Ritz values of each run (quadrature nodes).
        weights: ``(runs, m)`` quadrature weights (squared first components; each row sums to 1).
        grid: eigenvalue grid of the broadened density.
        density: Gaussian-broadened density on ``grid`` (integrates to about 1).
        sigma: the broadening width.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    runs: int
    iters: int
    hvp_count: int
    seconds: float
    backend: str = ""
    mode: str = "eval"
    samples: int | None = None
    device: str = "cpu"
    dim: int = 0

    def moment(self, k: int) -> float:
        """The SLQ estimate of ``tr(H^k) / dim``: the mean over runs of ``sum_i w_i theta_i^k``."""
        return float(np.mean(np.sum(self.weights * self.nodes**k, axis=1)))

    def trace_runs(self) -> np.ndarray:
        """Each run's SLQ trace estimate ``dim * sum_i w_i theta_i`` (their mean is the estimate)."""
        return self.dim * np.sum(self.weights * self.nodes, axis=1)

    @property
    def trace_stderr(self) -> float | None:
        """The standard error of the SLQ trace over runs (``None`` with a single run)."""
        t = self.trace_runs()
        if t.size < 2:
            return None
        return float(np.std(t, ddof=1) / math.sqrt(t.size))

    def _rows(self) -> list[tuple[str, str]]:
        from .reprs import num

        return [
            ("lambda_min .. lambda_max", f"{num(self.nodes.min())} .. {num(self.nodes.max())}"),
            ("trace (SLQ)", num(self.moment(1) * self.dim, self.trace_stderr)),
            ("runs x Lanczos steps", f"{self.runs} x {self.iters}"),
            ("Hessian-vector products", str(self.hvp_count)),
            ("mode", self.mode),
        ]

    def __repr__(self) -> str:
        """One short line: the spectrum's range, the SLQ trace with its error, the cost."""
        from .reprs import num, short_repr

        return short_repr(
            "DensityResult",
            [
                ("lambda", f"[{num(self.nodes.min())}, {num(self.nodes.max())}]"),
                ("trace", num(self.moment(1) * self.dim, self.trace_stderr)),
                ("runs", str(self.runs)),
                ("iters", str(self.iters)),
                ("hvp_count", str(self.hvp_count)),
            ],
        )

    def _repr_html_(self) -> str:
        from .reprs import html_table

        return html_table("Hessian spectral density (SLQ)", self._rows())

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": self.grid.tolist(),
            "density": self.density.tolist(),
            "sigma": self.sigma,
            "nodes": self.nodes.tolist(),
            "weights": self.weights.tolist(),
            "runs": self.runs,
            "iters": self.iters,
            "hvp_count": self.hvp_count,
            "seconds": self.seconds,
            "lambda_min": float(self.nodes.min()),
            "lambda_max": float(self.nodes.max()),
            "trace_estimate": self.moment(1) * self.dim,
            "trace_stderr": self.trace_stderr,
            "samples": self.samples,
            "mode": self.mode,
            "device": self.device,
            "backend": self.backend,
            "parameters": self.dim,
        }


def broaden(
    nodes: np.ndarray,
    weights: np.ndarray,
    *,
    sigma: float | None = None,
    grid_points: int = 1000,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-broadened density ``mean_runs sum_i w_i N(t; theta_i, sigma^2)`` on a grid.

    The default ``sigma`` is 1% of the spectral range; the default grid extends the
    range by ``5 sigma`` on each side.
    """
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    if sigma is None:
        sigma = 0.01 * span
    if not sigma > 0:
        raise SharpscopeError(f"sigma must be positive, got {sigma}")
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(grid_points))
    z = (grid[:, None, None] - nodes[None]) / sigma
    dens = (np.exp(-0.5 * z * z) * weights[None]).sum(axis=2).mean(axis=1) / (
        sigma * math.sqrt(2 * math.pi)
    )
    return grid, dens, float(sigma)


def slq_density(
    op: HessianOperator,
    *,
    runs: int = 3,
    iters: int = 90,
    sigma: float | None = None,
    grid_points: int = 1000,
    seed: int = 0,
    check: bool = True,
    quiet: bool = True,
) -> DensityResult:
    """Spectral density of ``op`` by stochastic Lanczos quadrature.

    For each run, Lanczos (full reorthogonalisation) from a normalised Rademacher
    vector ``v`` gives ``T = S diag(theta) S^T``; then ``v^T f(H) v ~ sum_i
    S_{1i}^2 f(theta_i)``, so ``(theta_i, S_{1i}^2)`` is a quadrature rule for the
    spectral measure and ``E_v`` of it is the density ``(1/n) sum_j delta(t - lambda_j)``.

    Ghorbani, B., Krishnan, S., & Xiao, Y. (2019). An investigation into neural net
    optimization via Hessian eigenvalue density. ICML. (PyHessian's ``density``.)
    """
    if int(runs) < 1:
        raise SharpscopeError(f"runs must be at least 1, got {runs}")
    if int(iters) < 2:
        raise SharpscopeError(f"iters must be at least 2, got {iters}")
    t0 = time.perf_counter()
    from .trace._common import begin, products

    start = begin(op, check=check, seed=seed)  # the check runs once per operator
    m = min(int(iters), op.dim)
    r = int(runs)
    gen = torch.Generator().manual_seed(int(seed))
    eps = float(torch.finfo(op.dtype).eps)
    signs = (
        torch.randint(0, 2, (op.dim, r), generator=gen, dtype=torch.int8).to(torch.float64) * 2 - 1
    )
    V = (signs / math.sqrt(op.dim)).to(op.device, op.dtype)
    basis = [V]
    alpha = np.zeros((r, m))
    beta = np.zeros((r, m))
    length = np.full(r, m)
    active = np.ones(r, dtype=bool)
    bar = None
    from ..runtime.distributed import is_main

    if not quiet and is_main():  # distributed runs: rank 0 shows progress
        from tqdm.auto import tqdm

        bar = tqdm(total=m, desc=f"SLQ ({r} runs)", unit="step", leave=False, dynamic_ncols=True)
    try:
        # All runs advance together: one pass over the data serves the r products of a step.
        for j in range(m):
            W = products(op, V)  # the block size Lanczos uses
            if bar is not None:
                bar.update(1)
            a = (W * V).sum(0).double().cpu().numpy()
            alpha[active, j] = a[active]
            if j == m - 1:
                break
            Qs = torch.stack(basis)  # (j+1, n, r)
            for _ in range(2):
                W = W - torch.einsum("jnr,jr->nr", Qs, torch.einsum("jnr,nr->jr", Qs, W))
            b = torch.linalg.vector_norm(W, dim=0).double().cpu().numpy()
            scale = np.abs(alpha[:, : j + 1]).max(axis=1)
            stop = active & (b <= 1e3 * eps * np.maximum(scale, 1e-300))
            # invariant subspace: the quadrature is exact for this start vector
            length[stop] = j + 1
            active &= ~stop
            if not active.any():
                break
            beta[active, j] = b[active]
            keep = torch.as_tensor(active, device=W.device)
            V = torch.where(
                keep,
                W / torch.as_tensor(np.where(active, b, 1.0), device=W.device, dtype=W.dtype),
                torch.zeros_like(W),
            )
            basis.append(V)
    finally:
        if bar is not None:
            bar.close()
    nodes, weights = _quadrature(alpha, beta, length, m)
    grid, dens, sig = broaden(nodes, weights, sigma=sigma, grid_points=grid_points)
    return DensityResult(
        nodes=nodes,
        weights=weights,
        grid=grid,
        density=dens,
        sigma=sig,
        runs=int(runs),
        iters=m,
        hvp_count=op.hvp_count - start,
        seconds=time.perf_counter() - t0,
        backend=op.backend,
        mode=op.mode,
        samples=op.num_samples,
        device=str(op.device),
        dim=op.dim,
    )


def _quadrature(
    alpha: np.ndarray, beta: np.ndarray, length: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes ``theta_i`` and weights ``S_{1i}^2`` of each run's tridiagonal
    ``T`` (a run stopped early pads with zero weights at its top node)."""
    all_nodes, all_weights = [], []
    for i in range(len(length)):
        n_i = int(length[i])
        T = (
            np.diag(alpha[i, :n_i])
            + np.diag(beta[i, : n_i - 1], 1)
            + np.diag(beta[i, : n_i - 1], -1)
        )
        theta, S = small_eigh(T)
        nodes = np.full(m, theta[-1])
        weights = np.zeros(m)
        nodes[:n_i] = theta
        weights[:n_i] = S[0] ** 2
        all_nodes.append(nodes)
        all_weights.append(weights)
    return np.array(all_nodes), np.array(all_weights)


def spectral_density(
    model: nn.Module,
    loss_fn: Any,
    data: Batch | Iterable[Batch],
    *,
    runs: int = 3,
    iters: int = 90,
    sigma: float | None = None,
    grid_points: int = 1000,
    params: str | Sequence[str] | None = None,
    mode: str = "eval",
    backend: str = "auto",
    seed: int = 0,
    check: bool = True,
    quiet: bool = True,
) -> DensityResult:
    """Hessian spectral density of the mean loss of ``model`` over ``data`` (see :func:`slq_density`).

    The caller's model is left exactly as it was.
    """
    with preserved(model):
        op = HessianOperator(model, loss_fn, data, params=params, mode=mode, backend=backend)
        return slq_density(
            op,
            runs=runs,
            iters=iters,
            sigma=sigma,
            grid_points=grid_points,
            seed=seed,
            check=check,
            quiet=quiet,
        )

"""The steps of block Lanczos with full reorthogonalisation (used by :func:`~sharpscope.hessian.lanczos`).

A :class:`Krylov` state holds the float64 basis ``Q``, the raw products ``H Q`` and the
block tridiagonal ``T = Q^T H Q``; :func:`step` multiplies and extends it,
:class:`Stopper` applies the stopping rules, :func:`advance` starts the next block, and
:func:`ritz_pairs` forms the Ritz vectors and their true residuals from the products.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import SharpscopeError

__all__ = [
    "Plan",
    "Krylov",
    "Stopper",
    "make_plan",
    "start",
    "step",
    "advance",
    "ritz_pairs",
    "small_eigh",
]


def small_eigh(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.linalg.eigh`` of a small symmetric matrix, computed by torch's LAPACK.

    numpy's threaded OpenBLAS and torch's OpenMP pool fight over the cores when their
    calls alternate (as in a Lanczos loop): on 2 cores one 33x33 ``numpy`` ``eigh``
    between torch products cost 11 ms instead of 0.08 ms, and slowed the products and
    every other torch work in the process too. torch's own ``eigh`` shares torch's pool.
    """
    evals, evecs = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(T, dtype=np.float64)))
    return evals.numpy(), evecs.numpy()


def _wanted(evals: np.ndarray, k: int, which: str) -> np.ndarray:
    order = np.argsort(evals)
    k = min(k, len(evals))
    if which == "largest":
        return order[::-1][:k]
    if which == "smallest":
        return order[:k]
    top = list(order[::-1][:k])
    low = [i for i in order[:k] if i not in top]
    idx = np.array(top + low[::-1], dtype=int)
    return idx[np.argsort(-evals[idx])]


def _orthonormal_fill(
    n: int, cols: int, against: torch.Tensor, gen: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    X = torch.randn(n, cols, generator=gen, dtype=torch.float64).to(like.device, like.dtype)
    for _ in range(2):
        X = X - against @ (against.T @ X)
    return torch.linalg.qr(X)[0]


def _ritz_gaps(evals: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Distance from each selected Ritz value to the nearest other one (inf if alone)."""
    out = np.full(len(sel), np.inf)
    for j, i in enumerate(sel):
        others = np.delete(evals, i)
        if len(others):
            out[j] = float(np.min(np.abs(others - evals[i])))
    return out


def ritz_pairs(
    basis: list[torch.Tensor], prods: list[torch.Tensor], S: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ritz vectors ``Y = Q S`` (unit columns) and ``H Y`` from the stored products ``H Q``.

    ``H`` is linear, so ``H (Q S) = (H Q) S`` holds for the products actually computed:
    the residual ``||H y - lambda y||`` below is that of the returned vector (up to the
    rounding of the products themselves), not the Lanczos recurrence's estimate of it.
    Returns ``Y``, ``HY`` (float64), Rayleigh quotients and relative residuals.
    """
    dev = basis[0].device
    St = torch.as_tensor(S, dtype=torch.float64, device=dev)
    Y = torch.zeros(basis[0].shape[0], S.shape[1], dtype=torch.float64, device=dev)
    HY = torch.zeros_like(Y)
    row = 0
    for Qj, Wj in zip(basis, prods, strict=False):
        c = Qj.shape[1]
        Y.addmm_(Qj, St[row : row + c])
        HY.addmm_(Wj.to(torch.float64), St[row : row + c])
        row += c
    norms = torch.linalg.vector_norm(Y, dim=0)
    Y, HY = Y / norms, HY / norms
    lam = (Y * HY).sum(0)
    res = torch.linalg.vector_norm(HY - Y * lam, dim=0)
    tiny = float(torch.finfo(torch.float64).tiny)
    return Y, HY, lam.cpu(), (res / lam.abs().clamp_min(tiny)).cpu()


@dataclass(frozen=True)
class Plan:
    """Sizes of one Lanczos run: what is wanted, the block, and when the basis may stop."""

    k: int
    which: str
    tol: float
    n: int
    b: int
    max_cols: int
    min_cols: int
    min_cols_value: int


def make_plan(
    op: Any, *, k: int, which: str, tol: float, max_products: int | None, block_size: int | None
) -> Plan:
    n = op.dim
    k_total = 2 * k if which == "both" else k
    if k_total > n:
        wanted = f"{k} per end ({k_total} in all)" if which == "both" else f"{k}"
        raise SharpscopeError(
            f"top-k {wanted} is larger than the number of selected parameters ({n})"
        )
    b = max(1, min(int(block_size or op.preferred_block), n))
    if max_products is None:
        max_products = min(n, max(60, 20 * k_total))
    return Plan(
        k=k,
        which=which,
        tol=tol,
        n=n,
        b=b,
        max_cols=min(n, max(int(max_products), b)),
        # a longer minimal Krylov space before residuals may stop it: with 2k + 2 columns a
        # top-5 of a small CNN at tol 1e-3 had small residuals but had missed an eigenvalue
        min_cols=min(n, 3 * k_total + 5),
        min_cols_value=min(n, k_total + 2),
    )


@dataclass
class Krylov:
    """The growing float64 basis ``Q``, the raw products ``H Q`` and ``T = Q^T H Q``."""

    n: int
    b: int
    dt: torch.dtype
    eps: float
    gen: torch.Generator
    Q: torch.Tensor
    basis: list[torch.Tensor]
    first_W: torch.Tensor | None = None
    prods: list[torch.Tensor] = field(default_factory=list)  # in the operator's dtype
    T: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    prev_Q: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    products: int = 0


def start(op: Any, b: int, seed: int, reuse: Any) -> Krylov:
    """The first block: random, or (``b == 1``) the determinism check's vector and product."""
    n, f64 = op.dim, torch.float64
    gen = torch.Generator().manual_seed(int(seed))
    first_W = None
    if reuse is not None and b == 1:
        v, hv = reuse
        norm = torch.linalg.vector_norm(v.to(f64))
        Q = (v.to(f64) / norm).reshape(n, 1)
        first_W = (hv.to(f64) / norm).reshape(n, 1)
    else:
        Q = torch.linalg.qr(torch.randn(n, b, generator=gen, dtype=f64).to(op.device))[0]
    eps = float(torch.finfo(op.dtype).eps)
    return Krylov(n=n, b=b, dt=op.dtype, eps=eps, gen=gen, Q=Q, basis=[Q], first_W=first_W)


def step(op: Any, st: Krylov) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiply the current block, orthogonalise the product against the whole basis
    (twice) and extend ``T``; return the remainder ``W`` and the basis so far."""
    Q = st.Q
    if st.first_W is None:
        raw = op.matmat(Q.to(st.dt))
        st.prods.append(raw)
        W = raw.to(torch.float64)
    else:
        W, st.first_W = st.first_W, None
        st.prods.append(W)
    st.products += Q.shape[1]
    A = Q.T @ W
    A = 0.5 * (A + A.T)
    W = W - Q @ A
    if st.prev_Q is not None:
        W = W - st.prev_Q @ st.prev_B.T
    Qall = torch.cat(st.basis, dim=1)
    for _ in range(2):
        W = W - Qall @ (Qall.T @ W)
    m_prev, bq = st.T.shape[0], Q.shape[1]
    T_new = np.zeros((m_prev + bq, m_prev + bq))
    T_new[:m_prev, :m_prev] = st.T
    T_new[m_prev:, m_prev:] = A.detach().cpu().numpy()
    if st.prev_B is not None:
        pb = st.prev_B.detach().cpu().numpy()
        T_new[m_prev:, m_prev - pb.shape[1] : m_prev] = pb
        T_new[m_prev - pb.shape[1] : m_prev, m_prev:] = pb.T
    st.T = T_new
    return W, Qall


def advance(
    st: Krylov,
    U: torch.Tensor,
    B: torch.Tensor,
    S: torch.Tensor,
    Qall: torch.Tensor,
    scale: float,
    max_cols: int,
) -> None:
    """Make ``U`` the next block; directions lost to rounding are refilled at random."""
    m = st.T.shape[0]
    nb = min(st.b, st.n - m, max_cols - m)
    U, B = U[:, :nb], B[:nb]
    small = S[:nb] <= 100 * st.eps * scale
    if bool(small.any()):
        B = B.clone()
        B[small] = 0
        fill = _orthonormal_fill(
            st.n, int(small.sum()), torch.cat([Qall, U[:, ~small]], dim=1), st.gen, U
        )
        U = U.clone()
        U[:, small] = fill
    st.prev_Q, st.prev_B, st.Q = st.Q, B, U
    st.basis.append(U)


class Stopper:
    """The stopping rules of :func:`lanczos` (see its docstring), step by step."""

    def __init__(self, plan: Plan, *, by_value: bool) -> None:
        self.plan, self.by_value = plan, by_value
        self.done, self.converged, self.stopped_on = False, False, "max_products"
        self.prev_vals: np.ndarray | None = None
        self.true_hist: list[float] = []
        self.ritz: tuple | None = None
        self.evecs, self.sel, self.scale = np.zeros((0, 0)), np.zeros(0, dtype=int), 0.0

    def _stop(self, on: str, converged: bool = False) -> bool:
        self.done, self.stopped_on, self.converged = True, on, converged
        return True

    def check(
        self, st: Krylov, evals: np.ndarray, evecs: np.ndarray, B: torch.Tensor, bar: Any
    ) -> bool:
        """Whether to stop after this step (``True`` also sets ``stopped_on``)."""
        p, tol = self.plan, self.plan.tol
        est = np.linalg.norm(B.detach().cpu().numpy() @ evecs[-st.Q.shape[1] :, :], axis=0)
        sel = _wanted(evals, p.k, p.which)
        scale = max(float(np.abs(evals).max()), float(torch.finfo(st.dt).tiny))
        rel_est = est[sel] / np.maximum(np.abs(evals[sel]), 1e3 * st.eps * scale)
        m, vals = st.T.shape[0], evals[sel]
        value_ok = (
            self.by_value
            and self.prev_vals is not None
            and m >= p.min_cols_value
            and len(self.prev_vals) == len(vals)
            and bool(np.all(np.abs(vals - self.prev_vals) <= tol * np.abs(vals)))
            # a slowly rising Ritz value (close top eigenvalues) also changes little:
            # require residuals small enough that |theta - lambda| <= r^2/gap is near tol
            and bool(np.all(rel_est < np.sqrt(tol)))
            and bool(np.all(est[sel] ** 2 <= tol * np.abs(vals) * _ritz_gaps(evals, sel)))
        )
        self.prev_vals, self.evecs, self.sel, self.scale = vals, evecs, sel, scale
        self.ritz = None
        if m >= p.min_cols and np.all(rel_est < tol):
            self.ritz = ritz_pairs(st.basis, st.prods, evecs[:, sel])
            true = self.ritz[3].numpy()
            if bar is not None:
                bar.set_postfix(top=f"{vals[0]:.5g}", res=f"{true.max():.1e}")
            if np.all(true < tol):
                return self._stop("residual", True)
            self.true_hist.append(float(true.max()))
            if len(self.true_hist) >= 4 and self.true_hist[-1] > 0.9 * min(self.true_hist[:-3]):
                return self._stop("rounding_floor")
        elif bar is not None:
            bar.set_postfix(top=f"{vals[0]:.5g}", res=f"{rel_est.max():.1e}")
        if value_ok:
            return self._stop("value", True)
        if m >= p.max_cols or m >= p.n:
            return self._stop("dimension" if m >= p.n else "max_products")
        return False

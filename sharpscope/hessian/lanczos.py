"""Extreme Hessian eigenpairs by (block) Lanczos with full reorthogonalisation.

Lanczos builds an orthonormal basis ``Q`` of the Krylov space of ``H`` and the
block-tridiagonal projection ``T = Q^T H Q``; the eigenpairs of ``T`` (Ritz pairs)
approximate the extreme eigenpairs of ``H`` after a few dozen products, where power
iteration with deflation (PyHessian) needs many more and misorders close pairs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._func import layer_groups, preserved, select_parameters
from ..errors import SharpscopeError
from .operator import Batch, HessianOperator

__all__ = ["EigenResult", "lanczos", "hessian_eigenvalues", "layer_eigenvalues", "WHICH"]

WHICH = ("largest", "smallest", "both")


@dataclass
class EigenResult:
    """Eigenpairs of a Hessian operator.

    Attributes:
        eigenvalues: float64 tensor; descending for ``largest`` and ``both`` (the most
            negative last), ascending for ``smallest``.
        residuals: relative residuals ``||H v - lambda v|| / |lambda|`` of each pair.
        residual_source: ``"lanczos-relation"`` (``||B_m s_m||``, exact up to rounding
            with full reorthogonalisation) or ``"products"`` (one fresh product per pair).
        eigenvectors: ``(k, dim)`` flat unit vectors in the operator's parameter order, or None.
        hvp_count: every Hessian-vector product this call made (determinism check included).
        lanczos_products: the products of the Lanczos iteration itself.
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    which: str
    hvp_count: int
    lanczos_products: int
    converged: bool
    seconds: float
    tol: float
    residual_source: str = "lanczos-relation"
    eigenvectors: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    backend: str = ""
    mode: str = "eval"
    samples: int | None = None
    device: str = "cpu"
    block_size: int = 1

    @property
    def ratio(self) -> float | None:
        """Li et al. (2018)'s non-convexity measure ``|lambda_min| / lambda_max`` (``both`` only)."""
        if self.which != "both" or len(self.eigenvalues) < 2:
            return None
        top, low = float(self.eigenvalues.max()), float(self.eigenvalues.min())
        return abs(min(low, 0.0)) / top if top > 0 else None

    def vectors(self) -> list[dict[str, torch.Tensor]]:
        """The eigenvectors as ``{name: tensor}`` dicts (unit norm overall)."""
        if self.eigenvectors is None:
            return []
        sizes = [int(np.prod(self.shapes[n])) for n in self.names]
        out = []
        for vec in self.eigenvectors:
            parts = torch.split(vec, sizes)
            out.append(
                {
                    n: p.reshape(self.shapes[n]).clone()
                    for n, p in zip(self.names, parts, strict=False)
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "residuals": [float(r) for r in self.residuals],
            "residual_source": self.residual_source,
            "which": self.which,
            "ratio": self.ratio,
            "hvp_count": self.hvp_count,
            "lanczos_products": self.lanczos_products,
            "converged": self.converged,
            "tol": self.tol,
            "seconds": self.seconds,
            "samples": self.samples,
            "mode": self.mode,
            "device": self.device,
            "backend": self.backend,
            "block_size": self.block_size,
            "parameters": int(sum(int(np.prod(s)) for s in self.shapes.values())),
        }


def _check_args(k: int, which: str, tol: float) -> None:
    if which not in WHICH:
        raise SharpscopeError(f"which must be largest, smallest or both, got {which!r}")
    if int(k) < 1:
        raise SharpscopeError(f"top-k must be at least 1, got {k}")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise SharpscopeError(f"tolerance must be in (0, 1), got {tol}")


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


def lanczos(
    op: HessianOperator,
    *,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-3,
    max_products: int | None = None,
    block_size: int | None = None,
    seed: int = 0,
    return_vectors: bool = True,
    verify: bool = False,
    check: bool = True,
    quiet: bool = True,
) -> EigenResult:
    """Extreme eigenpairs of ``op`` by block Lanczos with full reorthogonalisation.

    Each step multiplies a block of ``b`` basis vectors (one pass over the data with
    the forward backend), orthogonalises the result against the whole basis twice,
    and extends the block tridiagonal matrix ``T``. With ``H Q_m = Q_m T_m + Q_{m+1}
    B_m E_m^T`` the residual of a Ritz pair ``(theta, Q_m s)`` is ``||B_m s_m||``
    (``s_m``: last block of ``s``), computed without extra products; the iteration
    stops when every wanted pair has ``residual / |theta| < tol``.

    Lanczos, C. (1950). An iteration method for the solution of the eigenvalue problem
    of linear differential and integral operators. Block form: Golub & Underwood (1977).

    Args:
        op: the Hessian operator.
        k: eigenpairs wanted (per end with ``which="both"``).
        which: ``"largest"``, ``"smallest"`` (most negative) or ``"both"``.
        tol: relative residual tolerance.
        max_products: stop after this many Lanczos products (default: ``min(dim, max(60, 20 k))``).
        block_size: vectors per block (default: the operator's preferred block).
        seed: seed of the random start block.
        return_vectors: keep the Ritz vectors.
        verify: recompute each residual from a fresh product (``k`` more products).
        check: first check that products are deterministic (two products).
        quiet: no progress bar.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
        >>> x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
        >>> H = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="forward")
        >>> res = lanczos(H, k=2, tol=1e-8)
        >>> from sharpscope.reference import dense_hessian
        >>> exact = torch.linalg.eigvalsh(dense_hessian(net, nn.functional.cross_entropy, (x, y)))
        >>> bool(torch.allclose(res.eigenvalues, exact.flip(0)[:2], rtol=1e-7))
        True
    """
    _check_args(k, which, tol)
    t0 = time.perf_counter()
    start_count = op.hvp_count
    reuse = None
    if check:
        op.check_determinism(seed=seed)
        reuse = getattr(op, "last_check", None)
    n = op.dim
    k_total = 2 * k if which == "both" else k
    b = max(1, min(int(block_size or op.preferred_block), n))
    if max_products is None:
        max_products = min(n, max(60, 20 * k_total))
    max_cols = min(n, max(int(max_products), b))
    min_cols = min(n, 2 * k_total + 2)
    gen = torch.Generator().manual_seed(int(seed))
    dev, dt = op.device, op.dtype
    eps = float(torch.finfo(dt).eps)
    first_W: torch.Tensor | None = None
    if reuse is not None and b == 1:
        # start from the determinism check's random vector and reuse its product
        v, hv = reuse
        norm = torch.linalg.vector_norm(v)
        Q, first_W = (v / norm).reshape(n, 1), (hv / norm).reshape(n, 1)
    else:
        Q = torch.linalg.qr(torch.randn(n, b, generator=gen, dtype=torch.float64).to(dev, dt))[0]
    basis: list[torch.Tensor] = [Q]
    T = np.zeros((0, 0))
    prev_Q: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    products = 0
    evals = np.zeros(0)
    evecs = np.zeros((0, 0))
    res = np.zeros(0)
    sel = np.zeros(0, dtype=int)
    converged = False
    bar = None
    from ..distributed import is_main

    if not quiet and is_main():  # distributed runs: rank 0 shows progress
        from tqdm.auto import tqdm

        bar = tqdm(
            total=max_cols, desc=f"Lanczos ({which})", unit="hvp", leave=False, dynamic_ncols=True
        )
    try:
        while True:
            W, first_W = (op.matmat(Q) if first_W is None else first_W), None
            products += Q.shape[1]
            if bar is not None:
                bar.update(Q.shape[1])
            A = Q.T @ W
            A = 0.5 * (A + A.T)
            W = W - Q @ A
            if prev_Q is not None:
                W = W - prev_Q @ prev_B.T
            Qall = torch.cat(basis, dim=1)
            for _ in range(2):
                W = W - Qall @ (Qall.T @ W)
            m_prev, bq = T.shape[0], Q.shape[1]
            T_new = np.zeros((m_prev + bq, m_prev + bq))
            T_new[:m_prev, :m_prev] = T
            T_new[m_prev:, m_prev:] = A.detach().cpu().double().numpy()
            if prev_B is not None:
                pb = prev_B.detach().cpu().double().numpy()
                T_new[m_prev:, m_prev - pb.shape[1] : m_prev] = pb
                T_new[m_prev - pb.shape[1] : m_prev, m_prev:] = pb.T
            T = T_new
            evals, evecs = np.linalg.eigh(T)
            U, S, Vh = torch.linalg.svd(W, full_matrices=False)
            B = S.unsqueeze(1) * Vh  # W = U @ B
            Bn = B.detach().cpu().double().numpy()
            res = np.linalg.norm(Bn @ evecs[-bq:, :], axis=0)
            sel = _wanted(evals, k, which)
            scale = max(float(np.abs(evals).max()), float(torch.finfo(dt).tiny))
            rel = res[sel] / np.maximum(np.abs(evals[sel]), 1e3 * eps * scale)
            m = T.shape[0]
            if bar is not None:
                bar.set_postfix(top=f"{evals[sel[0]]:.5g}", res=f"{rel.max():.1e}")
            if m >= min_cols and np.all(rel < tol):
                converged = True
                break
            if m >= max_cols or m >= n:
                converged = bool(np.all(rel < tol)) or m >= n
                break
            nb = min(b, n - m, max_cols - m)
            U, B = U[:, :nb], B[:nb]
            small = S[:nb] <= 100 * eps * scale
            if bool(small.any()):
                B = B.clone()
                B[small] = 0
                fill = _orthonormal_fill(
                    n, int(small.sum()), torch.cat([Qall, U[:, ~small]], dim=1), gen, U
                )
                U = U.clone()
                U[:, small] = fill
            prev_Q, prev_B, Q = Q, B, U
            basis.append(Q)
    finally:
        if bar is not None:
            bar.close()
    Qall = torch.cat(basis, dim=1)[:, : T.shape[0]]
    lam = torch.as_tensor(evals[sel], dtype=torch.float64)
    rel_res = torch.as_tensor(
        res[sel] / np.maximum(np.abs(evals[sel]), float(torch.finfo(dt).tiny))
    )
    vectors = None
    source = "lanczos-relation"
    if return_vectors or verify:
        S_sel = torch.as_tensor(evecs[:, sel], dtype=torch.float64).to(dev, dt)
        vectors = Qall @ S_sel
        vectors = vectors / torch.linalg.vector_norm(vectors, dim=0, keepdim=True)
        if verify:
            HV = op.matmat(vectors)
            diff = HV - vectors * lam.to(dev, dt)
            true = torch.linalg.vector_norm(diff, dim=0).double().cpu()
            rel_res = true / lam.abs().clamp_min(float(torch.finfo(dt).tiny))
            source = "products"
            converged = bool((rel_res < tol).all())
        vectors = vectors.T.contiguous() if return_vectors else None
    return EigenResult(
        eigenvalues=lam,
        residuals=rel_res.double(),
        which=which,
        hvp_count=op.hvp_count - start_count,
        lanczos_products=products,
        converged=converged,
        seconds=time.perf_counter() - t0,
        tol=tol,
        residual_source=source,
        eigenvectors=vectors,
        names=list(op.names),
        shapes=dict(op.shapes),
        backend=op.backend,
        mode=op.mode,
        samples=op.num_samples,
        device=str(op.device),
        block_size=b,
    )


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: Any,
    data: Batch | Iterable[Batch],
    *,
    k: int = 1,
    which: str = "largest",
    params: str | Sequence[str] | None = None,
    mode: str = "eval",
    tol: float = 1e-3,
    max_products: int | None = None,
    backend: str = "auto",
    block_size: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    verify: bool = False,
    check: bool = True,
    quiet: bool = True,
) -> EigenResult:
    """Top (or bottom) Hessian eigenpairs of the mean loss of ``model`` over ``data``.

    Builds a :class:`HessianOperator` and runs :func:`lanczos`; the caller's model is
    left exactly as it was. Arguments as in both.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
        >>> x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
        >>> res = hessian_eigenvalues(net, nn.functional.cross_entropy, (x, y), k=2)
        >>> res.eigenvalues.shape, res.converged
        (torch.Size([2]), True)
    """
    _check_args(k, which, tol)
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
        return lanczos(
            op,
            k=k,
            which=which,
            tol=tol,
            max_products=max_products,
            block_size=block_size,
            seed=seed,
            return_vectors=return_vectors,
            verify=verify,
            check=check,
            quiet=quiet,
        )


def layer_eigenvalues(
    model: nn.Module,
    loss_fn: Any,
    data: Batch | Iterable[Batch],
    *,
    k: int = 1,
    params: str | None = None,
    quiet: bool = True,
    **kwargs: Any,
) -> dict[str, EigenResult]:
    """Eigenpairs of each layer's diagonal Hessian block (parameters grouped by module).

    Keyword arguments are passed to :func:`hessian_eigenvalues`.
    """
    from ..utils import progress

    groups = layer_groups(select_parameters(model, params))
    out = {}
    for layer, names in progress(list(groups.items()), desc="layers", quiet=quiet):
        out[layer] = hessian_eigenvalues(
            model,
            loss_fn,
            data,
            k=min(k, sum(int(p.numel()) for n, p in model.named_parameters() if n in names)),
            params=names,
            quiet=True,
            **kwargs,
        )
    return out

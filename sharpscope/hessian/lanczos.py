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
        eigenvalues: Rayleigh quotients ``v^T H v`` of the returned unit vectors.
        residuals: relative residuals ``||H v - lambda v|| / |lambda|`` of the returned
            vectors, computed from real products.
        residual_source: ``"products"`` (from the Lanczos products, ``H Q s``) or
            ``"fresh-products"`` (``verify=True``: one more block product of the vectors).
        stopped_on: ``"residual"``, ``"value"`` (Ritz values settled), ``"dimension"``
            (the basis spans the space), ``"max_products"`` or ``"rounding_floor"``
            (residuals stopped falling above ``tol``).
        determinism_checked: whether the operator's determinism check has passed.
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
    residual_source: str = "products"
    eigenvectors: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    backend: str = ""
    mode: str = "eval"
    samples: int | None = None
    device: str = "cpu"
    block_size: int = 1
    stopped_on: str = ""
    determinism_checked: bool = False

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
            "stopped_on": self.stopped_on,
            "determinism_checked": self.determinism_checked,
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


STOPS = ("auto", "residual", "value")
LOOSE_TOL = 1e-4  # ``stop="auto"``: tolerances at least this loose also stop on the Ritz values


def _ritz_gaps(evals: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Distance from each selected Ritz value to the nearest other one (inf if alone)."""
    out = np.full(len(sel), np.inf)
    for j, i in enumerate(sel):
        others = np.delete(evals, i)
        if len(others):
            out[j] = float(np.min(np.abs(others - evals[i])))
    return out


def _ensure_checked(op: Any, seed: int) -> bool:
    """Run the operator's determinism check unless it already passed; True if it ran now."""
    if getattr(op, "checked", False):
        return False
    op.check_determinism(seed=seed)
    return True


def _ritz_pairs(
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
    check_determinism: bool | None = None,
    stop: str = "auto",
) -> EigenResult:
    """Extreme eigenpairs of ``op`` by block Lanczos with full reorthogonalisation.

    Each step multiplies a block of ``b`` basis vectors (one pass over the data with
    the forward backend), orthogonalises the result against the whole basis twice,
    and extends the block tridiagonal matrix ``T``. The basis, the reorthogonalisation
    and ``T`` are kept in float64 whatever the model's dtype (a float32 basis biases the
    Ritz values upwards by up to ``1e-5`` relative on ResNet-20), and the raw products
    ``H Q`` are kept too, so the residual ``||H y - lambda y|| / |lambda|`` of each
    returned pair is computed from real products (``H (Q s) = (H Q) s``) at no extra
    product. The recurrence's own residual estimate ``||B_m s_m||`` only says when to
    look: it is exact in exact arithmetic but falls to ``1e-18`` with float32 products
    while the true residuals stay near ``1e-6``.

    Stopping (``stop``):

    * ``"residual"``: every wanted pair has a true relative residual below ``tol``.
    * ``"value"``: that, or every wanted Ritz value changed by less than ``tol``
      (relative) over the last step (as power iteration, PyHessian, stops) while the
      recurrence's residual estimate is below ``sqrt(tol)``: the eigenvalue error is
      then about ``r^2 / gap``, not the ``O(r)`` of the vector, and a value that rises
      slowly because two top eigenvalues are close does not stop the iteration.
    * ``"auto"`` (default): ``"value"`` when ``tol >= 1e-4``, otherwise ``"residual"``.

    When the true residuals stop decreasing while the estimate is already below ``tol``
    (the rounding floor of float32 products) the iteration stops, ``converged=False``.

    Lanczos, C. (1950). An iteration method for the solution of the eigenvalue problem
    of linear differential and integral operators. Block form: Golub & Underwood (1977).

    Args:
        op: the Hessian operator.
        k: eigenpairs wanted (per end with ``which="both"``); more than the operator's
            dimension is an error.
        which: ``"largest"``, ``"smallest"`` (most negative) or ``"both"``.
        tol: relative residual tolerance (and Ritz-value tolerance, see ``stop``).
        max_products: stop after this many Lanczos products (default: ``min(dim, max(60, 20 k))``).
        block_size: vectors per block (default: the operator's preferred block).
        seed: seed of the random start block.
        return_vectors: keep the Ritz vectors.
        verify: also recompute each residual from a fresh block product (``k`` more products).
        check_determinism: first check that two products of the same vector agree
            (catches Dropout in train mode, random augmentation, reshuffling data). It
            costs one product (the other is Lanczos' first) and runs once per operator;
            ``False`` skips it and trusts the data path. ``None``: the value of ``check``.
        check: older name of ``check_determinism``.
        stop: ``"auto"``, ``"residual"`` or ``"value"`` (above).
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
    if stop not in STOPS:
        raise SharpscopeError(f"stop must be auto, residual or value, got {stop!r}")
    n = op.dim
    k_total = 2 * k if which == "both" else k
    if k_total > n:
        wanted = f"{k} per end ({k_total} in all)" if which == "both" else f"{k}"
        raise SharpscopeError(
            f"top-k {wanted} is larger than the number of selected parameters ({n})"
        )
    by_value = stop == "value" or (stop == "auto" and tol >= LOOSE_TOL)
    do_check = check if check_determinism is None else bool(check_determinism)
    t0 = time.perf_counter()
    take = getattr(op, "take_setup_products", None)
    start_count = op.hvp_count - (take() if take is not None else 0)
    reuse = None
    if do_check and _ensure_checked(op, seed):
        reuse = getattr(op, "last_check", None)
    b = max(1, min(int(block_size or op.preferred_block), n))
    if max_products is None:
        max_products = min(n, max(60, 20 * k_total))
    max_cols = min(n, max(int(max_products), b))
    min_cols = min(n, 2 * k_total + 2)
    min_cols_value = min(n, k_total + 2)
    gen = torch.Generator().manual_seed(int(seed))
    dev, dt = op.device, op.dtype
    f64 = torch.float64
    eps = float(torch.finfo(dt).eps)
    first_W: torch.Tensor | None = None
    if reuse is not None and b == 1:
        # start from the determinism check's random vector and reuse its product
        v, hv = reuse
        norm = torch.linalg.vector_norm(v.to(f64))
        Q = (v.to(f64) / norm).reshape(n, 1)
        first_W = (hv.to(f64) / norm).reshape(n, 1)
    else:
        Q = torch.linalg.qr(torch.randn(n, b, generator=gen, dtype=f64).to(dev))[0]
    basis: list[torch.Tensor] = [Q]
    prods: list[torch.Tensor] = []  # raw products H Q, in the operator's dtype
    T = np.zeros((0, 0))
    prev_Q: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    products = 0
    evals = np.zeros(0)
    evecs = np.zeros((0, 0))
    sel = np.zeros(0, dtype=int)
    prev_vals: np.ndarray | None = None
    true_hist: list[float] = []
    ritz: tuple | None = None
    converged = False
    stopped_on = "max_products"
    bar = None
    from ..distributed import is_main

    if not quiet and is_main():  # distributed runs: rank 0 shows progress
        from tqdm.auto import tqdm

        bar = tqdm(
            total=max_cols, desc=f"Lanczos ({which})", unit="hvp", leave=False, dynamic_ncols=True
        )
    try:
        while True:
            if first_W is None:
                raw = op.matmat(Q.to(dt))
                prods.append(raw)
                W = raw.to(f64)
            else:
                W, first_W = first_W, None
                prods.append(W)
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
            T_new[m_prev:, m_prev:] = A.detach().cpu().numpy()
            if prev_B is not None:
                pb = prev_B.detach().cpu().numpy()
                T_new[m_prev:, m_prev - pb.shape[1] : m_prev] = pb
                T_new[m_prev - pb.shape[1] : m_prev, m_prev:] = pb.T
            T = T_new
            evals, evecs = np.linalg.eigh(T)
            U, S, Vh = torch.linalg.svd(W, full_matrices=False)
            B = S.unsqueeze(1) * Vh  # W = U @ B
            Bn = B.detach().cpu().numpy()
            est = np.linalg.norm(Bn @ evecs[-bq:, :], axis=0)
            sel = _wanted(evals, k, which)
            scale = max(float(np.abs(evals).max()), float(torch.finfo(dt).tiny))
            rel_est = est[sel] / np.maximum(np.abs(evals[sel]), 1e3 * eps * scale)
            m = T.shape[0]
            vals = evals[sel]
            value_ok = (
                by_value
                and prev_vals is not None
                and m >= min_cols_value
                and len(prev_vals) == len(vals)
                and bool(np.all(np.abs(vals - prev_vals) <= tol * np.abs(vals)))
                # a slowly rising Ritz value (close top eigenvalues) also changes little:
                # require residuals small enough that |theta - lambda| <= r^2/gap is near tol
                and bool(np.all(rel_est < np.sqrt(tol)))
                and bool(np.all(est[sel] ** 2 <= tol * np.abs(vals) * _ritz_gaps(evals, sel)))
            )
            prev_vals = vals
            ritz = None
            if m >= min_cols and np.all(rel_est < tol):
                ritz = _ritz_pairs(basis, prods, evecs[:, sel])
                true = ritz[3].numpy()
                if bar is not None:
                    bar.set_postfix(top=f"{vals[0]:.5g}", res=f"{true.max():.1e}")
                if np.all(true < tol):
                    converged, stopped_on = True, "residual"
                    break
                true_hist.append(float(true.max()))
                if len(true_hist) >= 4 and true_hist[-1] > 0.9 * min(true_hist[:-3]):
                    stopped_on = "rounding_floor"
                    break
            elif bar is not None:
                bar.set_postfix(top=f"{vals[0]:.5g}", res=f"{rel_est.max():.1e}")
            if value_ok:
                converged, stopped_on = True, "value"
                break
            if m >= max_cols or m >= n:
                stopped_on = "dimension" if m >= n else "max_products"
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
    if ritz is None:
        ritz = _ritz_pairs(basis, prods, evecs[:, sel])
    Y, _, lam, rel_res = ritz
    if stopped_on == "dimension":  # the Krylov space is all of R^n: the pairs are exact
        converged = True
    elif stopped_on == "max_products":
        converged = bool((rel_res < tol).all())
    # order as the Ritz values (a Rayleigh quotient can swap two near-equal pairs)
    source = "products"
    if verify:
        HV = op.matmat(Y.to(dt)).to(torch.float64)
        lam = (Y * HV).sum(0).cpu()
        diff = HV - Y * lam.to(dev)
        true = torch.linalg.vector_norm(diff, dim=0).cpu()
        rel_res = true / lam.abs().clamp_min(float(torch.finfo(torch.float64).tiny))
        source = "fresh-products"
        if stopped_on != "value":
            converged = bool((rel_res < tol).all())
    vectors = Y.to(dt).T.contiguous() if return_vectors else None
    return EigenResult(
        eigenvalues=lam.double(),
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
        stopped_on=stopped_on,
        determinism_checked=bool(getattr(op, "checked", False)),
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
    check_determinism: bool | None = None,
    stop: str = "auto",
    max_memory: int | str | None = "auto",
) -> EigenResult:
    """Top (or bottom) Hessian eigenpairs of the mean loss of ``model`` over ``data``.

    Builds a :class:`HessianOperator` and runs :func:`lanczos`; the caller's model is
    left exactly as it was. Arguments as in both (``check_determinism=False`` skips the
    one-product check that products of the same vector agree; ``stop`` and
    ``max_memory`` as there). ``hvp_count`` includes the products spent timing the
    backends when ``backend="auto"`` had to time them (the choice is then cached).

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
            max_memory=max_memory,
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
            check_determinism=check_determinism,
            stop=stop,
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

    A layer with fewer parameters than ``k`` gets all its eigenpairs.

    Keyword arguments are passed to :func:`hessian_eigenvalues`.
    """
    from ..utils import progress

    groups = layer_groups(select_parameters(model, params))
    per_end = 2 if kwargs.get("which") == "both" else 1
    out = {}
    for layer, names in progress(list(groups.items()), desc="layers", quiet=quiet):
        size = sum(int(p.numel()) for n, p in model.named_parameters() if n in names)
        out[layer] = hessian_eigenvalues(
            model,
            loss_fn,
            data,
            k=max(1, min(k, size // per_end)),  # a small layer has fewer eigenpairs than k
            params=names,
            quiet=True,
            **kwargs,
        )
    return out

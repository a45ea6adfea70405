"""Extreme Hessian eigenpairs by (block) Lanczos with full reorthogonalisation.

Lanczos builds an orthonormal basis ``Q`` of the Krylov space of ``H`` and the
block-tridiagonal projection ``T = Q^T H Q``; the eigenpairs of ``T`` (Ritz pairs)
approximate the extreme eigenpairs of ``H`` after a few dozen products, where power
iteration with deflation (PyHessian) needs many more and misorders close pairs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..runtime.functional import layer_groups, preserved, select_parameters
from .krylov import Krylov, Stopper, advance, make_plan, ritz_pairs, small_eigh, start, step
from .operator import Batch, HessianOperator
from .result import EigenResult

__all__ = ["EigenResult", "lanczos", "hessian_eigenvalues", "layer_eigenvalues", "WHICH"]

WHICH = ("largest", "smallest", "both")


def _check_args(k: int, which: str, tol: float) -> None:
    if which not in WHICH:
        raise SharpscopeError(f"which must be largest, smallest or both, got {which!r}")
    if int(k) < 1:
        raise SharpscopeError(f"top-k must be at least 1, got {k}")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise SharpscopeError(f"tolerance must be in (0, 1), got {tol}")


STOPS = ("auto", "residual", "value")
LOOSE_TOL = 1e-4  # ``stop="auto"``: tolerances at least this loose also stop on the Ritz values


def _ensure_checked(op: Any, seed: int) -> bool:
    """Run the operator's determinism check unless it already passed; True if it ran now."""
    if getattr(op, "checked", False):
        return False
    op.check_determinism(seed=seed)
    return True


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
    * ``"auto"`` (default): ``"value"`` for a single eigenvalue (``k == 1`` at one end)
      when ``tol >= 1e-4``, otherwise ``"residual"``: with several wanted values a settled
      Ritz value can still belong to the wrong eigenvalue (a missed close pair), which the
      residual rule rules out.

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
    t0 = time.perf_counter()
    take = getattr(op, "take_setup_products", None)
    start_count = op.hvp_count - (take() if take is not None else 0)
    plan = make_plan(
        op, k=k, which=which, tol=tol, max_products=max_products, block_size=block_size
    )
    do_check = check if check_determinism is None else bool(check_determinism)
    st = start(op, plan.b, seed, _checked(op, seed) if do_check else None)
    single = k == 1 and which in ("largest", "smallest")
    by_value = stop == "value" or (stop == "auto" and single and tol >= LOOSE_TOL)
    stopper = Stopper(plan, by_value=by_value)
    _iterate(op, st, stopper, quiet=quiet)
    return _result(op, st, stopper, verify=verify, return_vectors=return_vectors,
                   start_count=start_count, t0=t0)  # fmt: skip


def _checked(op: Any, seed: int) -> Any:
    """Run the determinism check unless it passed before; its ``(v, H v)`` if it ran now."""
    return getattr(op, "last_check", None) if _ensure_checked(op, seed) else None


def _iterate(op: Any, st: Krylov, stopper: Stopper, *, quiet: bool) -> None:
    """Lanczos steps until the stopper says stop."""
    bar = _progress_bar(quiet, stopper.plan.max_cols, stopper.plan.which)
    try:
        while not stopper.done:
            W, Qall = step(op, st)
            if bar is not None:
                bar.update(st.Q.shape[1])
            evals, evecs = small_eigh(st.T)
            U, S, Vh = torch.linalg.svd(W, full_matrices=False)
            B = S.unsqueeze(1) * Vh  # W = U @ B
            if not stopper.check(st, evals, evecs, B, bar):
                advance(st, U, B, S, Qall, stopper.scale, stopper.plan.max_cols)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(quiet: bool, total: int, which: str) -> Any:
    from ..runtime.distributed import is_main

    if quiet or not is_main():  # distributed runs: rank 0 shows progress
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"Lanczos ({which})", unit="hvp", leave=False, dynamic_ncols=True)


def _result(
    op: Any,
    st: Krylov,
    stopper: Stopper,
    *,
    verify: bool,
    return_vectors: bool,
    start_count: int,
    t0: float,
) -> EigenResult:
    """The Ritz pairs as an :class:`EigenResult` (``verify``: residuals from fresh products)."""
    tol, converged, stopped_on = stopper.plan.tol, stopper.converged, stopper.stopped_on
    ritz = stopper.ritz
    if ritz is None:
        ritz = ritz_pairs(st.basis, st.prods, stopper.evecs[:, stopper.sel])
    Y, _, lam, rel_res = ritz
    if stopped_on == "dimension":  # the Krylov space is all of R^n: the pairs are exact
        converged = True
    elif stopped_on == "max_products":
        converged = bool((rel_res < tol).all())
    source = "products"
    if verify:
        HV = op.matmat(Y.to(st.dt)).to(torch.float64)
        lam = (Y * HV).sum(0).cpu()
        diff = HV - Y * lam.to(Y.device)
        true = torch.linalg.vector_norm(diff, dim=0).cpu()
        rel_res = true / lam.abs().clamp_min(float(torch.finfo(torch.float64).tiny))
        source = "fresh-products"
        if stopped_on != "value":
            converged = bool((rel_res < tol).all())
    return EigenResult(
        eigenvalues=lam.double(),
        residuals=rel_res.double(),
        which=stopper.plan.which,
        hvp_count=op.hvp_count - start_count,
        lanczos_products=st.products,
        converged=converged,
        seconds=time.perf_counter() - t0,
        tol=tol,
        residual_source=source,
        eigenvectors=Y.to(st.dt).T.contiguous() if return_vectors else None,
        names=list(op.names),
        shapes=dict(op.shapes),
        backend=op.backend,
        mode=op.mode,
        samples=op.num_samples,
        device=str(op.device),
        block_size=st.b,
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
    from ..runtime.progress import progress

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

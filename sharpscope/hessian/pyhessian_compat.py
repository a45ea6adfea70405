"""Run PyHessian (Yao et al. 2020) beside sharpscope as a cross-check and baseline.

PyHessian 0.1 is old: its constructor calls ``model.eval()`` and ``backward()`` on
the model it gets (we hand it a deep copy), it takes a ``cuda=`` flag instead of a
device, and ``density()`` calls the removed ``torch.eig`` (we shim it with
``torch.linalg.eigh`` for the call). It is never sharpscope's engine.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError

__all__ = ["pyhessian_eigenvalues", "pyhessian_trace", "pyhessian_density", "pyhessian_available"]

Batch = tuple[torch.Tensor, torch.Tensor]


def pyhessian_available() -> bool:
    try:
        import pyhessian  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@contextlib.contextmanager
def _torch_eig_shim() -> Iterator[None]:
    had = hasattr(torch, "eig")
    old = getattr(torch, "eig", None)

    def eig(T: torch.Tensor, eigenvectors: bool = True):
        w, v = torch.linalg.eigh(T)
        return torch.stack([w, torch.zeros_like(w)], dim=1), v

    torch.eig = eig  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had:
            torch.eig = old  # type: ignore[attr-defined]
        else:
            del torch.eig  # type: ignore[attr-defined]


def _hessian(model: nn.Module, loss_fn: Any, batches: Sequence[Batch]):
    try:
        from pyhessian import hessian
    except Exception as exc:  # noqa: BLE001
        raise SharpscopeError(f"PyHessian is not importable: {exc}") from exc
    batches = list(batches)
    if not batches:
        raise SharpscopeError("no data for PyHessian")
    dev = next(model.parameters()).device
    copy_ = copy.deepcopy(model)
    cuda = dev.type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(batches) == 1:
            x, y = batches[0]
            return hessian(copy_, loss_fn, data=(x.to(dev), y.to(dev)), cuda=cuda)
        return hessian(
            copy_, loss_fn, dataloader=[(x.to(dev), y.to(dev)) for x, y in batches], cuda=cuda
        )


def _sync(model: nn.Module) -> None:
    if next(model.parameters()).device.type == "cuda":
        torch.cuda.synchronize()


def pyhessian_eigenvalues(
    model: nn.Module,
    loss_fn: Any,
    batches: Sequence[Batch],
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
) -> dict[str, Any]:
    """PyHessian's top-``k`` eigenvalues (power iteration with deflation), its time and product count.

    Runs on a deep copy in eval mode, so the caller's model is untouched.
    """
    t0 = time.perf_counter()
    h = _hessian(model, loss_fn, batches)
    with _counting(h) as count, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=int(k))
    _sync(model)
    return {
        "eigenvalues": [float(v) for v in values],
        "seconds": time.perf_counter() - t0,
        "hvp_count": count[0],
        "tol": tol,
    }


def pyhessian_trace(
    model: nn.Module,
    loss_fn: Any,
    batches: Sequence[Batch],
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
) -> dict[str, Any]:
    """PyHessian's Hutchinson trace (its stopping rule: relative change below ``tol``)."""
    t0 = time.perf_counter()
    h = _hessian(model, loss_fn, batches)
    with _counting(h) as count, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = h.trace(maxIter=max_iter, tol=tol)
    _sync(model)
    return {
        "trace": float(np.mean(samples)),
        "seconds": time.perf_counter() - t0,
        "hvp_count": count[0],
        "probes": len(samples),
    }


def pyhessian_density(
    model: nn.Module, loss_fn: Any, batches: Sequence[Batch], *, iters: int = 90, runs: int = 1
) -> dict[str, Any]:
    """PyHessian's SLQ nodes and weights (with ``torch.eig`` shimmed by ``torch.linalg.eigh``)."""
    t0 = time.perf_counter()
    h = _hessian(model, loss_fn, batches)
    with _torch_eig_shim(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes, weights = h.density(iter=iters, n_v=runs)
    _sync(model)
    return {
        "nodes": np.array(nodes),
        "weights": np.array(weights),
        "seconds": time.perf_counter() - t0,
    }


@contextlib.contextmanager
def _counting(h: Any) -> Iterator[list[int]]:
    """Count the Hessian-vector products a PyHessian instance makes (restored on exit)."""
    import importlib

    ph = importlib.import_module("pyhessian.hessian")  # the package re-binds the name to the class

    count = [0]
    inner_dl = h.dataloader_hv_product
    inner_fn = ph.hessian_vector_product

    def counted_dl(v):
        count[0] += 1
        return inner_dl(v)

    def counted_fn(gradsH, params, v):
        count[0] += 1
        return inner_fn(gradsH, params, v)

    h.dataloader_hv_product = counted_dl
    ph.hessian_vector_product = counted_fn
    try:
        yield count
    finally:
        ph.hessian_vector_product = inner_fn

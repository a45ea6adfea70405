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
    rel_stderr: float | None = None,
) -> dict[str, Any]:
    """PyHessian's Hutchinson trace (its stopping rule: relative change below ``tol``).

    ``rel_stderr``: instead, stop when the standard error of PyHessian's own probe values
    is at most that fraction of their mean (at least 10 probes, at most ``max_iter``):
    PyHessian's products and probes with the stopping rule of :func:`trace_to_stderr`,
    so that the two reach the same stated standard error.
    """
    t0 = time.perf_counter()
    h = _hessian(model, loss_fn, batches)
    if rel_stderr is not None:
        with warnings.catch_warnings():  # its products call backward(create_graph=True)
            warnings.simplefilter("ignore")
            samples = _hutchinson_to_stderr(h, float(rel_stderr), int(max_iter))
        _sync(model)
        mean = float(np.mean(samples))
        se = float(np.std(samples, ddof=1) / np.sqrt(len(samples)))
        return {"trace": mean, "stderr": se, "seconds": time.perf_counter() - t0,
                "hvp_count": len(samples), "probes": len(samples),
                "reached": se <= rel_stderr * abs(mean)}  # fmt: skip
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


def _hutchinson_to_stderr(h: Any, rel: float, max_iter: int) -> list[float]:
    """PyHessian's Rademacher probes and products (as in its ``trace``) until the running
    standard error is at most ``rel`` times the running mean."""
    from pyhessian.utils import group_product, hessian_vector_product

    values: list[float] = []
    for _ in range(max_iter):
        v = [torch.randint_like(p, high=2, device=h.device) for p in h.params]
        for v_i in v:
            v_i[v_i == 0] = -1
        if h.full_dataset:
            _, Hv = h.dataloader_hv_product(v)
        else:
            Hv = hessian_vector_product(h.gradsH, h.params, v)
        values.append(group_product(Hv, v).cpu().item())
        n = len(values)
        if n >= 10 and np.std(values, ddof=1) / np.sqrt(n) <= rel * abs(np.mean(values)):
            break
    return values


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

"""The Hessian of a model's mean loss as a linear operator.

One operator serves every curvature probe in sharpscope (Lanczos, trace, density,
sharpness): it multiplies the Hessian of the sample-weighted mean loss over a data
source with blocks of vectors. Parameters are keyed by name; vectors are flat
tensors in the order of :attr:`HessianOperator.names`.

.. math::

    H = \\sum_b \\frac{n_b}{N} \\nabla^2_\\theta \\frac{1}{n_b}\\sum_{i \\in b} \\ell(f(x_i; \\theta), y_i)

Two product backends:

* ``forward``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` on
  :func:`torch.func.functional_call`, with ``vmap`` over a block of vectors so one
  pass over the data serves several products (Pearlmutter 1994; the curvlinops way).
* ``double``: double-backward autograd (``autograd.grad`` of the gradient), for
  models ``torch.func`` cannot trace. With a single batch the gradient graph is
  kept and reused for every product, as PyHessian does.

``auto`` times a few products of each on the device and keeps the faster (counted in
``hvp_count``, reported by the first estimator that runs); the choice is cached, see
:mod:`sharpscope.hessian.backends`. Kernels: :mod:`~sharpscope.hessian.products`;
checks: :mod:`~sharpscope.hessian.checks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..runtime import batches as _b
from ..runtime.functional import params_dict, probe_mode, select_parameters
from . import products
from .backends import backend_cache_path, clear_backend_cache, time_backends
from .checks import _active_dropout

__all__ = [
    "HessianOperator",
    "BACKENDS",
    "clear_backend_cache",
    "backend_cache_path",
    "time_backends",
]

Batch = Any  # (x, y), (mapping, y) or a mapping: see sharpscope.runtime.batches
BACKENDS = ("auto", "forward", "double")


class HessianOperator:
    """Hessian of the mean loss of ``model`` over ``data``, restricted to chosen parameters.

    Args:
        model: any ``nn.Module``; it is never modified (products run through
            :func:`torch.func.functional_call` on detached copies of the parameters).
        loss_fn: ``loss_fn(output, y)`` returning the mean loss of a batch (or a loss
            taking ``(output, batch)``, see :func:`sharpscope.runtime.batches.batch_loss_fn`).
        data: one batch or any re-iterable of batches (a list, a DataLoader); a batch is
            ``(x, y)``, ``(mapping, y)`` or a mapping (:mod:`sharpscope.runtime.batches`),
            weighted by :func:`~sharpscope.runtime.batches.batch_weight`. Batches are moved
            to the model's device (and floating inputs to its dtype).
        params: ``None``/``"all"`` (every trainable parameter), a regular expression
            searched in parameter names, or an explicit list of names.
        mode: ``"eval"`` (default) or ``"train"`` (batch statistics in BatchNorm, running
            statistics frozen), see :func:`sharpscope._func.probe_mode`.
        backend: ``"auto"``, ``"forward"`` or ``"double"``.
        block_size: vectors per ``vmap`` pass of the forward backend (at most: see ``max_memory``).
        max_memory: bytes the vectors of one ``vmap`` pass may use (each vector holds its
            own activations, tangents and backward buffers); ``"auto"`` (default): half the
            memory free on the device when the operator is built. The forward backend's
            block is lowered to fit (:attr:`vmap_block`); ``None``: no limit.
        distributed: ``"auto"`` (default): when a process group of several ranks is
            active (``torchrun``, see :mod:`sharpscope.distributed`) every rank passes
            the same ``data``, keeps every ``world_size``-th batch and each product is
            summed over ranks weighted by sample counts, so all ranks get the
            single-process product; ``None``: this process alone; or a
            :class:`~sharpscope.distributed.DistContext`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Linear(3, 2).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = HessianOperator(net, nn.functional.cross_entropy, (x, y), backend="forward")
        >>> H.shape
        (8, 8)
        >>> from sharpscope.reference import dense_hessian
        >>> v = torch.randn(8, dtype=torch.float64)
        >>> bool(torch.allclose(H @ v, dense_hessian(net, nn.functional.cross_entropy, (x, y)) @ v))
        True
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Any,
        data: Batch | Iterable[Batch],
        *,
        params: str | Sequence[str] | None = None,
        mode: str = "eval",
        backend: str = "auto",
        block_size: int = 8,
        distributed: Any = "auto",
        max_memory: int | str | None = "auto",
    ) -> None:
        from ..runtime.distributed import DistContext, current

        if mode not in ("eval", "train"):
            raise SharpscopeError(f"mode must be 'eval' or 'train', got {mode!r}")
        if backend not in BACKENDS:
            raise SharpscopeError(f"unknown backend {backend!r}: choose auto, forward or double")
        if int(block_size) < 1:
            raise SharpscopeError(f"block size must be at least 1, got {block_size}")
        self.model = model
        self.loss_fn = loss_fn
        self.mode = mode
        self.block_size = int(block_size)
        if not (max_memory is None or max_memory == "auto") and (
            isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory < 1
        ):
            raise SharpscopeError(
                f"max_memory must be 'auto', None or a positive number of bytes, got {max_memory!r}"
            )
        self.max_memory = max_memory
        self._vector_bytes: int | None = None
        self._memory_budget: int | None = None
        if params is None or isinstance(params, str):
            self.names = select_parameters(model, params)
        else:
            own = dict(model.named_parameters())
            missing = [n for n in params if n not in own]
            if missing:
                raise SharpscopeError(f"unknown parameter names: {', '.join(missing[:5])}")
            self.names = list(params)
            if not self.names:
                raise SharpscopeError("no parameters selected")
        self._params = {n: t.clone() for n, t in params_dict(model, self.names).items()}
        chosen = set(self.names)
        self._others = {n: p.detach() for n, p in model.named_parameters() if n not in chosen}
        first = next(iter(self._params.values()))
        self.device = first.device
        self.dtype = first.dtype
        self.shapes = {n: tuple(t.shape) for n, t in self._params.items()}
        self._sizes = [t.numel() for t in self._params.values()]
        self.dim = int(sum(self._sizes))
        ctx = current() if isinstance(distributed, str) and distributed == "auto" else distributed
        if ctx is not None and not isinstance(ctx, DistContext):
            raise SharpscopeError(f"distributed must be 'auto', None or a DistContext, got {ctx!r}")
        self.dist = ctx if ctx is not None and ctx.active else None
        if _b.is_batch(data):
            data = [data if isinstance(data, Mapping) else tuple(data)]
        self._data = data
        self._materialised = isinstance(data, (list, tuple))
        if self._materialised:
            if not data:
                raise SharpscopeError("no data: the batch list is empty")
            if self.dist is not None:
                data = self.dist.shard(
                    data, what="batches", hint=" or lower --batch-size so there are more batches"
                )
            self._data = [self._move(b) for b in data]
            self.num_samples: Any = _count(sum(self._weight(b) for b in self._data))
            if self.dist is not None:
                self.local_samples = self.num_samples
                count = torch.tensor([self.num_samples], dtype=torch.float64, device=self.device)
                self.num_samples = _count(float(self.dist.all_reduce(count)[0]))
        else:
            if self.dist is not None:
                self._data = products.RankShare(data, self.dist.rank, self.dist.world_size)
            self.num_samples = None
        self.hvp_count = 0
        self.setup_products = 0  # products spent choosing the backend, not yet reported
        self.checked = False  # whether check_determinism passed on this operator
        self.last_check: tuple[torch.Tensor, torch.Tensor] | None = None
        self._graph: tuple[list[torch.Tensor], tuple[torch.Tensor, ...]] | None = None
        self._fingerprint: list[torch.Tensor] | None = None
        self._record_fingerprint = False
        with probe_mode(model, mode):
            # a cached graph would freeze one dropout mask and hide the randomness
            self._random_modules = _active_dropout(model)
        self.requested_backend = backend
        self.timings: dict[str, float] = {}
        if backend != "auto":
            self.backend = backend
        elif self.dist is None:
            self.backend = self._choose_backend()
        else:  # rank 0 times the backends; every rank runs its choice (lock-step products)
            choice = self._choose_backend() if self.dist.is_main else None
            self.backend, self.block_size = self.dist.broadcast_object((choice, self.block_size))

    # ------------------------------------------------------------------ basics
    @property
    def preferred_block(self) -> int:
        """Vectors per pass that make products cheapest: the vmap block, or 1 for double backward.

        Every estimator (Lanczos, trace, density) multiplies blocks of this size through
        :meth:`matmat`, so all of them pay the same per-product cost.
        """
        return self.vmap_block if self.backend == "forward" else 1

    @property
    def vmap_block(self) -> int:
        """Vectors per ``vmap`` pass of the forward backend: ``block_size``, lowered to fit ``max_memory``."""
        if self.block_size <= 1 or self.max_memory is None:
            return self.block_size
        if self._memory_budget is None:
            self._memory_budget = (
                products.available_memory(self.device) // 2
                if self.max_memory == "auto"
                else int(self.max_memory)
            )
        per = self.vector_bytes()
        return max(1, min(self.block_size, self._memory_budget // max(per, 1)))

    def vector_bytes(self) -> int:
        """Estimated bytes one vector of a forward-over-reverse ``vmap`` pass holds.

        Measured once with forward hooks on the largest batch seen first: about four
        copies of every module output (activations, their tangents, the backward's
        gradients and its tangents) and of the parameters.
        """
        if self._vector_bytes is None:
            self._vector_bytes = products.vector_bytes(self)
        return self._vector_bytes

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    def __repr__(self) -> str:
        return (
            f"HessianOperator(dim={self.dim}, params={len(self.names)}, mode={self.mode!r}, "
            f"backend={self.backend!r}, samples={self.num_samples})"
        )

    def _move(self, batch: Any) -> Batch:
        if not _b.is_batch(batch):
            raise SharpscopeError(
                "each batch must be (x, y), (mapping, y) or a mapping of tensors, "
                f"got {type(batch).__name__}"
            )
        return _b.to_model(batch, self.device, self.dtype)

    def _weight(self, batch: Batch) -> float:
        """What ``batch`` weighs in the mean (its samples, or ``loss_fn.weight(batch)``)."""
        return _b.batch_weight(batch, self.loss_fn)

    def batches(self) -> Iterable[Batch]:
        """Iterate over the data, on the model's device."""
        if self._materialised:
            yield from self._data
            return
        count = 0
        for b in self._data:
            count += 1
            yield self._move(b)
        if count == 0 and self.dist is None:  # a rank may hold no batch; _reduce checks the sum
            raise SharpscopeError("no data: the batch iterable is empty")

    def zeros(self, k: int | None = None) -> torch.Tensor:
        shape = (self.dim,) if k is None else (self.dim, k)
        return torch.zeros(shape, device=self.device, dtype=self.dtype)

    def to_dict(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector into ``{name: tensor}`` (views)."""
        parts = torch.split(vec, self._sizes)
        return {n: p.view(self.shapes[n]) for n, p in zip(self.names, parts, strict=False)}

    def from_dict(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate ``{name: tensor}`` (in :attr:`names` order) into a flat vector."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise SharpscopeError(f"vector lacks parameters: {', '.join(missing[:5])}")
        return torch.cat([tensors[n].reshape(-1).to(self.device, self.dtype) for n in self.names])

    # ------------------------------------------------------------------ products
    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        if v.ndim == 1:
            return self.matvec(v)
        return self.matmat(v)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H @ v`` for a flat vector ``v`` of length :attr:`dim`."""
        return self.matmat(v.reshape(-1, 1)).reshape(-1)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H @ V`` for ``V`` of shape ``(dim, k)``; one pass over the data serves all ``k``."""
        if V.ndim != 2 or V.shape[0] != self.dim:
            raise SharpscopeError(
                f"expected vectors of shape ({self.dim}, k), got {tuple(V.shape)}"
            )
        rows = V.T.to(self.device, self.dtype).contiguous()  # (k, dim)
        out = self._products(rows)
        self.hvp_count += rows.shape[0]
        return out.T

    def hvp(self, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``H v`` with ``v`` keyed by parameter name."""
        return self.to_dict(self.matvec(self.from_dict(v)))

    def _products(self, rows: torch.Tensor) -> torch.Tensor:
        if self.backend == "double" and self._caches_graph():
            if self._graph is None:
                with probe_mode(self.model, self.mode):  # later products only re-run the graph
                    self._graph = self._gradient_graph(*_b.split_batch(self._data[0]))
            acc = self._double_products(self._graph, rows, retain=True)
            if self.dist is None:
                return acc
            return self._reduce(acc.mul_(self._weight(self._data[0])), None)
        k, acc, total, fingerprint = rows.shape[0], torch.zeros_like(rows), 0, []
        with probe_mode(self.model, self.mode):
            for batch in self.batches():
                n_b = self._weight(batch)
                total += n_b
                if self._record_fingerprint:
                    fingerprint.append(_b.batch_fingerprint(batch))
                x, y = _b.split_batch(batch)  # y is None for a mapping batch
                if self.backend == "double":
                    hv = self._double_products(self._gradient_graph(x, y), rows, retain=False)
                else:
                    vb = self.vmap_block
                    hv = torch.cat(
                        [self._forward_products(x, y, rows[i : i + vb]) for i in range(0, k, vb)]
                    )
                acc.add_(hv, alpha=float(n_b))
        if self._record_fingerprint:
            self._fingerprint = fingerprint
        if self.dist is not None:
            return self._reduce(acc, total)
        if total == 0:
            raise SharpscopeError("no data: the batch iterable is empty")
        if self.num_samples is None:
            self.num_samples = _count(total)
        return acc.div_(float(total))

    def _reduce(self, acc: torch.Tensor, total: int | None) -> torch.Tensor:
        """Sum this rank's ``sum_b n_b H_b V`` over ranks and divide by the samples of all ranks."""
        self.dist.all_reduce(acc)
        if self._materialised:
            return acc.div_(float(self.num_samples))
        count = torch.tensor([float(total or 0)], dtype=torch.float64, device=self.device)
        total = float(self.dist.all_reduce(count)[0])
        if total == 0:
            raise SharpscopeError("no data: the batch iterable is empty")
        if self.num_samples is None:
            self.num_samples = _count(total)
        return acc.div_(float(total))

    def _loss(self, p: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return _b.loss_on_batch(self.model, self.loss_fn, batch, {**self._others, **p})

    # (x, y) = split_batch(batch): the inputs and targets, or (mapping, None)
    def _forward_products(self, x: Any, y: Any, rows: torch.Tensor) -> torch.Tensor:
        return products.forward_products(self, _b.join_batch(x, y), rows)

    def _gradient_graph(self, x: Any, y: Any) -> tuple[list[torch.Tensor], tuple]:
        return products.gradient_graph(self, _b.join_batch(x, y))

    def _double_products(
        self, graph: tuple[list[torch.Tensor], tuple], rows: torch.Tensor, *, retain: bool
    ) -> torch.Tensor:
        return products.double_products(self, graph, rows, retain=retain)

    def _caches_graph(self) -> bool:
        """Whether double-backward products reuse one retained graph (one fixed batch, no dropout)."""
        return self._materialised and len(self._data) == 1 and not self._random_modules

    def release(self) -> None:
        """Free the cached gradient graph of the double backend."""
        self._graph = None

    # ------------------------------------------------------------------ checks
    def check_determinism(self, *, seed: int = 0, rtol: float | None = None) -> torch.Tensor:
        """Multiply the same random vector twice and raise if the results differ.

        Random operations in the model (Dropout in train mode) or data that change
        between passes (random augmentation, a shuffling DataLoader) make the
        "Hessian" a different matrix at each product, which silently breaks Lanczos.
        Returns the vector ``v``; ``self.last_check`` keeps ``(v, H v)`` so that Lanczos
        can start from ``v`` and reuse the product. Costs two products.
        See :func:`sharpscope.hessian.checks.check_determinism`.
        """
        from .checks import check_determinism

        return check_determinism(self, seed=seed, rtol=rtol)

    def _nonfinite_cause(self) -> str:
        from .checks import nonfinite_cause

        return nonfinite_cause(self)

    def take_setup_products(self) -> int:
        """Products spent choosing the backend that no result has reported yet (then 0)."""
        n, self.setup_products = self.setup_products, 0
        return n

    # ------------------------------------------------------------------ backend choice
    def _backend_key(self) -> tuple:
        first = next(iter(self.batches()))
        first = first if isinstance(first, Mapping) else first[0]
        shapes = (
            {str(k): tuple(getattr(v, "shape", ())) for k, v in first.items()}
            if isinstance(first, Mapping)
            else None
        )
        return (
            str(self.device),
            type(self.model).__qualname__,
            self.mode,
            str(self.dtype),
            tuple((n, self.shapes[n]) for n in self.names),
            tuple(first.shape) if shapes is None else tuple(sorted(shapes.items())),
            self.block_size,
        )

    def _choose_backend(self) -> str:
        from .backends import choose_backend

        return choose_backend(self)

    # ------------------------------------------------------------------ export
    def to_scipy(self):
        """A :class:`scipy.sparse.linalg.LinearOperator` (float64 numpy in and out) for ``eigsh``."""
        from scipy.sparse.linalg import LinearOperator

        def mm(x: np.ndarray) -> np.ndarray:
            X = torch.as_tensor(np.asarray(x).reshape(self.dim, -1))
            return self.matmat(X).detach().to("cpu", torch.float64).numpy()

        return LinearOperator(
            self.shape,
            matvec=lambda x: mm(x).reshape(-1),
            matmat=mm,
            rmatvec=lambda x: mm(x).reshape(-1),
            dtype=np.float64,
        )


def _count(total: float) -> Any:
    """A weight total as an ``int`` when it is whole (sample counts), else the float."""
    return int(total) if float(total).is_integer() else float(total)

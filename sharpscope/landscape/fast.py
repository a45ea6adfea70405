"""The per-point loop, made faster on the CPU for evaluation-only grids (eval mode).

Measured on a 2-core CPU (process time, one thread; ``benchmarks/bench_landscape.py``):
channels-last memory for the conv weights and 4-D inputs runs the convolutions of the
small CNN about 3x and of ResNet-20 about 1.3-1.7x faster than the default layout, and
writing each point into a preallocated channels-last copy of the model (``_foreach``
copy/add) instead of ``functional_call`` with a fresh dict saves about 5% more; eval-mode
BatchNorm folded into the convolution that feeds it (:mod:`.fold`, recomputed per point)
saves about 15% more on ResNet-20. What did not pay there: ``torch.inference_mode`` (the
same as ``no_grad``), the whole subset in one forward (slower for the small CNN), oneDNN
(``torch.utils.mkldnn``) modules (no faster than channels-last, and some models break),
so they are not used. ``torch.compile`` was not measured (its compile time would have to
be repaid within one grid).

Several points at once: a small network's convolutions keep two OpenMP threads poorly
busy, so on ``T`` threads the loop runs ``W = min(T, 4)`` workers (Python threads; torch
releases the GIL in its kernels), each with its own copy of the model and ``T // W``
threads, and no more workers than half the free memory holds (a model copy plus the outputs
of one forward of a batch each). On the 2-core CPU that evaluated the small CNN 1.8x and ResNet-20 1.17x faster
than one worker with two threads. Every point is computed with the same ``T // W``
threads whichever worker takes it, so a resumed grid gets the same numbers. A loss
function that is not torch's or sharpscope's own is called from one thread only (it may
keep state).

The numbers are those of the plain loop up to float rounding (the convolutions sum in
another order; relative differences about 1e-7). :class:`FastLoop` checks that on the
run's first point: if the fast path fails there or differs from the plain loop by more
than ``1e-6`` (relative), the run uses the plain loop.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from ..runtime.batches import call_model
from ..runtime.device import available_memory
from ..runtime.functional import forward_output_bytes
from .fold import fold_batchnorm
from .points import Batch, Params, _point_params, _tensors_of, evaluate_point

__all__ = ["FastLoop", "TOLERANCE"]

TOLERANCE = 1e-6


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    return t


def _batches_channels_last(batches: Sequence[Batch]) -> list[Batch]:
    out: list[Batch] = []
    for b in batches:
        if isinstance(b, (tuple, list)) and len(b) == 2 and isinstance(b[0], torch.Tensor):
            out.append((_channels_last(b[0]), b[1]))
        else:
            out.append(b)
    return out


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(abs(b), 1e-12)


class _Copy:
    """A channels-last copy of the model that each point is written into (one per worker).

    Writing a point with ``torch._foreach_copy_``/``_foreach_add_`` into preallocated
    tensors saves the allocations and the ``functional_call`` of every batch. Raises when
    the model cannot be deep-copied (it is then evaluated with ``functional_call``).
    """

    def __init__(self, loop: FastLoop) -> None:
        work = copy.deepcopy(loop.model).to(memory_format=torch.channels_last)
        own = _tensors_of(work)
        try:
            self.folded = fold_batchnorm(work, own, lambda m: call_model(m, loop.batches[0]))
        except (RuntimeError, ValueError, TypeError):  # the first point's check decides
            self.folded = None
        names = list(loop.base)
        self.work, self.loop = work, loop
        self.targets = [own[n] for n in names]
        self.centre = [loop.base[n] for n in names]
        self.steps = [
            ([own[n] for n in names if n in d], [d[n] for n in names if n in d]) for d in loop.dirs
        ]

    def point(self, coef: Sequence[float]) -> tuple[float, float]:
        with torch.no_grad():
            torch._foreach_copy_(self.targets, self.centre)
            for c, (targets, step) in zip(coef, self.steps, strict=True):
                if c != 0.0 and targets:
                    torch._foreach_add_(targets, step, alpha=c)
            if self.folded is not None:
                self.folded.refresh()
        return evaluate_point(self.work, self.loop.loss_fn, self.loop.batches)


def _worker_bytes(work: nn.Module, batch: Batch) -> int:
    """Bytes one worker holds: its model copy plus every output of one forward of the batch
    (measured with forward hooks; an upper bound of the activations alive at once)."""
    own = sum(t.numel() * t.element_size() for t in _tensors_of(work).values())
    try:
        with torch.no_grad():
            return own + forward_output_bytes(work, lambda: call_model(work, batch))
    except (RuntimeError, ValueError, TypeError):
        return own  # the first point's check will find what is wrong


def _own_loss(loss_fn: Callable) -> bool:
    """Whether ``loss_fn`` is torch's or sharpscope's (pure: safe to call from several threads)."""
    mod = getattr(loss_fn, "__module__", None) or type(loss_fn).__module__ or ""
    return mod.split(".")[0] in ("torch", "sharpscope")


class FastLoop:
    """Evaluate grid points with channels-last convolutions (CPU, eval mode), several at once."""

    MAX_WORKERS = 4

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        batches: Sequence[Batch],
        base: Params,
        dirs: Sequence[Params],
    ) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.batches = _batches_channels_last(batches)
        self.base = {n: _channels_last(t) for n, t in base.items()}
        self.dirs = [{n: _channels_last(t) for n, t in d.items()} for d in dirs]
        self.checked = False
        self.enabled = True
        self.copies: list[_Copy] = []
        try:
            self.copies.append(_Copy(self))
        except Exception:  # noqa: BLE001 - any model deepcopy cannot handle: functional_call
            pass
        self.threads = max(1, torch.get_num_threads())
        alone = not self.copies or not _own_loss(loss_fn)
        self.workers = 1 if alone else min(self.threads, self.MAX_WORKERS)
        if self.workers > 1:  # each worker holds a model copy and one batch's activations
            per = _worker_bytes(self.copies[0].work, self.batches[0])
            fits = available_memory(torch.device("cpu")) // max(2 * per, 1)
            self.workers = max(1, min(self.workers, int(fits)))

    @property
    def work(self) -> nn.Module | None:
        """The first worker's model copy (``None``: the model could not be copied)."""
        return self.copies[0].work if self.copies else None

    @property
    def _folded(self) -> Any:
        return self.copies[0].folded if self.copies else None

    @staticmethod
    def pays(model: nn.Module, device: torch.device, batches: Sequence[Batch]) -> bool:
        """On the CPU, for a model with 2-D convolutions fed ``(x, y)`` batches of images."""
        if device.type != "cpu" or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            return False
        return any(
            isinstance(b, (tuple, list))
            and len(b) == 2
            and isinstance(b[0], torch.Tensor)
            and b[0].ndim == 4
            for b in batches
        )

    def point(self, coef: Sequence[float], worker: int = 0) -> tuple[float, float]:
        """Loss and accuracy at ``base + sum coef_i dirs_i`` (on ``worker``'s model copy)."""
        if not self.copies:
            p = _point_params(self.base, self.dirs, coef)
            return evaluate_point(self.model, self.loss_fn, self.batches, p)
        return self.copies[worker].point(coef)

    def _first(self, plain: Callable[[], tuple[float, float]], coef: list[float]):
        """Check the fast path against the plain loop on the first point; keep its value
        if they agree (so every point of a run, resumed or not, comes from the same path)."""
        self.checked = True
        want = plain()
        try:
            got = self.point(coef)
        except (RuntimeError, ValueError, TypeError):  # e.g. a view of a channels-last input
            self.enabled = False
            return want
        if not (_close(got[0], want[0]) and _close(got[1], want[1])):
            self.enabled = False
            return want
        return got

    def _spread(self, coefs: list[list[float]]) -> list[tuple[float, float]]:
        """The points over the workers (their own copies), in order."""
        workers = min(self.workers, len(coefs))
        if workers <= 1 or not self.copies:
            return [self.point(c) for c in coefs]
        while len(self.copies) < workers:
            self.copies.append(_Copy(self))
        with ThreadPoolExecutor(workers) as ex:
            parts = list(ex.map(lambda w: [self.point(c, w) for c in coefs[w::workers]],
                                range(workers)))  # fmt: skip
        out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(coefs)
        for w, part in enumerate(parts):
            out[w::workers] = part
        return out

    def chunk(
        self,
        coefs: np.ndarray,
        plain: Callable[[list[float]], tuple[float, float]],
    ) -> tuple[list[float], list[float]]:
        """Loss and accuracy of each point; ``plain(coef)`` is the plain loop's point."""
        todo = [[float(v) for v in c] for c in coefs]
        results: list[tuple[float, float]] = []
        per = max(1, self.threads // self.workers)
        restore = torch.get_num_threads()
        torch.set_num_threads(per)  # every point with the same threads, whichever worker
        try:
            if todo and not self.checked:
                first = todo.pop(0)
                results.append(self._first(lambda: plain(first), first))
            if self.enabled:
                results += self._spread(todo)
        finally:
            torch.set_num_threads(restore)
        if not self.enabled:
            results += [plain(c) for c in todo]
        return [r[0] for r in results], [r[1] for r in results]

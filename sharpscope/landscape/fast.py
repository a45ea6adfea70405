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

The numbers are those of the plain loop up to float rounding (the convolutions sum in
another order; relative differences about 1e-7). :class:`FastLoop` checks that on the
run's first point: if the fast path fails there or differs from the plain loop by more
than ``1e-6`` (relative), the run uses the plain loop.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..runtime.batches import call_model
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


class FastLoop:
    """Evaluate grid points one at a time with channels-last convolutions (CPU, eval mode)."""

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
        self.work = self._work_copy(model)

    def _work_copy(self, model: nn.Module) -> nn.Module | None:
        """A channels-last copy of the model whose tensors each point is written into.

        Writing a point with ``torch._foreach_copy_``/``_foreach_add_`` into preallocated
        tensors saves the allocations and the ``functional_call`` of every batch; a model
        that cannot be copied is evaluated with ``functional_call`` instead.
        """
        try:
            work = copy.deepcopy(model).to(memory_format=torch.channels_last)
        except Exception:  # noqa: BLE001 - any model deepcopy cannot handle: the other way
            return None
        own = _tensors_of(work)
        try:
            self._folded = fold_batchnorm(work, own, lambda m: call_model(m, self.batches[0]))
        except (RuntimeError, ValueError, TypeError):  # the first point's check decides
            self._folded = None
        names = list(self.base)
        self._targets = [own[n] for n in names]
        self._centre = [self.base[n] for n in names]
        self._steps = [
            ([own[n] for n in names if n in d], [d[n] for n in names if n in d]) for d in self.dirs
        ]
        return work

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

    def point(self, coef: Sequence[float]) -> tuple[float, float]:
        """Loss and accuracy at ``base + sum coef_i dirs_i``."""
        if self.work is None:
            p = _point_params(self.base, self.dirs, coef)
            return evaluate_point(self.model, self.loss_fn, self.batches, p)
        with torch.no_grad():
            torch._foreach_copy_(self._targets, self._centre)
            for c, (targets, step) in zip(coef, self._steps, strict=True):
                if c != 0.0 and targets:
                    torch._foreach_add_(targets, step, alpha=c)
            if self._folded is not None:
                self._folded.refresh()
        return evaluate_point(self.work, self.loss_fn, self.batches)

    def _first(self, plain: Callable[[], tuple[float, float]], coef: list[float]):
        """The plain loop's value at the first point; the fast path stays on if it agrees."""
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

    def chunk(
        self,
        coefs: np.ndarray,
        plain: Callable[[list[float]], tuple[float, float]],
    ) -> tuple[list[float], list[float]]:
        """Loss and accuracy of each point; ``plain(coef)`` is the plain loop's point."""
        losses, accs = [], []
        for c in coefs:
            coef = [float(v) for v in c]
            if not self.checked:
                lo, ac = self._first(lambda coef=coef: plain(coef), coef)
            elif self.enabled:
                lo, ac = self.point(coef)
            else:
                lo, ac = plain(coef)
            losses.append(lo)
            accs.append(ac)
        return losses, accs

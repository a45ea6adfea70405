"""Evaluating grid points: one at a time (the loop) or several per pass (vmap).

Both give the same numbers: the sample-weighted mean of ``loss_fn`` over all batches
and the fraction of argmax hits (NaN for non-classification outputs). The loop swaps
each point's parameters in with :func:`torch.func.functional_call`; vmap stacks a
chunk of points and maps over them; ``recompute_bn`` loads each point into the model
and re-estimates the BatchNorm running statistics first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from ..runtime.batches import batch_target, batch_weight, call_model, loss_of_output, output_tensor

__all__ = ["evaluate_point", "eval_chunk_loop", "eval_chunk_vmap", "auto_chunk"]

Batch = Any  # (x, y), (mapping, y) or a mapping: see sharpscope.runtime.batches
Params = dict[str, torch.Tensor]
_BN = nn.modules.batchnorm._BatchNorm


IGNORE_INDEX = -100  # targets no loss counts (token padding), as in training/evaluate.py


def _is_classification(out: Any, y: Any) -> bool:
    """Class scores: ``(B, C)`` with ``(B,)`` or ``(B, T, V)`` with ``(B, T)`` integer targets."""
    if not isinstance(y, torch.Tensor):  # a mapping batch without labels
        return False
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        return False
    out = output_tensor(out)
    return out.ndim >= 2 and tuple(y.shape) == tuple(out.shape[:-1])


def _hits(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Argmax hits; for sequence outputs only at kept tokens (target not ``-100``)."""
    hit = out.argmax(-1) == y
    if out.ndim >= 3:
        hit = hit & (y != IGNORE_INDEX)
    return hit.sum()


def _counted(y: Any, weight: float) -> float:
    """What a batch's accuracy is a fraction of: its kept tokens, or its weight (samples)."""
    if isinstance(y, torch.Tensor) and y.ndim >= 2:
        return float((y != IGNORE_INDEX).sum())
    return weight


def _tensors_of(model: nn.Module) -> dict[str, torch.Tensor]:
    named = dict(model.named_parameters())
    for n, b in model.named_buffers():
        if b.is_floating_point():
            named[n] = b
    return named


def _point_params(center: Params, dirs: Sequence[Params], coef: Sequence[float]) -> Params:
    out = dict(center)
    for n in {k for d in dirs for k in d}:
        v = center[n]
        for c, d in zip(coef, dirs, strict=True):
            if n in d and c != 0.0:
                v = v + c * d[n]
        out[n] = v
    return out


def evaluate_point(
    model: nn.Module, loss_fn: Callable, batches: Sequence[Batch], params: Params | None = None
) -> tuple[float, float]:
    """Weighted mean loss and accuracy of ``model`` (with ``params`` swapped in) over ``batches``.

    Runs under the model's current mode and no grad; accuracy is NaN for
    non-classification outputs. Any batch structure; weights: samples, or
    ``loss_fn.weight(batch)`` (:func:`sharpscope.runtime.batches.batch_weight`).
    """
    total = correct = None
    n = counted = 0
    cls = True
    with torch.no_grad():
        for batch in batches:
            out = call_model(model, batch, params)
            w = batch_weight(batch, loss_fn)
            loss = loss_of_output(loss_fn, out, batch).double() * w
            total = loss if total is None else total + loss
            y = batch_target(batch)
            if cls and _is_classification(out, y):
                c = _hits(output_tensor(out), y)
                correct = c if correct is None else correct + c
                counted += _counted(y, w)
            else:
                cls = False
            n += w
    acc = float(correct) / counted if (cls and correct is not None and counted) else math.nan
    return float(total) / n, acc


def auto_chunk(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    center: Params,
    device: torch.device,
) -> int:
    """Points per vmap pass: from free memory on CUDA, a conservative 8 elsewhere."""
    if device.type != "cuda":
        return 8
    torch.cuda.synchronize(device)
    free, _ = torch.cuda.mem_get_info(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    largest = max(batches, key=batch_weight)
    with torch.no_grad():
        loss_of_output(loss_fn, call_model(model, largest, center), largest)
    torch.cuda.synchronize(device)
    act = max(torch.cuda.max_memory_allocated(device) - base, 1)
    param_bytes = sum(t.numel() * t.element_size() for t in center.values())
    per_point = 2 * act + param_bytes
    return int(max(1, min(256, (0.5 * free) // per_point)))


def eval_chunk_loop(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    base: Params,
    dirs: Sequence[Params],
    coefs: np.ndarray,
    *,
    recompute_bn: bool = False,
) -> tuple[list[float], list[float]]:
    """Loss and accuracy of each point of a chunk, one point at a time."""
    losses, accs = [], []
    for c in coefs:
        p = _point_params(base, dirs, [float(v) for v in c])
        if recompute_bn:
            lo, ac = _eval_recompute_bn(model, loss_fn, batches, p)
        else:
            lo, ac = evaluate_point(model, loss_fn, batches, p)
        losses.append(lo)
        accs.append(ac)
    return losses, accs


def eval_chunk_vmap(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    base: Params,
    dirs: Sequence[Params],
    coefs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    ref = next(iter(base.values()))
    c = torch.as_tensor(coefs, device=ref.device)
    moving = sorted({n for d in dirs for n in d})
    const = {n: t for n, t in base.items() if n not in moving}
    stacked = {}
    for n in moving:
        v = base[n].unsqueeze(0).expand(len(c), *base[n].shape)
        for i, d in enumerate(dirs):
            if n in d:
                v = v + c[:, i].to(d[n].dtype).reshape(-1, *([1] * d[n].dim())) * d[n].unsqueeze(0)
        stacked[n] = v

    def one(p: Params, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = call_model(model, batch, {**const, **p})
        loss = loss_of_output(loss_fn, out, batch)
        y = batch_target(batch)
        if _is_classification(out, y):
            correct = _hits(output_tensor(out), y)
        else:
            correct = torch.full((), -1, dtype=torch.long, device=loss.device)
        return loss, correct

    fn = vmap(one, in_dims=(0, None))
    with warnings.catch_warnings():  # "no batching rule for ...": a fallback, same numbers
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        return _run_vmapped(fn, stacked, batches, len(c), ref.device, loss_fn)


def _run_vmapped(
    fn: Callable,
    stacked: Params,
    batches: Sequence[Batch],
    points: int,
    device: torch.device,
    loss_fn: Callable,
) -> tuple[np.ndarray, np.ndarray]:
    total = torch.zeros(points, dtype=torch.float64, device=device)
    correct = torch.zeros(points, dtype=torch.long, device=device)
    n = counted = 0
    cls = True
    for batch in batches:
        lo, co = fn(stacked, batch)
        w = batch_weight(batch, loss_fn)
        total += lo.double() * w
        if (co < 0).any():
            cls = False
        correct += co
        counted += _counted(batch_target(batch), w)
        n += w
    acc = (correct.double() / counted).cpu().numpy() if cls and counted else np.full(points, np.nan)
    return (total / n).cpu().numpy(), acc


def _eval_recompute_bn(
    model: nn.Module, loss_fn: Callable, batches: Sequence[Batch], params: Params
) -> tuple[float, float]:
    """Load ``params`` into the model, re-estimate BatchNorm statistics on ``batches``, evaluate."""
    own = _tensors_of(model)
    for n, v in params.items():
        own[n].copy_(v)
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.running_mean is not None]
    saved = [(m.momentum, m.track_running_stats, m.training) for m in bns]
    try:
        for m in bns:
            m.track_running_stats = True
            m.reset_running_stats()
            m.momentum = None
            m.train(True)
        for batch in batches:
            call_model(model, batch)
        for m in bns:
            m.train(False)
        return evaluate_point(model, loss_fn, batches)
    finally:
        for m, (mom, track, training) in zip(bns, saved, strict=True):
            m.momentum, m.track_running_stats, m.training = mom, track, training

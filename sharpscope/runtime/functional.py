"""Functional plumbing shared by every probe: parameter selection, mode handling,
flat vectors keyed by name, and a guard that leaves the caller's model untouched."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import SharpscopeError

__all__ = [
    "forward_output_bytes",
    "select_parameters",
    "layer_groups",
    "preserved",
    "probe_mode",
    "functional_loss",
    "flatten_dict",
    "unflatten_vector",
    "params_dict",
]

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def select_parameters(
    model: nn.Module, pattern: str | None = None, *, trainable_only: bool = True
) -> list[str]:
    """Names of the parameters to probe, in ``named_parameters`` order.

    ``pattern`` is a regular expression searched in each name (``"fc|layers.2"``);
    ``None`` or ``"all"`` selects every (trainable) parameter.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad or not trainable_only]
    if pattern is None or pattern in ("", "all"):
        chosen = names
    else:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise SharpscopeError(f"invalid parameter pattern {pattern!r}: {exc}") from exc
        chosen = [n for n in names if rx.search(n)]
    if not chosen:
        raise SharpscopeError(
            f"parameter pattern {pattern!r} matches no parameter; names look like {', '.join(names[:4])}"
        )
    return chosen


def layer_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Group parameter names by the module that owns them (``"layers.0.conv1.weight"`` -> ``"layers.0.conv1"``)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.rpartition(".")[0] or n, []).append(n)
    return groups


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Restore the model's modes, parameters, buffers, ``.grad`` and ``requires_grad`` on exit.

    Every probe runs inside this guard, so calling it has no side effect on the
    caller's model even if the probe fails half-way.
    """
    modes = {m: m.training for m in model.modules()}
    tracking = {m: m.track_running_stats for m in model.modules() if isinstance(m, _BN_TYPES)}
    params = {
        n: (
            p.detach().clone(),
            None if p.grad is None else p.grad.detach().clone(),
            p.requires_grad,
        )
        for n, p in model.named_parameters()
    }
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                data, grad, req = params[n]
                p.copy_(data)
                p.grad = grad
                p.requires_grad_(req)
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])
        for m, t in modes.items():
            m.training = t
        for m, t in tracking.items():
            m.track_running_stats = t


@contextlib.contextmanager
def probe_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Put the model in ``"eval"`` or ``"train"`` mode for a probe, restoring it afterwards.

    In ``train`` mode BatchNorm normalises with batch statistics but its running
    statistics are frozen (``track_running_stats`` off), so the probed loss is a pure
    function of the parameters and probing never changes the model.
    """
    if mode not in ("eval", "train"):
        raise SharpscopeError(f"mode must be 'eval' or 'train', got {mode!r}")
    modes = {m: m.training for m in model.modules()}
    tracking = {m: m.track_running_stats for m in model.modules() if isinstance(m, _BN_TYPES)}
    try:
        model.train(mode == "train")
        if mode == "train":
            for m in tracking:
                m.track_running_stats = False
        yield model
    finally:
        for m, t in modes.items():
            m.training = t
        for m, t in tracking.items():
            m.track_running_stats = t


def params_dict(
    model: nn.Module, names: Sequence[str] | None = None, *, detach: bool = True
) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of the named parameters (detached by default)."""
    own = dict(model.named_parameters())
    keys = list(own) if names is None else list(names)
    return {n: (own[n].detach() if detach else own[n]) for n in keys}


def functional_loss(
    model: nn.Module,
    loss_fn: Any,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """``loss_fn(model(x; params), y)`` through :func:`torch.func.functional_call`.

    ``params`` may hold a subset of the parameters; the rest (and the buffers)
    are taken from the model. Call it inside :func:`probe_mode`.
    """
    return loss_fn(functional_call(model, params, (x,), strict=False), y)


def flatten_dict(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate the tensors of a dict (in its order) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten_vector(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector into a dict shaped like ``like`` (inverse of :func:`flatten_dict`)."""
    out, offset = {}, 0
    for n, t in like.items():
        k = t.numel()
        out[n] = vec[offset : offset + k].view_as(t)
        offset += k
    if offset != vec.numel():
        raise SharpscopeError(f"vector has {vec.numel()} entries but the parameters have {offset}")
    return out


def forward_output_bytes(model: nn.Module, run: Callable[[], Any]) -> int:
    """Bytes of every tensor the leaf modules of ``model`` output while ``run()`` runs (forward
    hooks): an upper bound of the activations one forward holds at once."""
    total = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return int(total[0])

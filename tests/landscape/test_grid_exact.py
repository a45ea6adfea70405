"""Every grid point against a plain per-point loop written here, in every mode and method.

The loop copies the model, sets weights = centre + a d1 (+ b d2), (re-estimates BatchNorm
running statistics for recompute-bn) and evaluates the sample-weighted mean loss. The
caller's model must come back exactly as it was.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope import get_loss
from sharpscope.landscape import evaluate_grid, random_directions

from .conftest import make_model

CE = get_loss("cross_entropy")
MODELS = [
    ("mlp", "mlp", {"hidden": [16]}),
    ("cnn-bn", "cnn", {"channels": [4, 6], "batchnorm": True}),
]
# (mode, method, recompute_bn)
SETTINGS = [
    ("eval", "loop", False),
    ("eval", "vmap", False),
    ("eval", "auto", False),
    ("train", "loop", False),
    ("train", "vmap", False),
    ("train", "auto", False),
    ("eval", "loop", True),
    ("eval", "auto", True),
]


def _reference(model, batches, dirs, axes, mode, recompute_bn, center=None):
    """The plain loop: one fresh copy of the model per point."""
    shape = tuple(len(a) for a in axes)
    out = np.full(shape, np.nan)
    for idx in np.ndindex(*shape):
        m = copy.deepcopy(model)
        with torch.no_grad():
            state = dict(m.named_parameters())
            state.update({n: b for n, b in m.named_buffers() if b.is_floating_point()})
            for n, t in (center or {}).items():
                state[n].copy_(t)
            for k, i in enumerate(idx):
                for n, d in dirs[k].items():
                    state[n].add_(float(axes[k][i]) * d)
            if recompute_bn:
                m.train()
                for mod in m.modules():
                    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                        mod.reset_running_stats()
                        mod.momentum = None
                for x, _ in batches:
                    m(x)
            if mode == "train":
                m.train()
                for mod in m.modules():
                    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                        mod.track_running_stats = False
            else:
                m.eval()
            total = n = 0.0
            for x, y in batches:
                total += float(CE(m(x), y).double()) * len(y)
                n += len(y)
        out[idx] = total / n
    return out


def _snapshot(model):
    return (
        {n: p.detach().clone() for n, p in model.named_parameters()},
        {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        {n: b.detach().clone() for n, b in model.named_buffers()},
        {n: m.training for n, m in model.named_modules()},
    )


def _assert_same(before, model):
    params, grads, buffers, modes = before
    now = _snapshot(model)
    for n in params:
        assert torch.equal(params[n], now[0][n]), n
        assert (grads[n] is None) == (now[1][n] is None), n
        if grads[n] is not None:
            assert torch.equal(grads[n], now[1][n]), n
    for n in buffers:
        assert torch.equal(buffers[n], now[2][n]), n
    assert modes == now[3]


@pytest.mark.parametrize("setting", SETTINGS, ids=["-".join(map(str, s)) for s in SETTINGS])
@pytest.mark.parametrize("case", MODELS, ids=[c[0] for c in MODELS])
@pytest.mark.parametrize("dims", [1, 2])
def test_every_point_equals_a_plain_loop(case, setting, dims, batches):
    _, name, kw = case
    mode, method, recompute = setting
    model = make_model(name, kw)
    model.train()  # a caller in train mode, with gradients, must get both back
    CE(model(batches[0][0]), batches[0][1]).backward()
    dirs = random_directions(model, count=dims, seed=1).resolve(model)
    axes = (
        [np.linspace(-1.0, 1.0, 7)]
        if dims == 1
        else [np.linspace(-1, 1, 5), np.linspace(-0.6, 0.9, 4)]
    )
    before = _snapshot(model)
    s = evaluate_grid(
        model,
        CE,
        batches,
        dirs,
        axes,
        mode=mode,
        method=method,
        recompute_bn=recompute,
        quiet=True,
        chunk_size=3,
    )
    _assert_same(before, model)
    ref = _reference(model, batches, dirs, axes, mode, recompute)
    assert s.done.all()
    np.testing.assert_allclose(s.loss, ref, rtol=1e-6)
    _assert_same(before, model)


@pytest.mark.parametrize("recompute", [False, True])
def test_interpolation_with_a_center_equals_a_plain_loop(recompute, batches):
    """Interpolation moves BatchNorm buffers too, from an explicit centre (checkpoint a)."""
    kw = {"channels": [4, 6], "batchnorm": True}
    a, b = make_model("cnn", kw, seed=0), make_model("cnn", kw, seed=5)
    sa = {n: p.detach().clone() for n, p in a.named_parameters()}
    sa.update({n: t.detach().clone() for n, t in a.named_buffers() if t.is_floating_point()})
    sb = {n: p.detach() for n, p in b.named_parameters()}
    sb.update({n: t.detach() for n, t in b.named_buffers() if t.is_floating_point()})
    direction = {n: sb[n] - t for n, t in sa.items()}
    axis = np.linspace(-0.5, 1.5, 7)
    before = _snapshot(a)
    s = evaluate_grid(
        a,
        CE,
        batches,
        [direction],
        [axis],
        center=sa,
        method="loop",
        recompute_bn=recompute,
        quiet=True,
        chunk_size=2,
    )
    _assert_same(before, a)
    ref = _reference(a, batches, [direction], [axis], "eval", recompute, center=sa)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-6)

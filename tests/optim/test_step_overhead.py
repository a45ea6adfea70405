"""Issue 16: the per-step overhead cuts (lazy v0/v1, one fused norm, the BatchNorm walk,
zero_grad without bookkeeping) keep every number the eager code gave."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from sharpscope.optim import SAM, XSAM
from sharpscope.optim.base import _stat_modules
from sharpscope.optim.geometry import global_dot, global_norm
from sharpscope.optim.xsam_ascent import _ascent_result


def _lists(seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    return [torch.randn(s, generator=g, dtype=dtype) for s in shapes]


def test_lazy_v0_v1_equal_the_eager_formulas_bit_for_bit():
    for dtype in (torch.float64, torch.float32):
        theta0, disp, grad = _lists(0, dtype), _lists(1, dtype), _lists(2, dtype)
        params = [t + d for t, d in zip(theta0, disp, strict=True)]
        res = _ascent_result(params, theta0, grad)
        d = torch._foreach_sub(params, theta0)  # what the eager code divided
        dn, gn = global_norm(d), global_norm(grad)
        for got, want in zip(res.v0, torch._foreach_div(d, dn.clamp_min(1e-12)), strict=True):
            assert torch.equal(got, want)
        for got, want in zip(res.v1, torch._foreach_div(grad, gn.clamp_min(1e-12)), strict=True):
            assert torch.equal(got, want)
        assert res.grad_norm == float(gn.double())
        cos = float(global_dot(d, grad) / (dn * gn))
        assert math.isclose(res.cos_psi, cos, rel_tol=1e-6 if dtype == torch.float32 else 1e-13)
        assert res.v0 is res.v0  # computed once


def test_sam_equivalent_xsam_keeps_v1_after_an_in_place_zero_grad():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    opt = XSAM(net, "sgd", rho=0.1, alpha=1.0, lr=0.1, bn_policy="all")

    def closure():
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        return loss

    closure()
    opt.step(closure)
    grad = [g.clone() for g in opt.last_ascent.grad]
    opt.zero_grad(set_to_none=False)  # zeroes .grad, which is last_ascent.grad, in place
    gn = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grad)))
    for got, g in zip(opt.last_ascent.v1, grad, strict=True):
        assert torch.equal(got, g / gn)


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.body = nn.Sequential(nn.Linear(3, 4), self.bn, nn.Sequential(nn.ReLU()))
        self.off = nn.BatchNorm1d(4, track_running_stats=False)
        self.head = nn.Linear(4, 2)
        self.register_module("empty", None)  # a submodule slot holding None

    def forward(self, x):
        return self.head(self.off(self.body(x)))


def test_bn_walk_finds_nested_and_shared_layers_and_skips_untracked_and_none():
    m = _Shared()
    found = _stat_modules(m)
    assert {id(x) for x in found} == {id(m.bn)}
    want = [x for x in m.modules() if isinstance(x, nn.BatchNorm1d) and x.track_running_stats]
    assert {id(x) for x in want} == {id(x) for x in found}


def test_clean_policy_on_the_shared_model_matches_a_manual_restore():
    torch.manual_seed(0)
    m = _Shared()
    ref = copy.deepcopy(m)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    opt = SAM(m, "sgd", rho=0.05, lr=0.1)
    F.cross_entropy(m(x), y).backward()
    stats = {k: v.clone() for k, v in m.state_dict().items() if "running" in k or "num_b" in k}

    def closure():
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    for k, v in stats.items():  # the perturbed pass left the running statistics alone
        assert torch.equal(m.state_dict()[k], v), k
    assert m.bn.track_running_stats and not m.off.track_running_stats
    F.cross_entropy(ref(x), y).backward()
    assert torch.equal(ref.bn.running_mean, m.bn.running_mean)

"""The dense float64 Hessian reference against plain double-backward autograd, and the model guards."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from sharpscope._func import preserved, probe_mode, select_parameters
from sharpscope.errors import SharpscopeError
from sharpscope.models import build_model
from sharpscope.reference import dense_hessian, dense_loss

CE = nn.functional.cross_entropy

CASES = [
    ("mlp", "mlp", (4,), {"hidden": [5]}),
    ("mlp-bn", "mlp", (4,), {"hidden": [5], "batchnorm": True}),
    ("cnn", "cnn", (1, 4, 4), {"channels": [2]}),
    ("cnn-bn", "cnn", (1, 4, 4), {"channels": [2], "batchnorm": True}),
]


def _problem(name: str, shape: tuple[int, ...], kwargs: dict, n: int = 12):
    torch.manual_seed(0)
    net = build_model(name, input_shape=shape, num_classes=3, **kwargs).double()
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and running statistics
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(n, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return net, x, y


def _flat_loss(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], names: list[str]):
    """The sample-weighted mean loss as a function of the flat vector of ``names`` (independent of sharpscope)."""
    params = dict(net.named_parameters())
    shapes = [params[n].shape for n in names]
    theta = torch.cat([params[n].detach().reshape(-1) for n in names])
    total = sum(len(y) for _, y in batches)

    def f(vec: torch.Tensor) -> torch.Tensor:
        split, offset = {}, 0
        for n, s in zip(names, shapes, strict=True):
            split[n] = vec[offset : offset + s.numel()].view(s)
            offset += s.numel()
        return sum(
            CE(functional_call(net, split, (x,), strict=False), y) * len(y) / total
            for x, y in batches
        )

    return f, theta


def _autograd_hessian(net, batches, mode, names=None):
    names = names or [n for n, _ in net.named_parameters()]
    f, theta = _flat_loss(net, batches, names)
    with probe_mode(net, mode):
        return torch.autograd.functional.hessian(f, theta)


def _snapshot(net: nn.Module):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()},
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )


def _assert_same(net: nn.Module, snap) -> None:
    state, grads, modes, req = snap
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    for n, p in net.named_parameters():
        assert (p.grad is None and grads[n] is None) or torch.equal(p.grad, grads[n]), n
        assert p.requires_grad == req[n]
    assert {n: m.training for n, m in net.named_modules()} == modes
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.track_running_stats


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize(
    ("name", "shape", "kwargs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_dense_hessian_equals_autograd(name, shape, kwargs, mode):
    net, x, y = _problem(name, shape, kwargs)
    net.train(mode == "eval")  # the caller's mode must not matter, nor survive
    net.zero_grad()
    CE(net(x[:3]), y[:3]).backward()  # a stale .grad to preserve
    snap = _snapshot(net)
    H = dense_hessian(net, CE, (x, y), mode=mode)
    expected = _autograd_hessian(net, [(x, y)], mode)
    assert H.dtype == torch.float64 and H.shape == expected.shape
    torch.testing.assert_close(H, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-12)
    assert H.abs().max() > 1e-3  # not trivially zero
    _assert_same(net, snap)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_dense_hessian_over_batches_is_the_sample_weighted_mean(mode):
    net, x, y = _problem("mlp", (4,), {"hidden": [5], "batchnorm": True})
    batches = [(x[:7], y[:7]), (x[7:], y[7:])]
    H = dense_hessian(net, CE, batches, mode=mode)
    torch.testing.assert_close(H, _autograd_hessian(net, batches, mode), rtol=0, atol=1e-10)
    if mode == "eval":  # without batch statistics the batching cannot matter
        torch.testing.assert_close(H, dense_hessian(net, CE, (x, y), mode=mode), rtol=0, atol=1e-12)
    loss = dense_loss(net, CE, batches, mode=mode)
    f, theta = _flat_loss(net, batches, [n for n, _ in net.named_parameters()])
    with probe_mode(net, mode), torch.no_grad():
        assert loss == pytest.approx(float(f(theta)), abs=1e-12)


def test_dense_hessian_of_a_parameter_subset_is_the_matching_block():
    net, x, y = _problem("mlp", (4,), {"hidden": [5]})
    full = dense_hessian(net, CE, (x, y))
    names = [n for n, _ in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    start = sum(sizes[:2])  # net.3.weight, net.3.bias: the head
    block = dense_hessian(net, CE, (x, y), params="net\\.3")
    assert select_parameters(net, "net\\.3") == names[2:]
    torch.testing.assert_close(block, full[start:, start:], rtol=0, atol=1e-12)
    by_list = dense_hessian(net, CE, [(x, y)], params=["net.3.bias"])
    torch.testing.assert_close(by_list, full[-3:, -3:], rtol=0, atol=1e-12)


def test_torch_func_hessian_is_wrong_through_train_mode_batchnorm_torch_bug():
    """Documents a torch bug: ``torch.func.hessian`` (jacfwd of jacrev) through train-mode BatchNorm.

    If this test fails, torch has fixed it and the workaround note in
    ``sharpscope.reference`` can go.
    """
    net, x, y = _problem("mlp", (4,), {"hidden": [5], "batchnorm": True})
    names = [n for n, _ in net.named_parameters()]
    f, theta = _flat_loss(net, [(x, y)], names)
    with probe_mode(net, "train"):
        exact = torch.autograd.functional.hessian(f, theta)
        buggy = torch.func.hessian(f)(theta)
    assert (buggy - exact).abs().max() > 1e-2
    assert (buggy - buggy.T).abs().max() > 1e-2  # not even symmetric
    with probe_mode(net, "eval"):  # fine without batch statistics
        torch.testing.assert_close(
            torch.func.hessian(f)(theta),
            torch.autograd.functional.hessian(f, theta),
            rtol=0,
            atol=1e-10,
        )


def test_dense_hessian_refuses_empty_data():
    net, _, _ = _problem("mlp", (4,), {"hidden": [5]})
    with pytest.raises(ValueError, match="empty"):
        dense_hessian(net, CE, [])


# --------------------------------------------------------------------------- guards


def _scramble(net: nn.Module) -> None:
    net.eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
            p.grad = torch.ones_like(p)
            p.requires_grad_(False)
        for b in net.buffers():
            b.add_(1) if b.dtype != torch.int64 else b.add_(5)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False


def test_preserved_restores_everything_even_when_the_body_raises():
    net, x, y = _problem("cnn", (1, 4, 4), {"channels": [2], "batchnorm": True})
    net.train()
    CE(net(x), y).backward()
    next(net.parameters()).requires_grad_(False)
    snap = _snapshot(net)
    with pytest.raises(RuntimeError, match="probe failed"), preserved(net):
        _scramble(net)
        raise RuntimeError("probe failed")
    _assert_same(net, snap)
    with preserved(net):
        net(x)  # a train-mode forward updates the running statistics...
    _assert_same(net, snap)  # ...which are restored


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_probe_mode_sets_and_restores_modes(mode):
    net, x, _ = _problem("mlp", (4,), {"hidden": [5], "batchnorm": True})
    net.train()
    net.net[1].eval()  # a mixed state must come back as it was
    modes = {n: m.training for n, m in net.named_modules()}
    bn = net.net[2]
    with pytest.raises(KeyError), probe_mode(net, mode):
        assert all(m.training == (mode == "train") for m in net.modules())
        assert bn.track_running_stats == (mode == "eval")
        before = bn.running_mean.clone()
        net(x)
        assert torch.equal(bn.running_mean, before)  # frozen in both modes
        raise KeyError("x")
    assert {n: m.training for n, m in net.named_modules()} == modes and bn.track_running_stats


def test_probe_mode_rejects_unknown_modes():
    with (
        pytest.raises(SharpscopeError, match="mode must be 'eval' or 'train', got 'test'"),
        probe_mode(nn.Linear(1, 1), "test"),
    ):
        pass


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"]),
        ("all", ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"]),
        ("", ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"]),
        ("bias", ["net.1.bias", "net.3.bias"]),
        (r"net\.3", ["net.3.weight", "net.3.bias"]),
        ("^net.1.weight$|net.3.bias", ["net.1.weight", "net.3.bias"]),
    ],
    ids=["none", "all", "empty", "bias", "escaped", "alternation"],
)
def test_select_parameters(pattern, expected):
    net = build_model("mlp", input_shape=(4,), num_classes=3, hidden=[5])
    assert select_parameters(net, pattern) == expected


def test_select_parameters_skips_frozen_unless_asked():
    net = build_model("mlp", input_shape=(4,), num_classes=3, hidden=[5])
    net.net[1].weight.requires_grad_(False)
    assert select_parameters(net) == ["net.1.bias", "net.3.weight", "net.3.bias"]
    assert len(select_parameters(net, trainable_only=False)) == 4


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("conv", "parameter pattern 'conv' matches no parameter; names look like net.1.weight"),
        ("net.(1", "invalid parameter pattern 'net.(1'"),
    ],
    ids=["no-match", "invalid-regex"],
)
def test_select_parameters_errors(pattern, message):
    net = build_model("mlp", input_shape=(4,), num_classes=3, hidden=[5])
    with pytest.raises(SharpscopeError) as info:
        select_parameters(net, pattern)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_dense_hessian_with_torch_mse_loss_matches_closed_form() -> None:
    # torch's F.mse_loss has no forward-over-reverse derivative ("ZeroTensors are
    # immutable"); the reference falls back to double backward and stays exact.
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1, bias=False).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    y = torch.randn(7, 1, dtype=torch.float64)
    H = dense_hessian(net, torch.nn.functional.mse_loss, (x, y))
    torch.testing.assert_close(H, 2.0 * x.T @ x / 7, rtol=1e-12, atol=1e-12)

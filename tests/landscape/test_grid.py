"""The grid engine: exact values, vmap == loop, resume, non-finite points, no side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope import get_loss
from sharpscope._func import probe_mode
from sharpscope.errors import SharpscopeError
from sharpscope.landscape import Surface, evaluate_grid, evaluate_point, random_directions

from .conftest import MODEL_CASES, make_model

CE = get_loss("cross_entropy")


def _full_loss(model, batches, mode="eval"):
    """Sample-weighted mean over the batches (in train mode BatchNorm uses each batch's statistics)."""
    total = hits = n = 0.0
    with probe_mode(model, mode), torch.no_grad():
        for x, y in batches:
            out = model(x)
            total += float(CE(out, y)) * len(y)
            hits += float((out.argmax(-1) == y).sum())
            n += len(y)
    return total / n, hits / n


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("case", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_center_is_the_model_loss_and_vmap_equals_loop(case, mode, batches):
    _, name, kw = case
    model = make_model(name, kw)
    dirs = random_directions(model, count=2, seed=0).resolve(model)
    axes = [np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 3)]
    loop = evaluate_grid(model, CE, batches, dirs, axes, mode=mode, method="loop", quiet=True)
    vm = evaluate_grid(
        model, CE, batches, dirs, axes, mode=mode, method="vmap", quiet=True, chunk_size=4
    )
    assert vm.meta["method"] == "vmap", vm.meta.get("vmap_fallback")
    loss, acc = _full_loss(model, batches, mode)
    assert loop.value_at_center("loss") == pytest.approx(loss, rel=1e-5)
    assert loop.value_at_center("accuracy") == pytest.approx(acc, abs=1e-12)
    np.testing.assert_allclose(vm.loss, loop.loss, rtol=1e-5)
    np.testing.assert_allclose(vm.accuracy, loop.accuracy, atol=1e-12)
    assert loop.done.all() and np.isfinite(loop.loss).all()


def test_off_center_points_equal_a_model_with_moved_weights(batches):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True})
    dirs = random_directions(model, count=2, seed=2).resolve(model)
    axes = [np.array([-0.5, 0.25]), np.array([0.75])]
    s = evaluate_grid(model, CE, batches, dirs, axes, method="vmap", quiet=True)
    moved = make_model("cnn", {"channels": [4, 6], "batchnorm": True})
    with torch.no_grad():
        for n, p in moved.named_parameters():
            p.add_(0.25 * dirs[0][n] + 0.75 * dirs[1][n])
    assert s.loss[1, 0] == pytest.approx(_full_loss(moved, batches)[0], rel=1e-5)


def test_quadratic_closed_form_in_float64():
    """A linear model with MSE: the loss along a direction is an exact parabola."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    mse = get_loss("mse")
    d = {
        "weight": torch.randn(2, 3, dtype=torch.float64),
        "bias": torch.randn(2, dtype=torch.float64),
    }
    a = np.linspace(-2, 2, 9)
    s = evaluate_grid(
        model, mse, [(x[:7], y[:7]), (x[7:], y[7:])], [d], [a], method="vmap", quiet=True
    )
    w, b = model.weight.detach(), model.bias.detach()
    r0 = x @ w.T + b - y
    r1 = x @ d["weight"].T + d["bias"]
    expected = [float(0.5 * ((r0 + t * r1) ** 2).sum(1).mean()) for t in a]
    np.testing.assert_allclose(s.loss, expected, rtol=1e-12)
    assert np.isnan(s.accuracy).all()  # regression targets: no accuracy


def test_caller_model_is_left_unchanged(batches):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True})
    model.train()
    out = model(batches[0][0]).sum()
    out.backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    dirs = random_directions(model, count=2).resolve(model)
    for method, recompute in (("loop", True), ("vmap", False)):
        evaluate_grid(
            model,
            CE,
            batches,
            dirs,
            [np.linspace(-1, 1, 3)] * 2,
            method=method,
            quiet=True,
            recompute_bn=recompute,
        )
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n])
    bn = model.features[1]
    assert bn.momentum == 0.1 and bn.track_running_stats


def test_recompute_bn_reestimates_running_statistics(batches):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True})
    d = random_directions(model, count=1).resolve(model)
    s = evaluate_grid(
        model, CE, batches, d, [np.array([0.0])], method="loop", recompute_bn=True, quiet=True
    )
    ref = make_model("cnn", {"channels": [4, 6], "batchnorm": True})
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    ref.train()
    with torch.no_grad():
        for xb, _ in batches:
            ref(xb)
    assert s.loss[0] == pytest.approx(_full_loss(ref, batches)[0], rel=1e-5)
    assert s.loss[0] != pytest.approx(_full_loss(model, batches)[0], rel=1e-3)
    with pytest.raises(SharpscopeError, match="recompute_bn needs method='loop'"):
        evaluate_grid(
            model, CE, batches, d, [np.array([0.0])], method="vmap", recompute_bn=True, quiet=True
        )


class _Stop(Exception):
    pass


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_interrupted_run_resumes_to_the_same_surface(tmp_path, batches, method):
    model = make_model("mlp", {"hidden": [16]})
    dirs = random_directions(model, count=2, seed=5).resolve(model)
    axes = [np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)]
    full = evaluate_grid(model, CE, batches, dirs, axes, method=method, quiet=True)

    def stop(_surface):
        raise _Stop

    with pytest.raises(_Stop):
        evaluate_grid(
            model,
            CE,
            batches,
            dirs,
            axes,
            method=method,
            quiet=True,
            out_dir=tmp_path / "s",
            chunk_size=5,
            on_chunk=stop,
        )
    partial = Surface.load(tmp_path / "s")
    assert partial.done.sum() == 5 and not partial.complete
    assert np.isnan(partial.loss[~partial.done]).all()
    seen = []
    resumed = evaluate_grid(
        model,
        CE,
        batches,
        dirs,
        axes,
        method=method,
        quiet=True,
        out_dir=tmp_path / "s",
        chunk_size=5,
        on_chunk=lambda s: seen.append(int(s.done.sum())),
    )
    assert seen == [10, 12]  # only the 7 missing points were computed
    np.testing.assert_allclose(resumed.loss, full.loss, rtol=1e-6)
    np.testing.assert_allclose(Surface.load(tmp_path / "s").loss, full.loss, rtol=1e-6)
    assert Surface.load(tmp_path / "s").meta["complete"]


def test_other_settings_in_the_output_folder_are_refused_unless_forced(tmp_path, batches):
    model = make_model("mlp", {"hidden": [16]})
    dirs = random_directions(model, count=1).resolve(model)
    evaluate_grid(model, CE, batches, dirs, [np.linspace(-1, 1, 3)], quiet=True, out_dir=tmp_path)
    other = random_directions(model, count=1, seed=9).resolve(model)
    with pytest.raises(SharpscopeError, match=r"other settings \(directions differ\)"):
        evaluate_grid(
            model, CE, batches, other, [np.linspace(-1, 1, 3)], quiet=True, out_dir=tmp_path
        )
    s = evaluate_grid(
        model, CE, batches, other, [np.linspace(-1, 1, 3)], quiet=True, out_dir=tmp_path, force=True
    )
    assert s.complete


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_non_finite_points_are_stored_not_raised(batches, method):
    model = make_model("mlp", {"hidden": [16]})
    d = random_directions(model, count=1).resolve(model)[0]
    d = {n: t.clone() for n, t in d.items()}
    d["net.3.weight"].fill_(1e38)  # overflows to inf/NaN logits away from the centre
    s = evaluate_grid(
        model, CE, batches, [d], [np.array([-1.0, 0.0, 1.0])], method=method, quiet=True
    )
    assert s.done.all()
    assert not np.isfinite(s.loss[0]) and not np.isfinite(s.loss[2]) and np.isfinite(s.loss[1])
    assert np.isnan(s.accuracy[[0, 2]]).all()
    assert s.summary()["nonfinite_points"] == 2


class _NotVmappable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        out = self.fc(x.flatten(1))
        if out.abs().max().item() > 1e6:  # data-dependent control flow: vmap refuses .item()
            return out * 0
        return out


def test_vmap_falls_back_to_the_loop(batches):
    model = _NotVmappable()
    d = random_directions(model, count=1).resolve(model)
    axes = [np.linspace(-1, 1, 3)]
    s = evaluate_grid(model, CE, batches, d, axes, method="vmap", quiet=True)
    ref = evaluate_grid(model, CE, batches, d, axes, method="loop", quiet=True)
    assert s.meta["method"] == "loop" and s.meta["vmap_fallback"]
    np.testing.assert_allclose(s.loss, ref.loss, rtol=1e-6)


def test_auto_picks_the_loop_on_cpu(batches):
    model = make_model("mlp", {"hidden": [16]})
    d = random_directions(model, count=1).resolve(model)
    assert evaluate_grid(model, CE, batches, d, [np.zeros(1)], quiet=True).meta["method"] == "loop"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axes": [np.zeros(2)] * 3}, "1 or 2 axes"),
        ({"axes": [np.array([])]}, "at least one finite coordinate"),
        ({"method": "magic"}, "unknown method 'magic'"),
        ({"mode": "test"}, "mode must be"),
        ({"directions": [{"nope": torch.zeros(1)}]}, "names 'nope'"),
        ({"directions": [{"net.1.weight": torch.zeros(2, 2)}]}, r"has shape \[2, 2\]"),
    ],
    ids=["three-axes", "empty-axis", "method", "mode", "unknown-name", "bad-shape"],
)
def test_argument_errors(batches, kwargs, message):
    model = make_model("mlp", {"hidden": [16]})
    args = {"directions": random_directions(model, count=1).resolve(model), "axes": [np.zeros(1)]}
    args.update(kwargs)
    if len(args["axes"]) != len(args["directions"]) and "axes" in kwargs and len(args["axes"]) == 3:
        args["directions"] = args["directions"] * 3
    with pytest.raises(SharpscopeError, match=message):
        evaluate_grid(model, CE, batches, quiet=True, **args)
    with pytest.raises(SharpscopeError, match="batch iterable is empty"):
        evaluate_grid(model, CE, [], args["directions"][:1], [np.zeros(1)], quiet=True)


def test_evaluate_point_matches_full_batch(batches):
    model = make_model("cnn", {"channels": [4, 6]})
    model.eval()
    assert evaluate_point(model, CE, batches) == pytest.approx(_full_loss(model, batches), rel=1e-6)

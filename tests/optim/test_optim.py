"""SAM, ASAM and XSAM against hand-derived updates on quadratics, and against each other."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sharpscope.errors import NonFiniteLossError, SharpscopeError
from sharpscope.models import build_model
from sharpscope.optim import ASAM, SAM, XSAM, alpha_grid, alpha_search, xsam_ascent
from sharpscope.optim.factory import make_optimizer, optimizer_hparams


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is faster and immune to oversubscription on a busy CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- quadratic problem
# L(w) = 1/2 w^T A w - b^T w with A symmetric positive definite; grad = A w - b.
RNG = np.random.default_rng(0)
_M = RNG.normal(size=(5, 5))
A = _M @ _M.T + 0.5 * np.eye(5)
B = RNG.normal(size=5)
W0 = RNG.normal(size=5)


def grad_np(w: np.ndarray) -> np.ndarray:
    return A @ w - B


class Quadratic(nn.Module):
    """w split into a 2x2 'weight' matrix and a 1-d 'bias' (so ASAM scales only the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(W0[:4].reshape(2, 2), dtype=torch.float64))
        self.bias = nn.Parameter(torch.tensor(W0[4:], dtype=torch.float64))
        self.register_buffer("A", torch.tensor(A))
        self.register_buffer("b", torch.tensor(B))

    def vector(self) -> torch.Tensor:
        return torch.cat([self.weight.flatten(), self.bias])

    def loss(self) -> torch.Tensor:
        w = self.vector()
        return 0.5 * w @ self.A @ w - self.b @ w


def quad_closure(q: Quadratic):
    def closure() -> torch.Tensor:
        loss = q.loss()
        loss.backward()
        return loss

    return closure


def run_quadratic(opt_factory, n_steps: int) -> np.ndarray:
    q = Quadratic()
    opt = opt_factory(q)
    for _ in range(n_steps):
        opt.zero_grad()
        q.loss().backward()
        opt.step(quad_closure(q))
    return q.vector().detach().numpy()


def sgd_momentum(lr: float, momentum: float):
    buf = None

    def update(w: np.ndarray, g: np.ndarray) -> np.ndarray:
        nonlocal buf
        buf = g.copy() if buf is None else momentum * buf + g
        return w - lr * buf

    return update


SAM_CASES = [
    pytest.param(0.05, 0.1, 0.0, id="rho0.05-plain-sgd"),
    pytest.param(0.3, 0.05, 0.9, id="rho0.3-momentum"),
]


@pytest.mark.parametrize(("rho", "lr", "momentum"), SAM_CASES)
def test_sam_matches_hand_derived_update_on_quadratic(rho, lr, momentum):
    got = run_quadratic(lambda q: SAM(q, "sgd", rho=rho, lr=lr, momentum=momentum), 3)
    w, step = W0.copy(), sgd_momentum(lr, momentum)
    for _ in range(3):
        g = grad_np(w)
        e = rho * g / (np.linalg.norm(g) + 1e-12)
        w = step(w, grad_np(w + e))
    np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-13)


ASAM_CASES = [
    pytest.param("weights", 0.5, 0.01, id="weights-only"),
    pytest.param("all", 0.2, 0.0, id="all-eta0"),
    pytest.param("weights", 0.1, 0.5, id="large-eta"),
]


@pytest.mark.parametrize(("scaled", "rho", "eta"), ASAM_CASES)
def test_asam_matches_hand_derived_update_on_quadratic(scaled, rho, eta):
    lr, momentum = 0.05, 0.9
    got = run_quadratic(
        lambda q: ASAM(q, "sgd", rho=rho, eta=eta, scaled=scaled, lr=lr, momentum=momentum), 3
    )
    w, step = W0.copy(), sgd_momentum(lr, momentum)
    mask = np.array([1, 1, 1, 1, 1 if scaled == "all" else 0], dtype=bool)
    for _ in range(3):
        g = grad_np(w)
        t = np.where(mask, np.abs(w) + eta, 1.0)
        e = rho * t * t * g / (np.linalg.norm(t * g) + 1e-12)
        w = step(w, grad_np(w + e))
    np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-13)


def slerp_np(v0, v1, alpha):
    psi = math.acos(float(np.clip(v0 @ v1, -1, 1)))
    return (math.sin((1 - alpha) * psi) * v0 + math.sin(alpha * psi) * v1) / math.sin(psi)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.7], ids=lambda a: f"alpha{a}")
@pytest.mark.parametrize("k", [1, 3], ids=lambda k: f"k{k}")
def test_xsam_fixed_alpha_update_on_quadratic(alpha, k):
    rho, lr = 0.4, 0.1
    got = run_quadratic(
        lambda q: XSAM(q, "sgd", rho=rho, steps=k, alpha=alpha, lr=lr, momentum=0.0), 2
    )
    w = W0.copy()
    for _ in range(2):
        theta = w.copy()
        for _ in range(k):
            g = grad_np(theta)
            theta = theta + (rho / k) * g / (np.linalg.norm(g) + 1e-12)
        gk = grad_np(theta)
        v0 = (theta - w) / np.linalg.norm(theta - w)
        v1 = gk / np.linalg.norm(gk)
        w = w - lr * np.linalg.norm(gk) * slerp_np(v0, v1, alpha)
    np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_xsam_alpha0_moves_along_v0():
    q = Quadratic()
    opt = XSAM(q, "sgd", rho=0.3, alpha=0.0, lr=0.1, momentum=0.0)
    w_before = q.vector().detach().clone()
    q.loss().backward()
    opt.step(quad_closure(q))
    move = (q.vector().detach() - w_before).numpy()
    g0 = grad_np(W0)
    v0 = g0 / np.linalg.norm(g0)  # k = 1: theta_1 - theta_0 is along g(theta_0)
    gk = grad_np(W0 + 0.3 * v0)
    np.testing.assert_allclose(move, -0.1 * np.linalg.norm(gk) * v0, rtol=1e-10)


# ----------------------------------------------------------------------------- xsam_ascent
@pytest.mark.parametrize("steps", [1, 2, 4], ids=lambda s: f"k{s}")
@pytest.mark.parametrize("given_first", [False, True], ids=["grad_fn-first", "first_grad"])
def test_xsam_ascent_lands_at_expected_point(steps, given_first):
    q = Quadratic()
    params = [q.weight, q.bias]
    calls = []

    def grad_fn():
        calls.append(1)
        q.zero_grad()
        q.loss().backward()
        return [q.weight.grad, q.bias.grad]

    first = None
    if given_first:
        q.loss().backward()
        first = [q.weight.grad.clone(), q.bias.grad.clone()]
    res = xsam_ascent(params, grad_fn, rho=0.5, steps=steps, first_grad=first, record_path=True)
    theta, path = W0.copy(), []
    for _ in range(steps):
        g = grad_np(theta)
        theta = theta + (0.5 / steps) * g / np.linalg.norm(g)
        path.append(theta - W0)
    gk = grad_np(theta)
    np.testing.assert_allclose(q.vector().detach().numpy(), theta, rtol=1e-12)
    assert len(calls) == steps + (0 if given_first else 1)
    v0 = torch.cat([t.flatten() for t in res.v0]).numpy()
    v1 = torch.cat([t.flatten() for t in res.v1]).numpy()
    np.testing.assert_allclose(v0, (theta - W0) / np.linalg.norm(theta - W0), rtol=1e-10)
    np.testing.assert_allclose(v1, gk / np.linalg.norm(gk), rtol=1e-10)
    assert res.grad_norm == pytest.approx(np.linalg.norm(gk), rel=1e-12)
    assert res.psi == pytest.approx(math.acos(np.clip(v0 @ v1, -1, 1)), abs=1e-9)
    assert res.cos_psi == pytest.approx(math.cos(res.psi), abs=1e-12)
    assert len(res.path) == steps
    for disp, want in zip(res.path, path, strict=True):
        np.testing.assert_allclose(
            torch.cat([t.flatten() for t in disp]).numpy(), want, rtol=1e-10, atol=1e-14
        )


def test_xsam_ascent_parallel_vectors_give_zero_angle_not_nan():
    w = torch.tensor([1.0, 0.0], requires_grad=True)

    def grad_fn():
        w.grad = None
        (0.5 * (w**2).sum()).backward()
        return [w.grad]

    res = xsam_ascent([w], grad_fn, rho=0.5, steps=2)
    assert res.psi == 0.0 and res.cos_psi == 1.0
    assert w.tolist() == [1.5, 0.0]


# ----------------------------------------------------------------------------- alpha search
@pytest.mark.parametrize("target", [0.0, 0.4, 1.0, 1.3, 2.0], ids=lambda a: f"worst{a}")
def test_alpha_search_returns_the_known_worst_direction(target):
    theta0 = [torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)]
    p = theta0[0].clone()
    v0 = [torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)]
    v1 = [torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)]
    psi = math.pi / 2
    u = torch.tensor([math.cos(target * psi), math.sin(target * psi), 0.0], dtype=torch.float64)
    best, alphas, losses = alpha_search(
        [p],
        theta0,
        v0,
        v1,
        psi,
        lambda: float((p - theta0[0]) @ u),
        rho_max=0.3,
        alpha_max=2.0,
        step=0.1,
    )
    assert best == pytest.approx(target)
    assert alphas == alpha_grid(2.0, 0.1) and len(alphas) == 21 and alphas[10] == 1.0
    assert losses[alphas.index(best)] == pytest.approx(0.3)
    assert torch.equal(p, theta0[0])  # restored


def test_alpha_search_nan_never_wins_and_all_nan_raises():
    theta0 = [torch.zeros(2)]
    p = theta0[0].clone()
    v0, v1 = [torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 1.0])]
    # the loss grows with alpha up to 1 but is NaN from alpha = 0.6 on
    best, _, losses = alpha_search(
        [p],
        theta0,
        v0,
        v1,
        math.pi / 2,
        lambda: float("nan") if p[1] > p[0] + 0.2 else float(p[1]),
        rho_max=1.0,
    )
    assert best == pytest.approx(0.5) and math.isnan(losses[6]) and not math.isnan(losses[5])
    with pytest.raises(NonFiniteLossError, match="not finite at any alpha"):
        alpha_search([p], theta0, v0, v1, math.pi / 2, lambda: float("nan"), rho_max=1.0)
    assert torch.equal(p, theta0[0])


# ----------------------------------------------------------------------------- XSAM == SAM, APIs
def _batch(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _net(name="mlp", **kw):
    torch.manual_seed(0)
    return build_model(name, input_shape=(1, 8, 8), num_classes=10, **kw)


def _train_closure_api(model, opt, n_steps=4, **step_kw):
    x, y = _batch()
    for i in range(n_steps):
        xb, yb = x[i % 4 * 8 : (i % 4 + 1) * 8 + 8], y[i % 4 * 8 : (i % 4 + 1) * 8 + 8]
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()

        def closure(xb=xb, yb=yb):
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            return loss

        if isinstance(opt, XSAM) and step_kw.get("with_loss_fn"):
            opt.step(closure, loss_fn=lambda xb=xb, yb=yb: F.cross_entropy(model(xb), yb))
        else:
            opt.step(closure)
    return model


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


EQUIV_NETS = [
    pytest.param("mlp", {"batchnorm": True}, "sgd", {"momentum": 0.9}, id="mlp-bn-sgd-momentum"),
    pytest.param(
        "cnn",
        {},
        "sgd",
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        id="cnn-nesterov",
    ),
    pytest.param("mlp", {}, "adamw", {"weight_decay": 1e-2}, id="mlp-adamw"),
]


@pytest.mark.parametrize(("name", "mkw", "base", "bkw"), EQUIV_NETS)
def test_xsam_alpha1_k1_is_sam_bit_for_bit(name, mkw, base, bkw):
    net = _net(name, **mkw)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    _train_closure_api(a, SAM(a, base, rho=0.1, lr=0.05, **bkw), n_steps=5)
    _train_closure_api(b, XSAM(b, base, rho=0.1, alpha=1.0, steps=1, lr=0.05, **bkw), n_steps=5)
    assert _same_state(a, b)
    assert not _same_state(a, net)


def _two_pass(model, opt, n_steps=4, kind="sam"):
    x, y = _batch()
    for i in range(n_steps):
        xb, yb = x[i % 4 * 8 : (i % 4 + 1) * 8 + 8], y[i % 4 * 8 : (i % 4 + 1) * 8 + 8]

        def closure(xb=xb, yb=yb):
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            return loss

        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        if kind == "xsam":
            opt.first_step(zero_grad=True, closure=closure)
        else:
            opt.first_step(zero_grad=True)
        F.cross_entropy(model(xb), yb).backward()
        if kind == "xsam":
            opt.second_step(
                zero_grad=True, loss_fn=lambda xb=xb, yb=yb: F.cross_entropy(model(xb), yb)
            )
        else:
            opt.second_step(zero_grad=True)
    return model


API_CASES = [
    pytest.param(SAM, {"rho": 0.1}, "sam", id="sam"),
    pytest.param(ASAM, {"rho": 0.5, "eta": 0.01}, "sam", id="asam"),
    pytest.param(XSAM, {"rho": 0.1, "alpha": 0.6}, "xsam", id="xsam-fixed"),
    pytest.param(XSAM, {"rho": 0.1, "steps": 3, "alpha": 1.4}, "xsam", id="xsam-k3"),
    pytest.param(XSAM, {"rho": 0.1, "search_every": 2}, "xsam", id="xsam-dynamic"),
]


@pytest.mark.parametrize(("cls", "kw", "kind"), API_CASES)
def test_closure_api_equals_two_pass_api(cls, kw, kind):
    net = _net("mlp", batchnorm=True)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    opt_a = cls(a, "sgd", lr=0.05, momentum=0.9, **kw)
    opt_b = cls(b, "sgd", lr=0.05, momentum=0.9, **kw)
    _train_closure_api(a, opt_a, with_loss_fn=True)
    _two_pass(b, opt_b, kind=kind)
    assert _same_state(a, b)
    if kind == "xsam" and opt_a.dynamic:
        assert opt_a.alpha_history == opt_b.alpha_history and len(opt_a.alpha_history) == 2


def test_dynamic_alpha_history_and_schedule():
    net = _net("mlp")
    opt = XSAM(net, "sgd", rho=0.1, lr=0.05)
    _train_closure_api(net, opt, n_steps=3, with_loss_fn=True)
    assert [h["step"] for h in opt.alpha_history] == [0]  # searched once until new_epoch()
    opt.new_epoch()
    _train_closure_api(net, opt, n_steps=2, with_loss_fn=True)
    assert [h["step"] for h in opt.alpha_history] == [0, 3]
    for h in opt.alpha_history:
        assert set(h) == {"step", "alpha", "alphas", "losses"} and len(h["losses"]) == 21
        assert h["alpha"] == h["alphas"][int(np.nanargmax(np.array(h["losses"], dtype=float)))]
    assert opt.alpha == opt.alpha_history[-1]["alpha"]
    # without loss_fn the closure is used for the search: same choice of alpha
    a, b = _net("mlp"), _net("mlp")
    oa, ob = XSAM(a, "sgd", rho=0.1, lr=0.05), XSAM(b, "sgd", rho=0.1, lr=0.05)
    _train_closure_api(a, oa, n_steps=1, with_loss_fn=True)
    _train_closure_api(b, ob, n_steps=1, with_loss_fn=False)
    assert oa.alpha_history[0]["losses"] == pytest.approx(ob.alpha_history[0]["losses"], rel=1e-5)
    assert _same_state(a, b)


def test_second_step_without_loss_fn_when_search_due_is_an_error():
    net = _net("mlp")
    opt = XSAM(net, "sgd", rho=0.1, lr=0.05)
    x, y = _batch()
    F.cross_entropy(net(x), y).backward()
    opt.first_step(zero_grad=True)
    F.cross_entropy(net(x), y).backward()
    with pytest.raises(SharpscopeError, match="alpha search is due"):
        opt.second_step()


# ----------------------------------------------------------------------------- BatchNorm policy
def _bn_buffers(model):
    return {
        k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k
    }


BN_CASES = [
    pytest.param(SAM, {"rho": 0.1}, 2, id="sam"),
    pytest.param(ASAM, {"rho": 0.5}, 2, id="asam"),
    pytest.param(XSAM, {"rho": 0.1, "steps": 2, "alpha": 0.5}, 3, id="xsam-k2"),
    pytest.param(XSAM, {"rho": 0.1}, 2 + 21, id="xsam-dynamic-search"),
]


@pytest.mark.parametrize(("cls", "kw", "passes"), BN_CASES)
@pytest.mark.parametrize("policy", ["clean", "all"])
def test_bn_running_stats_follow_policy(cls, kw, passes, policy):
    net = _net("cnn", batchnorm=True)
    ref = copy.deepcopy(net)
    x, y = _batch()
    ref(x)  # one clean forward pass in train mode
    opt = cls(net, "sgd", lr=0.05, bn_policy=policy, **kw)
    F.cross_entropy(net(x), y).backward()

    def closure():
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        return loss

    if cls is XSAM:
        opt.step(closure, loss_fn=lambda: F.cross_entropy(net(x), y))
    else:
        opt.step(closure)
    got, want = _bn_buffers(net), _bn_buffers(ref)
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    tracked = [v for k, v in got.items() if k.endswith("num_batches_tracked")]
    if policy == "clean":
        assert all(torch.equal(got[k], want[k]) for k in want)
        assert all(int(t) == 1 for t in tracked)
    else:
        assert all(int(t) == passes for t in tracked)
        assert not all(torch.equal(got[k], want[k]) for k in want if "running_mean" in k)


# ----------------------------------------------------------------------------- state dicts, factory
def test_state_dict_round_trip_continues_identically():
    net = _net("mlp")
    a = copy.deepcopy(net)
    opt_a = XSAM(a, "sgd", rho=0.1, lr=0.05, momentum=0.9, search_every=3)
    _train_closure_api(a, opt_a, n_steps=2, with_loss_fn=True)
    b = copy.deepcopy(a)
    opt_b = XSAM(b, "sgd", rho=0.1, lr=0.05, momentum=0.9, search_every=3)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert opt_b.steps_done == 2 and opt_b.alpha == opt_a.alpha
    _train_closure_api(a, opt_a, n_steps=3, with_loss_fn=True)
    _train_closure_api(b, opt_b, n_steps=3, with_loss_fn=True)
    assert _same_state(a, b) and opt_a.alpha_history == opt_b.alpha_history


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", torch.optim.SGD), ("sam", SAM), ("asam", ASAM), ("xsam", XSAM)]
)
def test_make_optimizer_builds_each_kind(name, cls):
    opt = make_optimizer(name, nn.Linear(3, 2), lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    adam = make_optimizer(name, nn.Linear(3, 2), lr=1e-3, base="adamw")
    inner = adam if name == "sgd" else adam.base_optimizer
    assert isinstance(inner, torch.optim.AdamW)


def test_hparams_record_bn_policy_and_rho_max_default():
    hp = optimizer_hparams("xsam", lr=0.1, rho=0.15)
    assert (
        hp["bn_policy"] == "clean" and hp["rho_max"] == pytest.approx(0.3) and hp["alpha"] is None
    )
    assert "rho" not in optimizer_hparams("sgd", lr=0.1)


INVALID = [
    pytest.param(
        lambda m: SAM(m, rho=-0.1, lr=0.1), "rho must be >= 0, got -0.1", id="negative-rho"
    ),
    pytest.param(lambda m: SAM(m, rho=float("nan"), lr=0.1), "rho must be finite", id="nan-rho"),
    pytest.param(
        lambda m: XSAM(m, rho=0.0, lr=0.1), "rho must be > 0, got 0.0", id="xsam-zero-rho"
    ),
    pytest.param(lambda m: XSAM(m, rho=0.1, steps=0, lr=0.1), "steps must be >= 1, got 0", id="k0"),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, steps=1.5, lr=0.1),
        "steps must be a whole number, got 1.5",
        id="k-float",
    ),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, alpha_max=-1, lr=0.1),
        "alpha_max must be >= 0, got -1",
        id="alpha-max",
    ),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, alpha_step=0, lr=0.1),
        "alpha_step must be > 0, got 0",
        id="d-zero",
    ),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, rho_max=-0.2, lr=0.1),
        "rho_max must be > 0, got -0.2",
        id="rho-max",
    ),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, search_every=0, lr=0.1),
        "search_every must be >= 1, got 0",
        id="every",
    ),
    pytest.param(
        lambda m: XSAM(m, rho=0.1, alpha=float("inf"), lr=0.1),
        "alpha must be finite",
        id="alpha-inf",
    ),
    pytest.param(
        lambda m: ASAM(m, eta=-0.01, lr=0.1), "eta must be >= 0, got -0.01", id="negative-eta"
    ),
    pytest.param(
        lambda m: ASAM(m, scaled="biases", lr=0.1), "unknown ASAM scaled='biases'", id="asam-scaled"
    ),
    pytest.param(
        lambda m: SAM(m, bn_policy="some", lr=0.1), "unknown bn_policy 'some'", id="bn-policy"
    ),
    pytest.param(
        lambda m: SAM(m, "lbfgs2", lr=0.1), "unknown base optimizer 'lbfgs2'", id="base-name"
    ),
    pytest.param(
        lambda m: SAM(m, "sgd", lr=-1.0), "cannot build base optimizer sgd", id="base-rejects-lr"
    ),
    pytest.param(
        lambda m: SAM(m, torch.optim.SGD(m.parameters(), lr=0.1)),
        "not an instance",
        id="base-instance",
    ),
    pytest.param(
        lambda m: make_optimizer("adam-sam", m, lr=0.1),
        "unknown optimizer 'adam-sam'",
        id="factory-name",
    ),
    pytest.param(
        lambda m: make_optimizer("sam", m, lr=0.0), "lr must be > 0, got 0.0", id="factory-lr"
    ),
    pytest.param(
        lambda m: make_optimizer("sam", m, lr=0.1, base="rmsprop"),
        "unknown base optimizer 'rmsprop'",
        id="factory-base",
    ),
    pytest.param(
        lambda m: make_optimizer("sgd", m, lr=0.1, momentum=0, nesterov=True),
        "nesterov needs momentum",
        id="nesterov",
    ),
    pytest.param(
        lambda m: alpha_grid(2.0, -0.1), "alpha_step must be > 0, got -0.1", id="grid-step"
    ),
]


@pytest.mark.parametrize(("build", "message"), INVALID)
def test_invalid_hyper_parameters_raise_clear_errors(build, message):
    with pytest.raises(SharpscopeError) as info:
        build(nn.Linear(3, 2))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_step_without_closure_and_second_step_without_first_are_errors():
    net = nn.Linear(3, 2)
    opt = SAM(net, lr=0.1)
    with pytest.raises(SharpscopeError, match="needs a closure"):
        opt.step()
    with pytest.raises(SharpscopeError, match="without first_step"):
        opt.second_step()
    with pytest.raises(SharpscopeError, match="no parameter has a gradient"):
        opt.first_step()
    xs = XSAM(net, rho=0.1, steps=2, alpha=1.0, lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    with pytest.raises(SharpscopeError, match="needs closure="):
        xs.first_step()


def test_failed_closure_leaves_weights_and_bn_tracking_restored():
    net = _net("mlp", batchnorm=True)
    before = copy.deepcopy(net.state_dict())
    opt = XSAM(net, rho=0.1, alpha=1.0, lr=0.1)
    x, y = _batch()
    F.cross_entropy(net(x), y).backward()
    before = copy.deepcopy(net.state_dict())

    def closure():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        opt.step(closure)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, nn.BatchNorm1d))


def test_xsam_perturbation_is_one_ascent_step_of_length_rho_over_k() -> None:
    from sharpscope.optim import XSAM
    from sharpscope.optim.base import sam_ascent_

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = XSAM([w], "sgd", rho=0.3, steps=3, alpha=1.0, lr=0.1, bn_policy="all")
    g = [torch.randn(5, dtype=torch.float64)]
    e = opt.perturbation([w], g)[0]
    torch.testing.assert_close(e.norm(), torch.tensor(0.1, dtype=torch.float64))
    moved = [w.detach().clone()]
    sam_ascent_(moved, g, 0.1)
    torch.testing.assert_close(moved[0] - w.detach(), e)


@pytest.mark.parametrize("name", ["sam", "asam", "xsam"])
def test_rho_zero_is_refused_with_the_way_to_plain_sgd(name) -> None:
    """rho 0 used to run as silent SGD (SAM/ASAM); it is refused, naming --optimizer sgd."""
    from sharpscope.optim import ASAM, SAM, XSAM
    from sharpscope.optim.factory import make_optimizer, optimizer_hparams

    cls = {"sam": SAM, "asam": ASAM, "xsam": XSAM}[name]
    for build in (
        lambda: cls(nn.Linear(3, 2), "sgd", rho=0.0, lr=0.1),
        lambda: make_optimizer(name, nn.Linear(3, 2), lr=0.1, rho=0),
        lambda: optimizer_hparams(name, lr=0.1, rho=0.0),
    ):
        with pytest.raises(SharpscopeError, match=r"rho must be > 0, got 0.0: .*--optimizer sgd"):
            build()


@pytest.mark.parametrize("name", ["sam", "asam", "xsam"])
def test_parameters_without_model_need_model_or_explicit_bn_policy(name) -> None:
    """Parameters alone used to skip bn_policy='clean' silently (BatchNorm statistics of the
    perturbed passes leaked into the running averages)."""
    from sharpscope.optim import ASAM, SAM, XSAM

    cls = {"sam": SAM, "asam": ASAM, "xsam": XSAM}[name]
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(SharpscopeError, match=r"pass the model itself .*bn_policy='all'"):
        cls(net.parameters(), "sgd", rho=0.1, lr=0.1)
    # with model= the clean policy applies: the perturbed pass leaves the running mean alone
    opt = cls(net.parameters(), "sgd", rho=0.1, lr=0.1, model=net)
    assert opt.model is net
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    after_clean = net[1].running_mean.clone()

    def closure():
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    if name == "xsam":
        opt.step(closure, loss_fn=lambda: float(nn.functional.cross_entropy(net(x), y)))
    else:
        opt.step(closure)
    assert torch.equal(net[1].running_mean, after_clean)
    # an explicit 'all' is accepted without the model
    cls(net.parameters(), "sgd", rho=0.1, lr=0.1, bn_policy="all")

"""Test problems for the Hessian engine: tiny float64 models with exact dense Hessians."""

from __future__ import annotations

import functools

import torch
from torch import nn

from sharpscope.reference import dense_hessian


def _mlp(bn: bool) -> nn.Module:
    layers = [nn.Flatten(), nn.Linear(6, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def _cnn(bn: bool) -> nn.Module:
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 3, 3)]
    return nn.Sequential(*layers)


CASES = {
    "mlp": dict(build=lambda: _mlp(False), shape=(6,)),
    "mlp-bn": dict(build=lambda: _mlp(True), shape=(6,)),
    "cnn": dict(build=lambda: _cnn(False), shape=(1, 4, 6)),
    "cnn-bn": dict(build=lambda: _cnn(True), shape=(1, 4, 6)),
}
SIZES = (7, 12, 5)  # three batches of unequal size


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


def make(name: str, seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A float64 model (random BatchNorm statistics, so eval and train differ) and three batches."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    case = CASES[name]
    model = case["build"]().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    batches = []
    for n in SIZES:
        x = torch.randn(n, *case["shape"], generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (n,), generator=g)
        batches.append((x, y))
    return model, batches


@functools.cache
def exact(
    name: str, mode: str, params: str | None = None, batch_only: bool = False
) -> torch.Tensor:
    """The dense Hessian of the full-data (or first-batch) loss."""
    model, batches = make(name)
    data = batches[:1] if batch_only else batches
    return dense_hessian(model, loss_fn, data, params=params, mode=mode)


def snapshot(model: nn.Module) -> dict:
    """Everything a probe must leave unchanged."""
    return {
        "training": [m.training for m in model.modules()],
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "req": {n: p.requires_grad for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["req"] == before["req"]
    for key in ("params", "buffers"):
        for n, t in before[key].items():
            assert torch.equal(after[key][n], t), f"{key} {n} changed"
    for n, g in before["grads"].items():
        assert (after["grads"][n] is None) == (g is None) and (
            g is None or torch.equal(after["grads"][n], g)
        )


class MatrixOperator:
    """An explicit symmetric matrix with the operator interface the estimators use.

    Lets stochastic estimators run thousands of probes against an exact dense Hessian
    in milliseconds; one test per estimator also checks that the real
    :class:`HessianOperator` gives the same numbers for the same seed.
    """

    def __init__(self, H: torch.Tensor, block: int = 16) -> None:
        self.H, self.dim, self.dtype, self.device = H, H.shape[0], H.dtype, H.device
        self.hvp_count, self.preferred_block, self.block_size = 0, block, block
        self.backend, self.mode, self.num_samples = "matrix", "eval", None

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.hvp_count += V.shape[1]
        return self.H @ V

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matmat(v.reshape(-1, 1)).reshape(-1)

    def check_determinism(self, seed: int = 0) -> None:
        self.hvp_count += 2

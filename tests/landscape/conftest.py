"""Tiny models, data and checkpoint folders for the landscape tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from sharpscope import build_model, load_data, save_checkpoint

DIGITS_SHAPE = (1, 8, 8)

# (id, model name, kwargs): a table shared by the tests.
MODEL_CASES = [
    ("mlp", "mlp", {"hidden": [16]}),
    ("cnn", "cnn", {"channels": [4, 6]}),
    ("cnn-bn", "cnn", {"channels": [4, 6], "batchnorm": True}),
]


def make_model(
    name: str, kwargs: dict, seed: int = 0, dtype: torch.dtype = torch.float32
) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, input_shape=DIGITS_SHAPE, num_classes=10, **kwargs).to(dtype)
    # non-trivial BatchNorm statistics, so eval mode differs from train mode
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture
def batches(digits):
    return digits.batches("train", 48, samples=96, seed=0)


def write_checkpoint(
    path: Path, model: nn.Module, name: str, kwargs: dict, metrics: list | None = None
) -> Path:
    return save_checkpoint(
        path,
        model=model,
        model_spec={"name": name, "kwargs": kwargs},
        input_shape=DIGITS_SHAPE,
        num_classes=10,
        data_spec={"spec": "digits", "samples": None, "seed": 0, "normalize": True},
        metrics=metrics or [],
    )


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A fake ``sharpscope train`` run: epoch_001..epoch_005.pt drifting to final.pt."""
    run = tmp_path / "run"
    kwargs = {"channels": [4, 6], "batchnorm": True}
    final = make_model("cnn", kwargs, seed=0)
    start = make_model("cnn", kwargs, seed=1)
    final_state = {k: v.clone() for k, v in final.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    for e in range(1, 6):
        t = e / 6
        m = make_model("cnn", kwargs, seed=0)
        with torch.no_grad():
            for (n, p), q in zip(m.named_parameters(), start.parameters(), strict=True):
                wiggle = 0.05 * torch.randn(p.shape, generator=g)
                p.copy_((1 - t) * q + t * final_state[n] + wiggle * (1 - t))
        write_checkpoint(run / f"epoch_{e:03d}.pt", m, "cnn", kwargs)
    write_checkpoint(run / "final.pt", final, "cnn", kwargs)
    return run

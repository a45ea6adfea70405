"""check_comparable refuses problems probed with different input normalisations (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpscope.errors import CheckpointError
from sharpscope.problem import check_comparable, load_problem
from sharpscope.problem.models import build_model


def _plain(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 1, 2, 2, generator=g) * 2 + 7
    y = torch.arange(20) % 3
    data = tmp_path / "raw.npz"
    np.savez(data, x_train=x.numpy(), y_train=y.numpy(), x_test=x[:4].numpy(),
             y_test=y[:4].numpy())  # fmt: skip
    torch.manual_seed(1)
    net = build_model("mlp", input_shape=(1, 2, 2), num_classes=3, hidden=[5])
    sd = tmp_path / "plain.pt"
    torch.save(net.state_dict(), sd)
    return sd, dict(model="mlp", model_kwargs={"hidden": [5]}, data=f"tensors:{data}", device="cpu")


def test_different_normalisations_are_not_comparable(tmp_path):
    sd, load = _plain(tmp_path)
    raw = load_problem(sd, **load)
    same = load_problem(sd, normalize="none", **load)
    std = load_problem(sd, normalize="standard", **load)
    fixed = load_problem(sd, normalize="7,2", **load)
    check_comparable([raw, same])  # the data as stored, twice
    for other, word in ((std, "standard"), (fixed, "7.0")):
        with pytest.raises(CheckpointError, match="normalisation") as err:
            check_comparable([raw, other])
        assert "none" in str(err.value) and word in str(err.value)
        assert "--allow-mismatch" in str(err.value) and "\n" not in str(err.value)
        check_comparable([raw, other], allow_mismatch=True)
    check_comparable([std, load_problem(sd, normalize="standard", **load)])

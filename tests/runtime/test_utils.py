"""Small helpers: ranges, strict JSON, atomic writes, devices, seeds, progress bars, losses."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.problem.losses import get_loss
from sharpscope.runtime.device import resolve_device, seed_everything
from sharpscope.runtime.files import (
    atomic_savez,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    read_json,
    to_jsonable,
)
from sharpscope.runtime.progress import progress
from sharpscope.runtime.ranges import parse_range

RANGES_OK = [
    ("-1:1:51", (-1.0, 1.0, 51)),
    ("0:1:2", (0.0, 1.0, 2)),
    ("0.5:0.5:1", (0.5, 0.5, 1)),
    ("-2.5:1e-1:3", (-2.5, 0.1, 3)),
    (" -1 : 1 : 3 ", (-1.0, 1.0, 3)),
]


@pytest.mark.parametrize(("text", "expected"), RANGES_OK, ids=[c[0] for c in RANGES_OK])
def test_parse_range_valid(text, expected):
    assert parse_range(text) == expected


RANGES_BAD = [
    ("1:-1:5", "START must be below STOP"),
    ("0:1:0", "NUM must be at least 1, got 0"),
    ("0:1:-3", "NUM must be at least 1, got -3"),
    ("a:b:c", "START and STOP must be numbers"),
    ("0:1:2.5", "NUM must be a whole number"),
    ("1:2", "expected START:STOP:NUM"),
    ("1:2:3:4", "expected START:STOP:NUM"),
    ("", "expected START:STOP:NUM"),
    ("nan:1:3", "START and STOP must be finite"),
    ("-inf:1:3", "START and STOP must be finite"),
    ("0:1:1", "one point needs START == STOP"),
    ("1:1:3", "START must be below STOP"),
]


@pytest.mark.parametrize(("text", "message"), RANGES_BAD, ids=[c[0] or "empty" for c in RANGES_BAD])
def test_parse_range_invalid(text, message):
    with pytest.raises(SharpscopeError) as info:
        parse_range(text, name="--alpha-range")
    assert message in str(info.value) and f"invalid --alpha-range {text!r}" in str(info.value)


def test_atomic_write_json_is_strict_json(tmp_path):
    obj = {
        "nan": float("nan"),
        "inf": float("-inf"),
        "t": torch.tensor([1.5, float("nan")]),
        "np": np.float32(0.25),
        "arr": np.arange(3),
        "tuple": (1, 2),
        3: "int key",
        "path": tmp_path,
        "dtype": torch.float64,
        "nested": [{"x": np.int64(4)}],
    }
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert loaded == {
        "nan": None,
        "inf": None,
        "t": [1.5, None],
        "np": 0.25,
        "arr": [0, 1, 2],
        "tuple": [1, 2],
        "3": "int key",
        "path": str(tmp_path),
        "dtype": "torch.float64",
        "nested": [{"x": 4}],
    }
    assert read_json(path) == loaded
    assert os.listdir(path.parent) == ["out.json"]


def test_to_jsonable_leaves_plain_values():
    assert to_jsonable({"a": [1, "s", None, True, 2.5]}) == {"a": [1, "s", None, True, 2.5]}


def test_read_json_errors(tmp_path):
    with pytest.raises(SharpscopeError, match="no such file"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{'a': 1}")
    with pytest.raises(SharpscopeError, match="is not valid JSON .*line 1"):
        read_json(tmp_path / "bad.json")


def test_atomic_writes_replace_and_clean_up(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    atomic_torch_save({"x": torch.ones(2)}, tmp_path / "t.pt")
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["x"], torch.ones(2))
    atomic_savez(tmp_path / "z.npz", a=np.arange(4))
    with np.load(tmp_path / "z.npz") as z:
        assert z["a"].tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.txt", {"f": object()})  # not JSON: the old file stays
    assert (tmp_path / "a.txt").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "t.pt", "z.npz"]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SharpscopeError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(SharpscopeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seed_everything_reproduces_all_generators():
    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    seed_everything(4)
    assert torch.rand(1).item() != a[2]


def test_progress_quiet_returns_the_iterable_and_loud_wraps_it(capsys):
    items = [1, 2, 3]
    assert progress(items, quiet=True) is items
    assert list(progress(items, desc="probe", quiet=False)) == items


def test_losses_are_batch_means():
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    ce = (-torch.log_softmax(logits, 1)[[0, 1], [0, 2]]).mean()
    assert float(get_loss("cross_entropy")(logits, y)) == pytest.approx(float(ce), abs=1e-12)
    # 0.5 * mean ||f(x) - onehot(y)||^2 = 0.5 * (0 + (4 + 1)) / 2
    assert float(get_loss("mse")(logits, y)) == pytest.approx(1.25, abs=1e-12)
    assert float(
        get_loss("mse")(logits, torch.eye(3, dtype=torch.float64)[[0, 2]])
    ) == pytest.approx(1.25)


def test_unknown_loss():
    with pytest.raises(
        SharpscopeError, match="unknown loss 'hinge': choose one of cross_entropy, mse"
    ):
        get_loss("hinge")


@pytest.mark.parametrize(
    "module",
    [
        "sharpscope.runtime.ranges",
        "sharpscope.problem.models",
        "sharpscope.problem.data",
        "sharpscope.problem.checkpoint",
        "sharpscope.reference",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_atomic_writes_get_normal_permissions(tmp_path) -> None:
    import os
    import stat

    from sharpscope.runtime.files import atomic_write_json

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask

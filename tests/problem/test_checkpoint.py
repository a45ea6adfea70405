"""The checkpoint format: lossless round trips, atomic writes, safe loading, plain state dicts."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import hostile_torch_file

from sharpscope.errors import CheckpointError, ModelSpecError
from sharpscope.problem import load_problem
from sharpscope.problem.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
    to_plain_data,
)
from sharpscope.problem.data import DataSpec, load_data
from sharpscope.problem.losses import get_loss
from sharpscope.problem.models import ModelSpec, build_model

SPEC = ModelSpec("mlp", {"hidden": [16], "batchnorm": True})


def _trained_mlp(steps: int = 3) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    data = load_data("digits")
    net = build_model(SPEC, input_shape=data.input_shape, num_classes=data.num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(data.x_train), data.y_train).backward()
        opt.step()
    return net, opt


def _save(path: Path, net: torch.nn.Module, **kw) -> Path:
    args = dict(
        model=net,
        model_spec=SPEC,
        input_shape=(1, 8, 8),
        num_classes=10,
        data_spec=DataSpec("digits", samples=None, seed=0, normalize=True),
    )
    args.update(kw)
    return save_checkpoint(path, **args)


@pytest.fixture(scope="module")
def trained():
    return _trained_mlp()


@pytest.fixture
def ckpt(tmp_path, trained):
    return _save(tmp_path / "run" / "final.pt", trained[0])


def test_round_trip_preserves_everything(tmp_path, trained):
    net, opt = trained
    metrics = [
        {"epoch": 1, "train_loss": np.float64(0.5), "test_acc": np.float32(0.25)},
        {"epoch": 2, "train_loss": 0.25, "test_acc": float("nan")},
    ]
    extra = {
        "alphas": [0.1, np.float64(0.2)],
        "note": "xsam",
        "nested": {"t": torch.arange(3), "a": np.arange(2)},
        "path": Path("runs/x"),
    }
    resume = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "step": 7}
    path = _save(
        tmp_path / "c.pt",
        net,
        loss="mse",
        optimizer={"name": "sgd", "hparams": {"lr": 0.1, "betas": (0.9, 0.99)}},
        seed=123,
        metrics=metrics,
        extra=extra,
        resume=resume,
    )
    ck = load_checkpoint(path)
    assert ck.model == {
        "name": "mlp",
        "kwargs": {"hidden": [16], "batchnorm": True},
        "input_shape": [1, 8, 8],
        "num_classes": 10,
    }
    assert ck.model_spec == SPEC
    assert ck.data == {"spec": "digits", "samples": None, "seed": 0, "normalize": True}
    assert ck.data_spec == DataSpec("digits")
    assert ck.loss == "mse" and ck.seed == 123 and not ck.plain_state_dict
    assert ck.optimizer == {"name": "sgd", "hparams": {"lr": 0.1, "betas": (0.9, 0.99)}}
    own = net.state_dict()
    assert list(ck.state_dict) == list(own)
    for key, value in own.items():
        assert ck.state_dict[key].dtype == value.dtype and torch.equal(ck.state_dict[key], value), (
            key
        )
    assert ck.metrics[0] == {"epoch": 1, "train_loss": 0.5, "test_acc": pytest.approx(0.25)}
    assert type(ck.metrics[0]["train_loss"]) is float
    assert ck.metrics[1]["epoch"] == 2 and np.isnan(ck.metrics[1]["test_acc"])
    assert ck.final_metrics["train_loss"] == 0.25
    assert (
        ck.extra["alphas"] == [0.1, 0.2]
        and ck.extra["note"] == "xsam"
        and ck.extra["path"] == "runs/x"
    )
    assert torch.equal(ck.extra["nested"]["t"], torch.arange(3))
    assert torch.equal(ck.extra["nested"]["a"], torch.arange(2))
    assert ck.versions == {
        "sharpscope": __import__("sharpscope").__version__,
        "torch": torch.__version__,
    }
    assert ck.resume["step"] == 7 and torch.equal(ck.resume["torch_rng"], torch.get_rng_state())
    opt2 = torch.optim.SGD(
        build_model(SPEC, input_shape=(1, 8, 8), num_classes=10).parameters(), lr=0.1, momentum=0.9
    )
    opt2.load_state_dict(ck.resume["optimizer"])
    buf = opt.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], buf)
    rebuilt = ck.build_model()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in own.items())
    summary = ck.summary()
    assert summary["parameters"] == sum(p.numel() for p in net.parameters())
    assert summary["epochs"] == 2 and summary["format_version"] == FORMAT_VERSION


def test_the_file_is_plain_data_with_the_documented_keys(ckpt):
    raw = torch.load(ckpt, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION
    assert set(raw) == {
        "format",
        "format_version",
        "model",
        "data",
        "loss",
        "state_dict",
        "optimizer",
        "seed",
        "metrics",
        "versions",
        "extra",
    }


def test_write_is_atomic_and_leaves_no_temporary_files(ckpt):
    assert sorted(os.listdir(ckpt.parent)) == ["final.pt"]


def test_failure_mid_save_keeps_the_old_file(tmp_path, trained, monkeypatch):
    path = _save(tmp_path / "c.pt", trained[0], seed=1)
    before = path.read_bytes()
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save({"partial": True}, f)
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        _save(path, trained[0], seed=2)
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path).seed == 1
    assert os.listdir(tmp_path) == ["c.pt"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("extra", {"fn": lambda: 0}, "cannot save extra['fn']: a function is not plain data"),
        (
            "metrics",
            [{"obj": object()}],
            "cannot save metrics[0]['obj']: a object is not plain data",
        ),
        ("extra", {("a", 1): 2}, "key ('a', 1) is a tuple"),
        ("resume", {"arr": np.array([{}], dtype=object)}, "a NumPy array of Python objects"),
    ],
    ids=["function", "object", "tuple-key", "object-array"],
)
def test_saving_non_plain_data_is_refused_before_writing(tmp_path, trained, field, value, message):
    with pytest.raises(CheckpointError) as info:
        _save(tmp_path / "c.pt", trained[0], **{field: value})
    assert message in str(info.value)
    assert not any(tmp_path.iterdir())


def test_to_plain_data_converts_numpy_and_paths():
    out = to_plain_data({"a": np.int64(3), 1: (np.float32(0.5), Path("p")), "d": torch.float64})
    assert out == {"a": 3, 1: (0.5, "p"), "d": torch.float64}
    assert type(out["a"]) is int


def test_load_problem_rebuilds_an_identical_model(ckpt, trained):
    net = trained[0].eval()
    problem = load_problem(ckpt, device="cpu")
    data = load_data("digits")
    torch.testing.assert_close(problem.data.x_train, data.x_train, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(
            problem.model.eval()(data.x_test), net(data.x_test), rtol=0, atol=0
        )
    loss = get_loss("cross_entropy")
    batches = problem.batches("train", batch_size=500)
    assert [len(y) for _, y in batches] == [500, 500, 438]
    assert (
        problem.loss_name == "cross_entropy" and problem.label == "run"
    )  # "final.pt" is named after its folder
    p64 = load_problem(ckpt, device="cpu", dtype=torch.float64)
    assert (
        next(p64.model.parameters()).dtype == torch.float64
        and p64.data.x_train.dtype == torch.float64
    )
    with torch.no_grad():
        expected = loss(net(data.x_train).double(), data.y_train)
        torch.testing.assert_close(
            loss(p64.model.eval()(p64.data.x_train), data.y_train), expected, rtol=1e-6, atol=0
        )


def test_load_problem_refuses_data_of_another_shape_or_more_classes(ckpt):
    with pytest.raises(
        CheckpointError,
        match=r"built for inputs of shape \[1, 8, 8\] but data 'synthetic:shape=2x4x4'",
    ):
        load_problem(ckpt, data="synthetic:shape=2x4x4", device="cpu")
    with pytest.raises(
        CheckpointError, match="has 10 outputs but data 'synthetic:classes=12' has 12 classes"
    ):
        load_problem(ckpt, data="synthetic:classes=12", device="cpu")


def test_model_and_data_overrides(ckpt):
    ck = load_checkpoint(
        ckpt, model="mlp", model_kwargs={"hidden": [16], "batchnorm": True}, data="synthetic"
    )
    assert (
        ck.model["name"] == "mlp"
        and ck.data["spec"] == "synthetic"
        and ck.model["input_shape"] == [1, 8, 8]
    )
    ck = load_checkpoint(ckpt, model_kwargs={"activation": "tanh"})
    assert ck.model["kwargs"] == {"hidden": [16], "batchnorm": True, "activation": "tanh"}


# --------------------------------------------------------------------------- plain state dicts


@pytest.mark.parametrize(
    "wrap",
    [
        "bare",
        "state_dict",
        "model_state_dict",
        "model",
        "net",
        "module-prefix",
        "wrapped-module-prefix",
    ],
)
def test_plain_state_dict_wrappers_are_unwrapped(tmp_path, trained, wrap):
    sd = trained[0].state_dict()
    if "module-prefix" in wrap:
        sd = {f"module.{k}": v for k, v in sd.items()}
    obj = {"epoch": 3, "state_dict": sd} if wrap.startswith("wrapped") else sd
    if wrap in ("state_dict", "model_state_dict", "model", "net"):
        obj = {wrap: sd, "epoch": 3, "optimizer": {"lr": 0.1}}
    path = tmp_path / "plain.pth"
    torch.save(obj, path)
    ck = load_checkpoint(
        path,
        model="mlp",
        model_kwargs={"hidden": [16], "batchnorm": True},
        data="digits",
        input_shape=(1, 8, 8),
        num_classes=10,
    )
    assert ck.plain_state_dict and ck.summary()["format_version"] is None
    net = ck.build_model()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), trained[0].eval()(x), rtol=0, atol=0)
    problem = load_problem(
        path,
        model="mlp",
        model_kwargs={"hidden": [16], "batchnorm": True},
        data="digits",
        device="cpu",
    )
    with torch.no_grad():
        torch.testing.assert_close(problem.model.eval()(x), trained[0](x), rtol=0, atol=0)


def test_plain_state_dict_without_model_and_data_is_refused(tmp_path, trained):
    path = tmp_path / "plain.pt"
    torch.save(trained[0].state_dict(), path)
    for kwargs in ({}, {"model": "mlp"}, {"data": "digits"}):
        with pytest.raises(CheckpointError, match="plain state dict: pass --model and --data"):
            load_checkpoint(path, **kwargs)
    ck = load_checkpoint(path, model="mlp", data="digits")
    with pytest.raises(CheckpointError, match="input shape and classes are unknown; pass --data"):
        ck.build_model()


def test_shape_mismatch_names_keys_and_shapes(tmp_path, trained):
    path = tmp_path / "plain.pt"
    torch.save(trained[0].state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_problem(path, model="mlp", data="digits", device="cpu")
    msg = str(info.value)
    assert "does not match the model" in msg and "\n" not in msg
    assert "net.0.weight" not in msg  # net.0 is Flatten; the first Linear is net.1
    assert "shape differences: net.1.weight [16, 64] vs model [128, 64]" in msg
    assert "unexpected keys: net.2.weight, net.2.bias, net.2.running_mean" in msg


def test_load_state_dict_strict_names_missing_keys():
    net = build_model("mlp", input_shape=(4,), num_classes=2, hidden=[3])
    sd = dict(net.state_dict())
    sd.pop("net.3.bias")
    with pytest.raises(
        CheckpointError, match="x.pt does not match the model: missing keys: net.3.bias"
    ):
        load_state_dict_strict(net, sd, where="x.pt")


# --------------------------------------------------------------------------- safety and broken files


def test_malicious_checkpoint_is_refused_without_running_its_payload(tmp_path, ckpt):
    marker = tmp_path / "PWNED"
    payload = torch.load(ckpt, weights_only=True)
    path = hostile_torch_file(tmp_path / "evil.pt", marker, payload)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    msg = str(info.value)
    assert "refused to load" in msg and "never runs code" in msg and "\n" not in msg
    with pytest.raises(CheckpointError):
        load_problem(path, device="cpu")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.exists()


def _broken(tmp_path: Path, ckpt: Path, how: str) -> Path:
    path = tmp_path / "broken.pt"
    if how == "missing file":
        return tmp_path / "nope.pt"
    if how == "folder":
        path.mkdir()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(ckpt.read_bytes()[:1000])
    elif how == "text":
        path.write_text("epoch,loss\n1,0.5\n")
    elif how == "plain pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    elif how == "protocol-2 pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=2))
    elif how in (
        "newer version",
        "bad version",
        "no model entry",
        "state_dict not tensors",
        "model not a dict",
    ):
        raw = torch.load(ckpt, weights_only=True)
        if how == "newer version":
            raw["format_version"] = FORMAT_VERSION + 1
        elif how == "bad version":
            raw["format_version"] = "one"
        elif how == "no model entry":
            del raw["model"]
        elif how == "model not a dict":
            raw["model"] = "mlp"
        else:
            raw["state_dict"]["net.1.weight"] = [1.0]
        torch.save(raw, path)
    elif how == "not a state dict":
        torch.save([torch.zeros(2)], path)
    elif how == "dict without tensors":
        torch.save({"epoch": 3, "lr": 0.1}, path)
    return path


BROKEN = [
    ("missing file", "no such file"),
    ("folder", "is a folder, not a checkpoint file"),
    ("empty", "is empty"),
    ("truncated", "is not a torch.save file (truncated, corrupt or another format?)"),
    ("text", "is not a torch.save file"),
    ("plain pickle", "is not a torch.save file"),
    ("protocol-2 pickle", "is not a torch.save file"),
    (
        "newer version",
        f"format version {FORMAT_VERSION + 1} is newer than this sharpscope ({FORMAT_VERSION}); upgrade",
    ),
    ("bad version", "invalid checkpoint format version 'one'"),
    ("no model entry", "damaged sharpscope checkpoint: no 'model' entry"),
    ("model not a dict", "'model' is a str, not a dict"),
    ("state_dict not tensors", "state_dict entry 'net.1.weight' is not a tensor"),
    ("not a state dict", "is not a sharpscope checkpoint or a state dict (found a list)"),
    ("dict without tensors", "is not a sharpscope checkpoint or a state dict (found a dict)"),
]


@pytest.mark.parametrize(("how", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_checkpoints(tmp_path, ckpt, how, message):
    path = _broken(tmp_path, ckpt, how)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model="mlp", data="digits", input_shape=(1, 8, 8), num_classes=10)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_model_in_checkpoint_is_a_model_error(tmp_path, trained):
    path = _save(tmp_path / "c.pt", trained[0], model_spec=ModelSpec("no_such_net"))
    with pytest.raises(ModelSpecError, match="unknown model 'no_such_net'"):
        load_checkpoint(path).build_model()

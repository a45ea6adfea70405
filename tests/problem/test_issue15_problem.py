"""Issue 15: your model, your data, your loss, exactly. Every number is checked against a
loss computed by hand on the data as stored (or standardised by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sharpscope.errors import DataError, SharpscopeError
from sharpscope.problem import load_problem
from sharpscope.problem.checkpoint import save_checkpoint
from sharpscope.problem.data import load_data
from sharpscope.problem.models import ModelSpec, build_model


def _raw(tmp_path, shift=7.0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 1, 2, 2, generator=g) * 2 + shift
    y = torch.arange(30) % 3
    path = tmp_path / "raw.npz"
    np.savez(path, x_train=x.numpy(), y_train=y.numpy(), x_test=x[:6].numpy(),
             y_test=y[:6].numpy())  # fmt: skip
    return path, x, y


def _foreign(tmp_path):
    data, x, y = _raw(tmp_path)
    torch.manual_seed(1)
    net = build_model("mlp", input_shape=(1, 2, 2), num_classes=3, hidden=[5])
    sd = tmp_path / "foreign.pt"
    torch.save(net.state_dict(), sd)
    return sd, data, net.eval(), x, y


def _standardised(x):
    m, s = x.mean(dim=[0, 2, 3], keepdim=True), x.std(dim=[0, 2, 3], keepdim=True)
    return (x - m) / s


def _dense_hessian(net, x, y):
    names = [n for n, _ in net.named_parameters()]
    params = {n: p.detach().double() for n, p in net.named_parameters()}
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    net64 = net.double()

    def f(theta):
        out, i = {}, 0
        for n, p in params.items():
            out[n] = theta[i : i + p.numel()].reshape(p.shape)
            i += p.numel()
        return F.cross_entropy(torch.func.functional_call(net64, out, (x.double(),)), y)

    assert names
    return torch.autograd.functional.hessian(f, flat)


def test_plain_state_dict_uses_the_data_as_stored(tmp_path):
    sd, data, net, x, y = _foreign(tmp_path)
    problem = load_problem(sd, model="mlp", model_kwargs={"hidden": [5]},
                           data=f"tensors:{data}", device="cpu")  # fmt: skip
    assert problem.describe()["normalization"] == {"mode": "none"}
    (xb, yb), = problem.batches("train", 64)  # fmt: skip
    assert torch.equal(xb, x)
    with torch.no_grad():
        assert float(problem.loss_fn(problem.model.eval()(xb), yb)) == float(
            F.cross_entropy(net(x), y)
        )
    std = load_problem(sd, model="mlp", model_kwargs={"hidden": [5]},
                       data=f"tensors:{data}", normalize="standard", device="cpu")  # fmt: skip
    torch.testing.assert_close(std.data.x_train, _standardised(x), rtol=0, atol=1e-6)
    norm = std.describe()["normalization"]
    assert norm["mode"] == "standard" and norm["source"] == "computed from the training split"
    assert norm["mean"] == pytest.approx([float(x.mean())])
    # the same in the data spec; fixed numbers too
    fixed = load_problem(sd, model="mlp", model_kwargs={"hidden": [5]},
                         data=f"tensors:{data}?normalize=7,2", device="cpu")  # fmt: skip
    torch.testing.assert_close(fixed.data.x_train, (x - 7) / 2, rtol=0, atol=0)


def test_dense_hessian_of_a_plain_state_dict_is_the_raw_data_hessian(tmp_path):
    sd, data, net, x, y = _foreign(tmp_path)
    p64 = load_problem(sd, model="mlp", model_kwargs={"hidden": [5]},
                       data=f"tensors:{data}", device="cpu", dtype=torch.float64)  # fmt: skip
    from sharpscope.reference import dense_hessian

    H = dense_hessian(p64.model, p64.loss_fn, p64.batches("train", 64))
    torch.testing.assert_close(H, _dense_hessian(net, x, y), rtol=0, atol=1e-10)


def test_checkpoint_round_trips_its_normalisation_bit_for_bit(tmp_path):
    data, x, y = _raw(tmp_path, shift=3.0)
    splits = load_data(f"tensors:{data}")
    net = build_model("mlp", input_shape=(1, 2, 2), num_classes=3)
    ck = save_checkpoint(tmp_path / "run" / "final.pt", model=net, model_spec=ModelSpec("mlp"),
                         input_shape=(1, 2, 2), num_classes=3, data_spec=splits.spec)  # fmt: skip
    stored = torch.load(ck, weights_only=True)["data"]
    assert stored["mean"] == splits.mean and stored["std"] == splits.std
    assert stored.get("resolved", stored["spec"]) == f"tensors:{data}"
    # the data file changes afterwards: the stored statistics are used, not recomputed
    np.savez(data, x_train=(x * 10).numpy(), y_train=y.numpy(), x_test=x[:6].numpy(),
             y_test=y[:6].numpy())  # fmt: skip
    problem = load_problem(ck, device="cpu")
    assert problem.data.mean == splits.mean and problem.data.std == splits.std
    m = torch.tensor(splits.mean).reshape(1, 1, 1, 1)
    s = torch.tensor(splits.std).reshape(1, 1, 1, 1)
    assert torch.equal(problem.data.x_train, (x * 10 - m) / s)
    assert problem.describe()["normalization"]["source"] == "stored in the checkpoint"


def test_old_checkpoint_recomputes_as_before_and_records_it(tmp_path):
    data, x, y = _raw(tmp_path)
    net = build_model("mlp", input_shape=(1, 2, 2), num_classes=3)
    ck = save_checkpoint(tmp_path / "old.pt", model=net, model_spec=ModelSpec("mlp"),
                         input_shape=(1, 2, 2), num_classes=3,
                         data_spec={"spec": f"tensors:{data}", "normalize": True})  # fmt: skip
    assert "mean" not in torch.load(ck, weights_only=True)["data"]
    problem = load_problem(ck, device="cpu")
    assert torch.equal(problem.data.x_train, load_data(f"tensors:{data}").x_train)
    norm = problem.describe()["normalization"]
    assert norm["source"] == "computed from the training split" and len(norm["mean"]) == 1


def test_relative_data_path_is_found_from_another_working_directory(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    data, x, y = _raw(run)
    monkeypatch.chdir(run)
    splits = load_data("tensors:raw.npz")
    net = build_model("mlp", input_shape=(1, 2, 2), num_classes=3)
    ck = save_checkpoint(run / "final.pt", model=net, model_spec=ModelSpec("mlp"),
                         input_shape=(1, 2, 2), num_classes=3, data_spec=splits.spec)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert torch.equal(load_problem(ck, device="cpu").data.x_train, splits.x_train)
    # the folder moved: the file next to the checkpoint is used
    moved = tmp_path / "moved"
    run.rename(moved)
    assert torch.equal(load_problem(moved / "final.pt", device="cpu").data.x_train, splits.x_train)


def test_parse_normalize_errors_are_one_line():
    from sharpscope.problem.data.normalization import parse_normalize

    assert parse_normalize("0.5,0.25/0.1,0.2") == "0.5,0.25/0.1,0.2"
    assert parse_normalize("none") is False and parse_normalize("standard") is True
    for bad, msg in [("1,2,3", "MEAN,STD"), ("1/0", "positive"), ("1,2/3", "2 means but 1"),
                     ("a,b", "not a comma-separated")]:  # fmt: skip
        with pytest.raises(DataError, match=msg):
            parse_normalize(bad)


def test_data_factory_contract_and_errors(monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1]))
    d = load_data("_issue15_user:make_data?n=40&size=16")
    assert d.count("train") == 40 and d.normalization["mode"] == "none"
    b = d.batches("train", 10, samples=25, seed=3)
    assert [len(x["labels"]) for x in b] == [10, 10, 5]
    with pytest.raises(DataError, match="returned a int; expected \\(train, test\\)"):
        load_data("_issue15_user:broken_data")
    with pytest.raises(DataError, match="failed with \\{'nope': 1\\}: TypeError"):
        load_data("_issue15_user:make_data?nope=1")
    with pytest.raises(DataError, match="never normalises"):
        load_data("_issue15_user:make_data", normalize="1,2")
    # never from a file
    with pytest.raises(DataError, match="never imports a name read from a file"):
        load_data("_issue15_user:make_data", allow_import=False)


def test_user_loss_must_return_a_scalar(monkeypatch):
    from sharpscope.problem.losses import get_loss

    fn = get_loss("torch.nn.functional:cross_entropy", allow_import=True)
    with pytest.raises(SharpscopeError, match="must return a scalar tensor"):
        get_loss("torch:sub", allow_import=True)(torch.ones(3, 2), torch.ones(3, 2))
    assert fn.takes_batch
    with pytest.raises(SharpscopeError, match="pass --loss os:system"):
        get_loss("os:system")
    _ = json  # the JSON module is used by the CLI tests

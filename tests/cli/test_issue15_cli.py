"""Issue 15 end to end: --model, --data and --loss import paths (a dict-input model, a data
factory of mapping batches, fn(output, batch)) agree with library calls and hand losses."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TESTS = Path(__file__).parents[1]


def _setup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    import _issue15_user as user

    sd = tmp_path / "dict.pt"
    torch.save(user.make_net().state_dict(), sd)
    return user, sd


OPTS = ["--model", "_issue15_user:make_net", "--data", "_issue15_user:make_data",
        "--loss", "_issue15_user:loss"]  # fmt: skip


def _hand_loss(user):
    net = user.make_net().eval()
    batches = user.make_data()["train"]
    with torch.no_grad():
        total = sum(float(user.loss(net(b["features"], b["scale"]), b)) * len(b["labels"])
                    for b in batches)  # fmt: skip
    return total / sum(len(b["labels"]) for b in batches)


def test_info_and_sharpness_use_the_users_model_data_and_loss(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    user, sd = _setup(tmp_path, monkeypatch)
    r = cli_runner.invoke(cli_app, ["info", str(sd), *OPTS, "--json", "-"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert abs(out["train_loss"] - _hand_loss(user)) < 1e-6
    assert out["loss"] == "_issue15_user:loss" and out["normalization"]["mode"] == "none"
    r = cli_runner.invoke(cli_app, ["sharpness", str(sd), *OPTS, "--rho", "0.01", "--steps",
                                    "3", "--restarts", "1", "--samples", "0", "--json", "-"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert abs(out["loss"] - _hand_loss(user)) < 1e-6
    assert out["problem"]["loss"] == "_issue15_user:loss"


def test_eigen_agrees_with_the_dense_hessian(cli_runner, cli_app, tmp_path, monkeypatch):
    user, sd = _setup(tmp_path, monkeypatch)
    r = cli_runner.invoke(cli_app, ["eigen", str(sd), *OPTS, "-k", "1", "--samples", "0",
                                    "--tol", "1e-6", "--json", "-", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)["eigenvalues"][0]
    from sharpscope.problem import load_problem
    from sharpscope.reference import dense_hessian

    p = load_problem(sd, model="_issue15_user:make_net", data="_issue15_user:make_data",
                     loss="_issue15_user:loss", device="cpu", dtype=torch.float64)  # fmt: skip
    H = dense_hessian(p.model, p.loss_fn, p.batches("train", 512))
    assert abs(top - float(torch.linalg.eigvalsh(H)[-1])) < 1e-4 * max(1.0, abs(top))


def test_bad_inputs_are_one_line(cli_runner, cli_app, tmp_path, monkeypatch):
    _, sd = _setup(tmp_path, monkeypatch)
    for args, msg in [
        (["--data", "_issue15_user:broken_data"], "expected (train, test)"),
        (["--loss", "no_such_mod:fn"], "cannot import module 'no_such_mod'"),
        (["--normalize", "1,2,3"], "normalize must be none, standard"),
    ]:
        opts = list(OPTS) + ["--normalize", "none"]
        for i in range(0, len(args), 2):
            opts[opts.index(args[i]) + 1] = args[i + 1]
        r = cli_runner.invoke(cli_app, ["info", str(sd), *opts])
        assert r.exit_code != 0 and msg in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output

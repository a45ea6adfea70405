"""Issue 15, probing side: trace and slice from the command line with --model/--data/--loss
import paths agree with library calls on the same batches; eigenvectors of other weights are
refused (or, allowed, named as foreign); --loss/--normalize are plain keyword arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sharpscope.errors import SharpscopeError

TESTS = Path(__file__).parents[1]
OPTS = ["--model", "_issue15_user:make_net", "--data", "_issue15_user:make_data",
        "--loss", "_issue15_user:loss"]  # fmt: skip
LOAD = dict(model="_issue15_user:make_net", data="_issue15_user:make_data",
            loss="_issue15_user:loss", device="cpu")  # fmt: skip


def _setup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    import _issue15_user as user

    sd = tmp_path / "dict.pt"
    torch.save(user.make_net().state_dict(), sd)
    return user, sd


def _hand_loss(user):
    net = user.make_net().eval()
    batches = user.make_data()["train"]
    with torch.no_grad():
        total = sum(float(user.loss(net(b["features"], b["scale"]), b)) * len(b["labels"])
                    for b in batches)  # fmt: skip
    return total / sum(len(b["labels"]) for b in batches)


def test_trace_from_the_command_line_agrees_with_the_library(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    _, sd = _setup(tmp_path, monkeypatch)
    r = cli_runner.invoke(cli_app, ["trace", str(sd), *OPTS, "--probes", "6", "--samples", "0",
                                    "--seed", "3", "--json", "-", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    cli_trace = json.loads(r.stdout)["trace"]
    from sharpscope.hessian import hessian_trace
    from sharpscope.problem import load_problem

    p = load_problem(sd, **LOAD)
    lib = hessian_trace(p.model, p.loss_fn, p.batches("train", 512), probes=6, seed=3)
    assert abs(cli_trace - lib.trace) <= 1e-6 * max(1.0, abs(lib.trace))


def test_slice_from_the_command_line_agrees_with_the_library(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    user, sd = _setup(tmp_path, monkeypatch)
    out = tmp_path / "cli-slice"
    r = cli_runner.invoke(cli_app, ["slice", str(sd), *OPTS, "--dims", "1", "--range",
                                    "-0.5:0.5:5", "--out", str(out), "--json", "-", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    cli = json.loads(r.stdout)
    from sharpscope.landscape.slicing import slice_problem
    from sharpscope.problem import load_problem

    lib = slice_problem(load_problem(sd, **LOAD), dims=1, xrange="-0.5:0.5:5",
                        out=tmp_path / "lib-slice", quiet=True)  # fmt: skip
    assert abs(cli["center_loss"] - _hand_loss(user)) < 1e-6
    for key in ("center_loss", "min_loss"):
        assert abs(cli[key] - lib[key]) < 1e-7, key
    meta = json.loads((out / "meta.json").read_text())
    assert meta["metadata"]["checkpoint"] == str(sd) and meta["metadata"]["samples"] == 40


def _vectors(cli_runner, cli_app, sd, tmp_path):
    vec = tmp_path / "vec.pt"
    r = cli_runner.invoke(cli_app, ["eigen", str(sd), *OPTS, "-k", "2", "--samples", "0",
                                    "--save-vectors", str(vec), "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return vec


def _other_weights(user, tmp_path):
    net = user.make_net()
    with torch.no_grad():
        net.lin.weight.add_(0.01)
    other = tmp_path / "other.pt"
    torch.save(net.state_dict(), other)
    return other


def test_eigenvectors_of_other_weights_are_refused_unless_allowed(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    user, sd = _setup(tmp_path, monkeypatch)
    vec = _vectors(cli_runner, cli_app, sd, tmp_path)
    from sharpscope.hessian.vectors import load_vectors, weights_fingerprint

    assert load_vectors(vec)["source_fingerprint"] == weights_fingerprint(user.make_net())
    args = ["--dims", "1", "--range", "-0.1:0.1:3", "--eigvecs", str(vec), "-q"]
    own = tmp_path / "own"
    r = cli_runner.invoke(cli_app, ["slice", str(sd), *OPTS, *args, "--out", str(own)])
    assert r.exit_code == 0 and "notice" not in r.stderr, r.output
    assert "foreign" not in json.loads((own / "meta.json").read_text())["metadata"]["directions"]

    other = _other_weights(user, tmp_path)
    out = tmp_path / "foreign"
    r = cli_runner.invoke(cli_app, ["slice", str(other), *OPTS, *args, "--out", str(out)])
    assert r.exit_code != 0 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert str(sd) in lines[0] and "--allow-foreign-vectors" in lines[0]
    assert not (out / "meta.json").exists()

    r = cli_runner.invoke(cli_app, ["slice", str(other), *OPTS, *args, "--out", str(out),
                                    "--allow-foreign-vectors"])  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads((out / "meta.json").read_text())["metadata"]["directions"]
    assert d["foreign"] is True and d["source"] == str(sd)
    assert d["source_fingerprint"] == weights_fingerprint(user.make_net())


def test_the_title_names_foreign_vectors(tmp_path, monkeypatch):
    user, sd = _setup(tmp_path, monkeypatch)
    from sharpscope.hessian.vectors import save_vectors, weights_fingerprint
    from sharpscope.landscape import slicing
    from sharpscope.problem import load_problem

    net = user.make_net()
    v = [{n: torch.ones_like(p) / 23**0.5 for n, p in net.named_parameters()}]
    vec = save_vectors(tmp_path / "v.pt", vectors=v, eigenvalues=[1.0], source=str(sd),
                       fingerprint=weights_fingerprint(net))  # fmt: skip
    titles = []
    real = slicing._slice_one

    def spy(*a, **k):
        titles.append(a[-1]["title"])
        return real(*a, **k)

    monkeypatch.setattr(slicing, "_slice_one", spy)
    kw = dict(dims=1, xrange="-0.1:0.1:3", eigvecs=vec, quiet=True)
    slicing.slice_problem(load_problem(sd, **LOAD), out=tmp_path / "a", **kw)
    other = _other_weights(user, tmp_path)
    with pytest.raises(SharpscopeError, match="not of the weights of"):
        slicing.slice_problem(load_problem(other, **LOAD), out=tmp_path / "b", **kw)
    slicing.slice_problem(load_problem(other, **LOAD), out=tmp_path / "c",
                          allow_foreign_vectors=True, **kw)  # fmt: skip
    assert titles[0].endswith("\neigen directions")
    assert titles[1].endswith("eigen directions of dict.pt (foreign vectors)")


def test_vectors_without_a_fingerprint_get_one_notice(cli_runner, cli_app, tmp_path, monkeypatch):
    user, sd = _setup(tmp_path, monkeypatch)
    from sharpscope.hessian.vectors import save_vectors

    net = user.make_net()
    v = [{n: torch.ones_like(p) / 23**0.5 for n, p in net.named_parameters()}]
    vec = save_vectors(tmp_path / "old.pt", vectors=v, eigenvalues=[1.0], source="elsewhere.pt")
    other = _other_weights(user, tmp_path)
    r = cli_runner.invoke(cli_app, ["slice", str(other), *OPTS, "--dims", "1", "--range",
                                    "-0.1:0.1:3", "--eigvecs", str(vec),
                                    "--out", str(tmp_path / "s")])  # fmt: skip
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if "notice:" in line]
    assert len(notes) == 1 and "cannot be checked" in notes[0], r.stderr
    r = cli_runner.invoke(cli_app, ["slice", str(other), *OPTS, "--dims", "1", "--range",
                                    "-0.1:0.1:3", "--eigvecs", str(vec), "-q",
                                    "--out", str(tmp_path / "q")])  # fmt: skip
    assert r.exit_code == 0 and "notice" not in r.stderr, r.output


def test_loss_and_normalize_are_keyword_arguments_of_the_probes(tmp_path, monkeypatch):
    user, sd = _setup(tmp_path, monkeypatch)
    import sharpscope.problem.problem as problem_module
    from sharpscope.hessian.probe import probe_eigen
    from sharpscope.sharpness.probe import probe_sharpness

    assert not hasattr(problem_module, "load_options")
    out = probe_sharpness(sd, rho=0.01, steps=2, restarts=1, samples=0, **LOAD)
    assert abs(out["loss"] - _hand_loss(user)) < 1e-6
    assert out["problem"]["loss"] == "_issue15_user:loss"
    with pytest.raises(SharpscopeError, match="has no attribute 'no_such_fn'"):
        probe_sharpness(sd, rho=0.01, steps=2, restarts=1, samples=0,
                        **{**LOAD, "loss": "_issue15_user:no_such_fn"})  # fmt: skip
    # a run folder's epochs are probed with the same loss and normalisation
    import sharpscope.hessian.probe as probe_module

    seen = {}
    monkeypatch.setattr(
        probe_module, "probe_over_training", lambda path, **kw: seen.update(kw) or {"epochs": []}
    )
    probe_eigen(tmp_path, loss="_issue15_user:loss", normalize="none")
    assert seen["loss"] == "_issue15_user:loss" and seen["normalize"] == "none"


def test_the_samples_notice_is_a_problem_field(tmp_path, monkeypatch, capsys):
    _, sd = _setup(tmp_path, monkeypatch)
    from sharpscope.problem import load_problem

    load_problem(sd, **LOAD).batches("train", 16, samples=1000)
    assert "notice" not in capsys.readouterr().err
    p = load_problem(sd, samples_notice=True, **LOAD)
    assert p.samples_notice
    assert sum(len(b["labels"]) for b in p.batches("train", 16, samples=1000)) == 40
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--samples 1000" in err[0] and "using all 40" in err[0]

"""Issue 11, training side: never lose or mix a run, never report a wrong number.

--force validates before replacing, resume restores every file, the folder lock, divergence
caught on an epoch's last step, strict metrics, empty test splits, rho 0, and kill tests.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sharpscope.checkpoint import load_checkpoint
from sharpscope.errors import DataError, NonFiniteLossError, SharpscopeError
from sharpscope.training import train


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


DATA = "synthetic:train=96,test=32"
QUICK = {
    "model": "mlp",
    "model_kwargs": {"hidden": [16]},
    "data": DATA,
    "batch_size": 32,
    "lr": 0.05,
    "quiet": True,
    "device": "cpu",
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".sharpscope.lock"
    }


def _files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".sharpscope.lock"
    )


def _weights(path):
    return load_checkpoint(path).state_dict


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- 1. --force
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "no_such_model"}, "no_such_model"),
        ({"data": "tensors:/no/such/file.npz"}, "file.npz"),
        ({"loss": "no_such_loss"}, "no_such_loss"),
        ({"model_kwargs": {"hidden": [16], "bogus": 1}}, "bogus"),
    ],
)
def test_force_with_a_bad_new_run_leaves_the_old_run_byte_identical(tmp_path, kw, message):
    out = tmp_path / "run"
    train(**QUICK, epochs=2, out=out)
    (out / "probes").mkdir()
    (out / "probes" / "eigen.json").write_text("{}")
    before = _snapshot(out)
    with pytest.raises(SharpscopeError, match=message):
        train(**{**QUICK, **kw}, epochs=2, out=out, force=True)
    assert _snapshot(out) == before


def test_force_restores_the_old_run_when_the_first_checkpoint_fails(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(**QUICK, epochs=2, out=out)
    before = _snapshot(out)
    import sharpscope.training.run as tm

    def full_disk(*a, **k):
        from sharpscope.errors import DiskFullError

        raise DiskFullError(f"no space left on the device while writing {out / 'epoch_000.pt'}")

    monkeypatch.setattr(tm, "save_checkpoint", full_disk)
    with pytest.raises(SharpscopeError, match="no space left"):
        train(**QUICK, epochs=3, out=out, force=True)
    assert _snapshot(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".sharpscope-old")] == []


def test_force_replaces_the_old_run_and_its_probe_cache(tmp_path):
    out = tmp_path / "run"
    train(**QUICK, epochs=3, out=out)
    (out / "probes").mkdir()
    (out / "probes" / "eigen.json").write_text("{}")
    train(**QUICK, epochs=1, out=out, force=True, seed=1)
    assert _files(out) == ["epoch_000.pt", "epoch_001.pt", "final.pt", "last.pt", "metrics.jsonl"]


# ----------------------------------------------------------------------------- 2. missing epoch files
def test_resume_rewrites_an_epoch_file_missing_after_an_interruption(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    train(**QUICK, epochs=3, out=ref)

    def stop(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(**QUICK, epochs=3, out=out, callback=stop)
    # the old write order (last.pt, then epoch_XXX.pt) could leave this state behind
    (out / "epoch_002.pt").unlink()
    (out / "epoch_000.pt").unlink()
    train(**QUICK, epochs=3, out=out, resume=True)
    assert _files(out) == _files(ref)
    for name in ("epoch_000.pt", "epoch_002.pt", "final.pt"):
        assert _equal(_weights(out / name), _weights(ref / name)), name


def test_over_training_names_a_missing_epoch_file(tmp_path):
    from sharpscope.hessian.over_training import run_checkpoints

    out = tmp_path / "run"
    train(**QUICK, epochs=4, out=out)
    assert [e for e, _ in run_checkpoints(out)] == [0, 1, 2, 3, 4]
    (out / "epoch_002.pt").unlink()
    with pytest.raises(SharpscopeError, match="epoch_002.pt"):
        run_checkpoints(out)
    train(**QUICK, epochs=4, out=tmp_path / "r2", save_every=2)
    (tmp_path / "r2" / "epoch_004.pt").unlink()
    with pytest.raises(SharpscopeError, match="epoch_004.pt"):
        run_checkpoints(tmp_path / "r2")


def test_over_training_cache_is_not_reused_for_a_replaced_checkpoint(tmp_path):
    from sharpscope.hessian.over_training import probe_over_training

    out = tmp_path / "run"
    train(**QUICK, epochs=1, out=out)
    settings = {"k": 1, "samples": 64, "batch_size": 64, "tol": 1e-4}
    first = probe_over_training(out, settings=settings, device="cpu")
    # an outside copy of another run's checkpoint under the same name
    other = tmp_path / "other"
    train(**{**QUICK, "lr": 0.2}, epochs=1, out=other, seed=5)
    (out / "epoch_001.pt").write_bytes((other / "epoch_001.pt").read_bytes())
    again = probe_over_training(out, settings=settings, device="cpu")
    assert again["reused"] == 1 and again["computed"] == 1
    assert again["epochs"][1]["eigenvalues"] != first["epochs"][1]["eigenvalues"]


# ----------------------------------------------------------------------------- 3. folder lock
_HOLD = """
import sys, time
from sharpscope.utils import folder_lock
with folder_lock(sys.argv[1], command="train"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_train_into_a_locked_folder_names_the_first(tmp_path, cli_runner, cli_app):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = cli_runner.invoke(
            cli_app,
            ["train", "--out", str(out), "--data", DATA, "--epochs", "1", "--device", "cpu", "-q"],
        )
        assert res.exit_code != 0
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), res.output
        assert f"pid {holder.pid}" in lines[0] and "train" in lines[0]
        assert not (out / "epoch_000.pt").exists()
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- 4. divergence
def test_divergence_on_the_last_step_of_an_epoch_is_caught(tmp_path):
    out = tmp_path / "run"
    kw = {**QUICK, "lr": 1e30, "batch_size": 96, "momentum": 0.0, "weight_decay": 0.0}
    with pytest.raises(NonFiniteLossError, match="end of epoch 1") as exc:
        train(**kw, epochs=3, out=out)
    assert "keeps epoch 0" in str(exc.value)
    assert not (out / "final.pt").exists()
    assert not (out / "epoch_001.pt").exists()
    kept = load_checkpoint(out / "last.pt")
    assert kept.resume["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in kept.state_dict.values())


def test_non_finite_inputs_are_named_as_data(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    x[3, 1] = np.nan
    x[7, 0] = np.inf
    y = np.arange(40) % 3
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    with pytest.raises(DataError, match="has 2 non-finite values in the training inputs"):
        train(**{**QUICK, "data": f"tensors:{f}"}, epochs=1, out=tmp_path / "run")
    assert not (tmp_path / "run").exists() or _files(tmp_path / "run") == []


def test_out_of_range_label_prints_its_value(tmp_path):
    from sharpscope.data import load_data

    splits = load_data(DATA)
    splits.y_train[5] = 12
    with pytest.raises(SharpscopeError, match=r"label 12 at index 5 is outside 0\.\.\d+"):
        train(**{**QUICK, "data": splits}, epochs=1, out=tmp_path / "run")
    assert not (tmp_path / "run" / "epoch_000.pt").exists()


# ----------------------------------------------------------------------------- 5. metrics, samples, rho
def test_metrics_jsonl_is_strict_json_and_empty_test_split_says_so(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = np.arange(40) % 3
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    res = train(**{**QUICK, "data": f"tensors:{f}"}, epochs=2, out=tmp_path / "run")
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
        assert rec["test_loss"] is None and rec["test_acc"] is None
        assert math.isfinite(rec["train_loss"])
    summary = res.summary()
    assert summary["best_test_acc"] is None and summary["note"] == "no test data"
    json.dumps(summary, allow_nan=False)


def test_samples_zero_means_all_samples_as_in_the_probes(tmp_path):
    a = train(**QUICK, epochs=1, out=tmp_path / "a", samples=0)
    b = train(**QUICK, epochs=1, out=tmp_path / "b")
    assert _equal(_weights(a.final_path), _weights(b.final_path))
    with pytest.raises(SharpscopeError, match="samples"):
        train(**QUICK, epochs=1, out=tmp_path / "c", samples=-1)


@pytest.mark.parametrize("opt", ["sam", "asam", "xsam"])
def test_rho_zero_is_refused_and_points_to_sgd(tmp_path, opt):
    with pytest.raises(SharpscopeError, match=r"rho.*0.*optimizer sgd"):
        train(**QUICK, optimizer=opt, rho=0.0, epochs=1, out=tmp_path / "run")
    assert not (tmp_path / "run" / "epoch_000.pt").exists()


# ----------------------------------------------------------------------------- CLI
def _cli(cli_runner, cli_app, *args):
    res = cli_runner.invoke(cli_app, ["train", "--device", "cpu", "-q", "--data", DATA, *args])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    return res, lines


def test_cli_force_with_unknown_model_keeps_the_old_run(cli_runner, cli_app, tmp_path):
    out = tmp_path / "run"
    res, _ = _cli(cli_runner, cli_app, "--out", str(out), "--epochs", "1")
    assert res.exit_code == 0, res.output
    before = _snapshot(out)
    res, lines = _cli(
        cli_runner, cli_app, "--out", str(out), "--epochs", "1", "--force", "--model", "nope"
    )
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "nope" in lines[0]
    assert _snapshot(out) == before


@pytest.mark.parametrize("opt", ["sam", "asam", "xsam"])
def test_cli_rho_zero_is_one_error_line(cli_runner, cli_app, tmp_path, opt):
    res, lines = _cli(
        cli_runner, cli_app, "--out", str(tmp_path / "r"), "--optimizer", opt, "--rho", "0"
    )
    assert res.exit_code != 0 and len(lines) == 1, res.output
    assert lines[0].startswith("error: rho must be > 0") and "--optimizer sgd" in lines[0]


def test_cli_empty_test_split_prints_no_test_data(cli_runner, cli_app, tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = np.arange(40) % 3
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    res = cli_runner.invoke(
        cli_app,
        ["train", "--device", "cpu", "--data", f"tensors:{f}", "--epochs", "1"]
        + ["--out", str(tmp_path / "r"), "--json", str(tmp_path / "s.json")],
    )
    assert res.exit_code == 0, res.output
    assert "test: no test data" in res.output and "test loss 0.0000" not in res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["final"]["test_loss"] is None and summary["note"] == "no test data"


def test_cli_nan_inputs_are_blamed_on_the_data(cli_runner, cli_app, tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    x[0, 0] = np.nan
    y = np.arange(40) % 3
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    res = cli_runner.invoke(
        cli_app,
        ["train", "--device", "cpu", "-q", "--data", f"tensors:{f}", "--out", str(tmp_path / "r")],
    )
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0 and len(lines) == 1, res.output
    assert "non-finite values in the training inputs" in lines[0] and "lr" not in lines[0]


# ----------------------------------------------------------------------------- 7. kill tests
KILL_ARGS = [
    "--model",
    "mlp",
    "--model-kwargs",
    '{"hidden": [32]}',
    "--data",
    "digits",
    "--samples",
    "256",
    "--batch-size",
    "16",
    "--epochs",
    "3",
    "--device",
    "cpu",
    "--quiet",
]


def _train_proc(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sharpscope_cli.app import main; main()",
            "train",
            "--out",
            str(out),
            *KILL_ARGS,
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = _train_proc(out)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


def _kill_and_resume(out: Path, reference: Path, wait_for: str, sig: int, delay: float) -> None:
    p = _train_proc(out)
    deadline = time.monotonic() + 120
    while not (out / wait_for).exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    p.send_signal(sig)
    p.communicate(timeout=60)
    if p.returncode == 0:  # finished before the signal landed: nothing to resume
        assert (out / "final.pt").exists()
    elif not (out / "final.pt").exists():  # final.pt is the run's last write
        r = _train_proc(out, "--resume")
        _, err = r.communicate(timeout=300)
        assert r.returncode == 0, err
    assert _files(out) == _files(reference)
    for name in _files(reference):
        if name.endswith(".pt"):
            assert _equal(_weights(out / name), _weights(reference / name)), name
    lines = (out / "metrics.jsonl").read_text().splitlines()
    ref_lines = (reference / "metrics.jsonl").read_text().splitlines()
    drop = lambda rec: {k: v for k, v in json.loads(rec).items() if k != "seconds"}  # noqa: E731
    assert [drop(r) for r in lines] == [drop(r) for r in ref_lines]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "int"])
def test_kill_between_checkpoint_writes_then_resume_is_bit_identical(tmp_path, reference_run, sig):
    # epoch_001.pt has just appeared: last.pt of epoch 1 is being (or about to be) written
    _kill_and_resume(tmp_path / "run", reference_run, "epoch_001.pt", sig, 0.0)


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_is_bit_identical(tmp_path, reference_run):
    import random

    rng = random.Random(11)
    for i in range(12):
        wait_for = rng.choice(
            ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt", "last.pt", "metrics.jsonl"]
        )
        sig = rng.choice([signal.SIGKILL, signal.SIGINT])
        _kill_and_resume(tmp_path / f"run{i}", reference_run, wait_for, sig, rng.random() * 0.3)

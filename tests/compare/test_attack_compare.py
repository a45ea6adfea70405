"""``sharpscope compare``/``demo`` under attack: failed --force, two writers, damaged caches,
forged files, killed writers. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sharpscope.compare import compare
from sharpscope.errors import SharpscopeError

from .test_compare import TINY, train_runs

CLI_TINY = [
    "--samples",
    "96",
    "--batch-size",
    "64",
    "--top-k",
    "2",
    "--range",
    "-1:1:5",
    "--range2d",
    "-1:1:3",
    "--directions-count",
    "2",
    "--trace-probes",
    "4",
    "--device",
    "cpu",
    "--quiet",
]
# summary.json fields that legitimately differ between two runs of the same comparison
TIMING_FIELDS = (
    ("environment", "date"),
    ("settings", "reused_probes"),
    ("settings", "computed_probes"),
)


COST_FIELDS = ("seconds", "hvp_count")


def _drop_seconds(obj):
    """Without every probe's costs: wall-clock ``seconds`` and ``hvp_count``, which counts the
    auto backend's timing products only in the process that paid for them (issue 16)."""
    if isinstance(obj, dict):
        return {k: _drop_seconds(v) for k, v in obj.items() if k not in COST_FIELDS}
    if isinstance(obj, list):
        return [_drop_seconds(v) for v in obj]
    return obj


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def numbers(summary_path: Path) -> dict:
    """summary.json without its timing fields, the report folder's own path replaced."""
    text = summary_path.read_text().replace(str(summary_path.parent), "OUT")
    summary = json.loads(text)
    for outer, inner in TIMING_FIELDS:
        summary[outer].pop(inner, None)
    return _drop_seconds(summary)


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str) -> Result:
    """The ``sharpscope`` command, in this process (imports are paid once per test run)."""
    from sharpscope_cli.app import app
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Result(res.exit_code, res.stdout, res.stderr)


def cli_process(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [shutil.which("sharpscope") or "sharpscope", *args], env=env, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    return train_runs(tmp_path_factory.mktemp("runs"), ("sgd", "sam"))


@pytest.fixture(scope="module")
def base(runs, tmp_path_factory) -> Path:
    """A finished CLI report (the reference every recovered report must equal)."""
    out = tmp_path_factory.mktemp("base") / "report"
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    return out


def fresh_copy(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    shutil.copytree(base, out)
    return out


# ----------------------------------------------------------------------------- 1. --force
def test_failed_force_leaves_the_report_byte_identical(runs, base, tmp_path):
    out = fresh_copy(base, tmp_path)
    before = snapshot(out)
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    res = cli("compare", str(runs[0]), str(bad), "--out", str(out), "--force", *CLI_TINY)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "broken.pt" in lines[0]
    assert snapshot(out) == before


def test_failed_force_on_incomparable_checkpoints_keeps_the_report(runs, base, tmp_path):
    other = train_runs(tmp_path / "other", ("sgd",), hidden=(6,), epochs=1)[0]
    out = fresh_copy(base, tmp_path)
    before = snapshot(out)
    with pytest.raises(SharpscopeError):
        compare([runs[0], other], out=out, force=True, **TINY)
    assert snapshot(out) == before


def test_failed_compare_into_a_new_folder_leaves_nothing(runs, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 10)
    out = tmp_path / "new" / "report"
    with pytest.raises(SharpscopeError):
        compare([runs[0], bad], out=out, **TINY)
    assert not out.exists()


def test_failed_demo_force_touches_no_run(tmp_path):
    from sharpscope.demo import run_demo

    out = tmp_path / "demo"
    for name in ("sgd", "sam", "xsam"):
        (out / name).mkdir(parents=True)
        (out / name / "final.pt").write_bytes(b"the old run " + name.encode())
    before = snapshot(out)
    figs = tmp_path / "figures"
    figs.write_text("a file where the figures folder should be")
    with pytest.raises(SharpscopeError, match="figures"):
        run_demo(out=out, quick=True, device="cpu", quiet=True, figures_dir=figs, force=True)
    assert snapshot(out) == before
    with pytest.raises(SharpscopeError, match="device"):
        run_demo(out=out, quick=True, device="nonsense", quiet=True, force=True)
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- 2. two writers
HOLDER = """
import sys, time, pathlib, torch
torch.set_num_threads(1)
import sharpscope.compare as c
def slow(*a, **k):
    pathlib.Path(sys.argv[3]).write_text("started")
    time.sleep(120)
import sharpscope.compare.probes as probes
probes.probe_metrics = slow  # run.py looks each probe up in sharpscope.compare.probes
c.compare([sys.argv[1]], out=sys.argv[2], samples=96, batch_size=64, device="cpu", quiet=True,
          probes=["metrics"])
"""


def test_second_compare_on_the_same_folder_is_refused(runs, tmp_path):
    out, flag = tmp_path / "report", tmp_path / "started"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(runs[0]), str(out), str(flag)], env=env
    )
    try:
        deadline = time.time() + 120
        while not flag.exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert flag.exists(), "the first compare never started"
        second = cli_process(
            "compare",
            *map(str, runs),
            "--out",
            str(out),
            *CLI_TINY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, stderr = second.communicate(timeout=300)
        res = Result(second.returncode, "", stderr)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
        assert "compare" in lines[0] and f"pid {first.pid}" in lines[0]
        assert not (out / "cache" / "sam").exists()  # the second touched nothing
    finally:
        first.kill()
        first.wait()


# ----------------------------------------------------------------------------- 3. damaged caches
def _deep(n: int) -> str:
    return "[" * n + "]" * n


DAMAGE = {
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "wrong-top-type": lambda p: p.write_text("[1, 2, 3]"),
    "deep-nesting": lambda p: p.write_text(_deep(100_000)),
    "deep-but-parsable": lambda p: p.write_text(
        json.dumps({**json.loads(p.read_text()), "result": json.loads(_deep(500))})
    ),
    "huge-integer": lambda p: p.write_text('{"key": ' + "9" * 100_000 + "}"),
    "nan": lambda p: p.write_text(
        p.read_text().replace('"lambda_max": ', '"lambda_max": NaN, "x": ', 1)
    ),
}


def _wrong_type(path: Path) -> None:
    rec = json.loads(path.read_text())
    rec["result"]["lambda_max"] = "huge"
    rec["result"]["eigenvalues"] = {"a": 1}
    path.write_text(json.dumps(rec))


DAMAGE["wrong-field-types"] = _wrong_type


def _fast_first(cases: list, fast: object) -> list:
    """One case per kind of damage runs by default; the others are ``slow`` (each case
    is a full CLI compare of a few seconds)."""
    return [
        c
        if c == fast
        else pytest.param(*c, marks=pytest.mark.slow)
        if isinstance(c, tuple)
        else pytest.param(c, marks=pytest.mark.slow)
        for c in cases
    ]


@pytest.mark.parametrize("kind", _fast_first(sorted(DAMAGE), "nan"))
def test_damaged_json_cache_is_recomputed(base, runs, tmp_path, kind):
    out = fresh_copy(base, tmp_path)
    target = out / "cache" / "sam" / "eigen.json"
    DAMAGE[kind](target)
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    notices = [ln for ln in res.stderr.splitlines() if ln.startswith("notice:")]
    assert len(notices) == 1, res.stderr
    assert notices[0].startswith(f"notice: ignoring damaged cache {target} (")
    assert notices[0].endswith("); recomputing")
    assert "Traceback" not in res.stderr and "error" not in res.stderr
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


def _damage_npz(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _npz_wrong_shapes(path: Path) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["loss"] = arrays["loss"].reshape(-1)[:2]
    np.savez(path, **arrays)


def _meta_wrong_type(path: Path) -> None:
    meta = json.loads((path.parent / "meta.json").read_text())
    meta["signature"] = ["not", "a", "dict"]
    (path.parent / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "where,damage",
    _fast_first(
        [
            ("sam/slice2d", _damage_npz),
            ("sam/plane", _npz_wrong_shapes),
            ("sgd/slice2d", _meta_wrong_type),
            ("sgd/slice1d/directions/001", _damage_npz),
        ],
        ("sgd/slice1d/directions/001", _damage_npz),
    ),
)
def test_damaged_surface_is_recomputed(base, runs, tmp_path, where, damage):
    out = fresh_copy(base, tmp_path)
    folder = out / "cache" / where
    damage(folder / "surface.npz")
    # the probe's JSON is gone too (a kill before it was written): the grid resumes
    probe = where.split("/")[1]
    (out / "cache" / where.split("/")[0] / f"{probe}.json").unlink()
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    notices = [ln for ln in res.stderr.splitlines() if ln.startswith("notice:")]
    assert notices == [
        f"notice: ignoring damaged cache {folder / 'surface.npz'} (" + notices[0].split(" (", 1)[1]
    ]
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


def test_damaged_surface_of_a_cached_probe_is_recomputed(base, runs, tmp_path):
    """The report draws the 2D slice from its grid: a hit whose grid is damaged is a miss."""
    out = fresh_copy(base, tmp_path)
    _damage_npz(out / "cache" / "sam" / "slice2d" / "surface.npz")
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("notice: ignoring damaged cache") == 1, res.stderr
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


@pytest.mark.parametrize(
    "name",
    _fast_first(
        [
            "directions.pt",
            "cache/sam/owner.json",
            "figures/index.json",
            "cache/pairs/sgd__sam/interpolation.json",
        ],
        "directions.pt",
    ),
)
def test_other_damaged_files_are_recomputed(base, runs, tmp_path, name):
    out = fresh_copy(base, tmp_path)
    (out / name).write_bytes(b"\xff\xfe garbage \x00" * 10)
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


def test_damaged_settings_need_force_and_force_recovers(base, runs, tmp_path):
    out = fresh_copy(base, tmp_path)
    (out / "settings.json").write_bytes(b"\x80\x81 binary")
    for sub in ("cache/sgd/trace.json", "cache/sam/slice1d/surface.npz"):
        (out / sub).write_bytes(b"\x80" * 64)
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:")
    assert "settings.json is damaged" in lines[0] and "--force" in lines[0]
    res = cli("compare", *map(str, runs), "--out", str(out), "--force", *CLI_TINY)
    assert res.returncode == 0, res.stderr
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


# ----------------------------------------------------------------------------- 4. nothing runs
def test_forged_caches_and_summary_never_run_anything(base, runs, tmp_path):
    out = fresh_copy(base, tmp_path)
    marker = tmp_path / "MARKER"
    evil = {"model": "os:system", "kwargs": {"command": f"touch {marker}"}, "import": "os:system"}
    for path in (out / "cache" / "sgd").glob("*.json"):
        rec = json.loads(path.read_text())
        if isinstance(rec.get("result"), dict):
            rec["result"].update(evil)
            rec["result"]["surface_dir"] = str(tmp_path / "elsewhere")
        path.write_text(json.dumps(rec))
    summary = json.loads((out / "summary.json").read_text())
    summary["settings"].update(evil)
    summary["checkpoints"] = ["os:system"]
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "cache" / "sgd" / "owner.json").write_text(json.dumps(evil))
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    assert not (tmp_path / "elsewhere").exists()
    assert numbers(out / "summary.json") == numbers(base / "summary.json")


# ----------------------------------------------------------------------------- 5. stale tmp
def test_killed_writers_temporary_files_are_removed(base, runs, tmp_path):
    out = fresh_copy(base, tmp_path)
    stale = [
        out / ".summary.json.a1b2c3.tmp",  # the old form, without a pid
        out / "cache" / "sam" / ".eigen.json.99999999.x_y9.tmp",  # a dead writer's
        out / "cache" / "sgd" / "slice2d" / ".surface.npz.99999998.abc.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half written")
    res = cli("compare", *map(str, runs), "--out", str(out), *CLI_TINY)
    assert res.returncode == 0, res.stderr
    assert [p for p in stale if p.exists()] == []
    assert snapshot(out).keys() == snapshot(base).keys()


# ----------------------------------------------------------------------------- 6. kill -9
def _kill_and_rerun(runs: list[Path], base: Path, out: Path, when) -> None:
    args = ["compare", *map(str, runs), "--out", str(out), *CLI_TINY]
    proc = cli_process(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        when(proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert numbers(out / "summary.json") == numbers(base / "summary.json")
    assert snapshot(out).keys() == snapshot(base).keys()


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.time() + limit
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def test_sigkill_mid_compare_then_rerun_is_identical(runs, base, tmp_path):
    out = tmp_path / "report"
    # killed right after the first model's Hessian numbers were cached, mid-way through
    _kill_and_rerun(runs, base, out, lambda p: _wait_for(out / "cache" / "sgd" / "eigen.json", p))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_sigkill_at_random_moments(runs, base, tmp_path, trial):
    rng = random.Random(trial)
    out = tmp_path / "report"
    delay = rng.uniform(1.5, 9.0)  # import, loading, every probe, the figures
    _kill_and_rerun(runs, base, out, lambda p: time.sleep(delay))

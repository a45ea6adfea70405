"""Output folders: one writer at a time, and unwritable outputs fail before any work."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sharpscope import get_loss
from sharpscope.errors import FolderLockedError
from sharpscope.landscape import evaluate_grid, random_directions
from sharpscope.landscape.multi import evaluate_slices_1d
from sharpscope.plane import xsam_plane

from .conftest import make_model, write_checkpoint

CE = get_loss("cross_entropy")
KW = {"hidden": [8]}
FAST = ["--samples", "32", "--batch-size", "32", "--quiet"]


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/out (a first writer, still running)."""
    folder = tmp_path / "out"
    code = textwrap.dedent(
        """
        import sys, time
        from sharpscope.utils import folder_lock
        with folder_lock(sys.argv[1], command="slice"):
            print("locked", flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield folder, proc.pid
    finally:
        proc.kill()
        proc.wait()


def _lib_calls(batches):
    model = make_model("mlp", KW)
    d = random_directions(model, count=2, seed=0).resolve(model)
    ax = np.linspace(-1, 1, 3)
    return {
        "grid": lambda out: evaluate_grid(model, CE, batches, d, [ax, ax], out_dir=out, quiet=True),
        "slices": lambda out: evaluate_slices_1d(
            model, CE, batches, d, ax, out_dir=out, quiet=True
        ),
        "plane": lambda out: xsam_plane(
            model,
            CE,
            batches,
            rho=0.05,
            grid=(-0.1, 0.1, 3),
            worst_steps=1,
            restarts=0,
            out_dir=out,
            quiet=True,
        ),
    }


@pytest.mark.parametrize("which", ["grid", "slices", "plane"])
def test_library_writers_refuse_a_locked_folder(holder, batches, which):
    folder, pid = holder
    with pytest.raises(FolderLockedError, match=f"pid {pid}"):
        _lib_calls(batches)[which](folder)
    assert not (folder / "surface.npz").exists()


def _cli_args(kind, tmp_path, out):
    a = write_checkpoint(tmp_path / "a.pt", make_model("mlp", KW, seed=0), "mlp", KW)
    if kind == "slice":
        return ["slice", str(a), "--range", "-1:1:3", "--out", str(out), *FAST]
    if kind == "interpolate":
        b = write_checkpoint(tmp_path / "b.pt", make_model("mlp", KW, seed=1), "mlp", KW)
        return ["interpolate", str(a), str(b), "--range", "0:1:3", "--out", str(out), *FAST]
    return [
        "plane",
        str(a),
        "--rho",
        "0.05",
        "--range",
        "-0.1:0.1:3",
        "--out",
        str(out),
        "--samples",
        "32",
        "--batch-size",
        "32",
        "--quiet",
    ]


@pytest.mark.parametrize("kind", ["slice", "interpolate", "plane"])
def test_cli_second_writer_gets_one_error_line_naming_the_first(
    cli_runner, cli_app, holder, tmp_path, kind
):
    folder, pid = holder
    r = cli_runner.invoke(cli_app, _cli_args(kind, tmp_path, folder))
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert f"pid {pid}" in lines[0] and "slice" in lines[0] and str(folder) in lines[0]


def test_trajectory_refuses_a_locked_folder(cli_runner, cli_app, run_folder, tmp_path):
    folder = tmp_path / "out"
    code = (
        "import sys,time\nfrom sharpscope.utils import folder_lock\n"
        "with folder_lock(sys.argv[1], command='plane'):\n print('locked', flush=True)\n"
        " time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        r = cli_runner.invoke(
            cli_app, ["trajectory", str(run_folder), "--points", "3", "--out", str(folder), *FAST]
        )
    finally:
        proc.kill()
        proc.wait()
    assert r.exit_code != 0 and f"pid {proc.pid}" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", ["save-directions", "json", "out"])
def test_unwritable_outputs_fail_before_the_work(cli_runner, cli_app, tmp_path, bad):
    a = write_checkpoint(tmp_path / "a.pt", make_model("mlp", KW, seed=0), "mlp", KW)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    out = tmp_path / "out"
    args = ["slice", str(a), "--range", "-1:1:3", "--out", str(out), *FAST]
    if bad == "save-directions":
        args += ["--save-directions", str(folder)]
        named = str(folder)
    elif bad == "json":
        args += ["--json", str(afile / "s.json")]
        named = str(afile / "s.json")
    else:
        args[args.index(str(out))] = str(afile)
        named = str(afile)
    r = cli_runner.invoke(cli_app, args)
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], r.output
    assert ".tmp" not in lines[0]
    assert not (out / "surface.npz").exists()  # nothing was computed

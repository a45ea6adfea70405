"""CLI-wide error handling (issue 11): usage errors, Ctrl-C at start-up, outputs checked
before the work, and plain sentences instead of "unexpected X"."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
SCRIPT = VENV_BIN / "sharpscope"

USAGE = [
    (
        ["train", "--epoch", "3"],
        "error: no such option --epoch (did you mean --epochs?); see 'sharpscope train --help'",
    ),
    (["eigen"], "error: missing argument CHECKPOINT; see 'sharpscope eigen --help'"),
    (["esd"], "error: missing argument CHECKPOINT; see 'sharpscope esd --help'"),
    (
        ["eigne", "x.pt"],
        "error: no such command 'eigne' (did you mean 'eigen'?); see 'sharpscope --help'",
    ),
    (
        ["trace", "x.pt", "--probes"],
        "error: option '--probes' requires an argument; see 'sharpscope trace --help'",
    ),
]


@pytest.mark.parametrize(("args", "line"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line_exit_2(cli_runner, cli_app, args, line):
    r = cli_runner.invoke(cli_app, args)
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [line] and r.stdout == ""


@pytest.mark.parametrize(
    ("args", "option", "command"),
    [
        (["train", "--epochs", "abc"], "--epochs", "train"),
        (["eigen", "x.pt", "--top-k", "two"], "--top-k", "eigen"),
        (["slice", "x.pt", "--batch-size", "1.5"], "--batch-size", "slice"),
        (["trace", "x.pt", "--tol", "1"], None, "trace"),  # unknown option for trace
    ],
)
def test_bad_values_name_the_option_and_the_help(cli_runner, cli_app, args, option, command):
    r = cli_runner.invoke(cli_app, args)
    lines = r.stderr.splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error: ") and "Usage" not in r.output and "│" not in r.output
    assert lines[0].endswith(f"; see 'sharpscope {command} --help'")
    if option:
        assert lines[0].startswith(f"error: invalid value for {option}: ")
    else:
        assert lines[0].startswith("error: no such option --tol")


def _run(args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **kw)


def test_console_script_usage_error_is_one_line(tmp_path):
    r = _run([str(SCRIPT), "train", "--epoch", "3"], cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "error: no such option --epoch (did you mean --epochs?); see 'sharpscope train --help'"
    ]


# Ctrl-C while torch is being imported: the hook raises SIGINT at the moment `import torch`
# starts, which is exactly what a user pressing Ctrl-C during start-up produces.
_HOOK = """
import builtins, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also when the
# test runner itself was started in the background with SIGINT ignored (inherited)
real = builtins.__import__
def hooked(name, *args, **kwargs):
    if name == "torch":
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = hooked
sys.argv = ["sharpscope", "eigen", "model.pt"]
from sharpscope_cli.app import main
main()
"""


def test_ctrl_c_while_importing_torch_is_one_line_exit_130(tmp_path):
    r = _run([sys.executable, "-c", _HOOK], cwd=tmp_path)
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines() == ["interrupted while starting up: nothing was done"]
    assert r.stdout == ""


def _wait_until_importing_torch(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the command has started loading torch's libraries: by then the interpreter
    and the CLI are up, and sharpscope's own start-up handles the signal. (A signal during
    the interpreter's own start-up, before any of sharpscope's code, kills Python itself.)"""
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if "libtorch" in maps.read_text():
                return
        except OSError:
            break
        time.sleep(0.002)
    if not maps.parent.exists():
        time.sleep(0.3)  # no /proc (not Linux): the old guess


def test_real_sigint_during_start_up_is_one_line_exit_130(tmp_path):
    proc = subprocess.Popen(
        [str(SCRIPT), "eigen", "missing.pt"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # a runner started in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_until_importing_torch(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 1 and err.startswith("error: no such file"):
        pytest.skip("the command finished before the signal arrived (very fast machine)")
    assert proc.returncode == 130, err
    assert len(err.splitlines()) == 1 and err.startswith("interrupted"), err
    assert "Traceback" not in err and out == ""


# ----------------------------------------------------------------------------- outputs
@pytest.fixture
def ckpt(tmp_path):
    import torch

    from sharpscope.checkpoint import save_checkpoint
    from sharpscope.models import build_model

    torch.manual_seed(0)
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=[4])
    return save_checkpoint(
        tmp_path / "m.pt",
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [4]}},
        input_shape=(1, 4, 4),
        num_classes=3,
        data_spec="synthetic:train=48,test=8,classes=3,shape=1x4x4",
        optimizer={"name": "sgd", "hparams": {"lr": 0.1}},
        seed=0,
    )


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a probe starts: the outputs must be checked before the work."""
    import sharpscope.hessian.probe as probe

    def boom(*a, **k):
        raise AssertionError("the work started before the outputs were checked")

    for name in ("probe_eigen", "probe_trace", "probe_esd"):
        monkeypatch.setattr(probe, name, boom)


def _one_error(r) -> str:
    lines = r.stderr.splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert ".tmp" not in lines[0] and "unexpected" not in lines[0]
    return lines[0]


def test_json_folder_is_refused_before_the_work(cli_runner, cli_app, ckpt, tmp_path, no_work):
    folder = tmp_path / "outdir"
    folder.mkdir()
    line = _one_error(cli_runner.invoke(cli_app, ["eigen", str(ckpt), "--json", str(folder)]))
    assert line == f"error: --json {folder} is a folder; give a file name"
    assert os.listdir(folder) == []


@pytest.mark.parametrize("command", ["eigen", "trace", "esd", "info"])
def test_json_in_proc_is_refused_with_the_users_path(cli_runner, cli_app, ckpt, command, no_work):
    line = _one_error(cli_runner.invoke(cli_app, [command, str(ckpt), "--json", "/proc/x.json"]))
    assert line.startswith("error: cannot write --json /proc/x.json: cannot create files in /proc")


def test_json_under_a_file_is_refused(cli_runner, cli_app, ckpt, tmp_path, no_work):
    line = _one_error(
        cli_runner.invoke(cli_app, ["trace", str(ckpt), "--json", str(ckpt / "x.json")])
    )
    assert line == f"error: cannot write --json {ckpt / 'x.json'}: {ckpt} is a file, not a folder"


def test_save_vectors_and_plot_folders_are_refused(cli_runner, cli_app, ckpt, tmp_path, no_work):
    line = _one_error(
        cli_runner.invoke(cli_app, ["eigen", str(ckpt), "--save-vectors", str(tmp_path)])
    )
    assert line == f"error: --save-vectors {tmp_path} is a folder; give a file name"
    line = _one_error(cli_runner.invoke(cli_app, ["esd", str(ckpt), "--html", "/proc/d.html"]))
    assert "--html /proc/d.html" in line
    line = _one_error(cli_runner.invoke(cli_app, ["esd", str(ckpt), "--plot", str(tmp_path)]))
    assert line == f"error: --plot {tmp_path} is a folder; give a file name"


def test_json_dash_still_goes_to_stdout(cli_runner, cli_app, ckpt):
    r = cli_runner.invoke(cli_app, ["info", str(ckpt), "--json", "-"])
    assert r.exit_code == 0 and r.stdout.lstrip().startswith("{")


def test_check_outputs_folders(tmp_path):
    from sharpscope_cli._common import check_outputs

    from sharpscope.errors import SharpscopeError

    (tmp_path / "file").write_text("x")
    with pytest.raises(SharpscopeError, match=r"^--out .*file is a file; give a folder$"):
        check_outputs(folders={"--out": tmp_path / "file"})
    with pytest.raises(SharpscopeError, match="cannot write --out /proc/new/run: cannot create"):
        check_outputs(folders={"--out": Path("/proc/new/run")})
    check_outputs(folders={"--out": tmp_path / "new" / "run"}, files={"--json": None})
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert sorted(os.listdir(tmp_path)) == ["file"]


# ----------------------------------------------------------------------------- plain sentences
def _tmp_name(folder: Path, name: str) -> str:
    return str(folder / f".{name}.{os.getpid()}.abc123.tmp")


def _describe(exc: BaseException) -> str:
    from sharpscope_cli._common import describe_error

    try:
        raise exc
    except BaseException as raised:  # give it a traceback
        return describe_error(raised)


def test_os_errors_name_the_cause_and_the_users_path(tmp_path):
    tmp = _tmp_name(tmp_path, "out.json")
    assert _describe(OSError(errno.ENOSPC, "No space left on device", tmp)) == (
        f"no space left on the device while writing {tmp_path / 'out.json'}"
    )
    assert _describe(OSError(errno.EROFS, "Read-only file system", "/ro/x")) == (
        "read-only file system: /ro/x"
    )
    assert _describe(PermissionError(errno.EACCES, "Permission denied", "/a/b")) == (
        "permission denied: /a/b"
    )
    assert _describe(OSError(errno.EMFILE, "Too many open files", "f.pt")).startswith(
        "too many open files"
    )
    assert _describe(OSError(errno.EIO, "Input/output error")) == (
        "system error: input/output error (a failing disk or network file system?)"
    )
    assert _describe(OSError(errno.EHOSTDOWN, "Host is down", "/mnt/x")) == ("host is down: /mnt/x")


def test_other_errors_are_plain_sentences(tmp_path):
    assert _describe(MemoryError()).startswith("out of memory: lower --batch-size")
    assert _describe(RecursionError("maximum recursion depth exceeded")).startswith(
        "the input is nested too deeply"
    )
    assert _describe(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x16 and 25x8)")) == (
        "the model cannot take this data: mat1 and mat2 shapes cannot be multiplied (4x16 and 25x8)"
    )
    assert _describe(KeyError("boom")) == (
        "internal error in sharpscope (KeyError: 'boom'); please report it with "
        "SHARPSCOPE_DEBUG=1 output"
    )


def test_unicode_error_names_the_file(tmp_path):
    from sharpscope_cli._common import describe_error

    path = tmp_path / "labels.txt"
    path.write_bytes(b"ok\xff\xfe")

    def read(path):
        return path.read_text(encoding="utf-8")

    try:
        read(path)
    except UnicodeDecodeError as exc:
        msg = describe_error(exc)
    assert msg == f"{path} is not UTF-8 text (byte 0xff at offset 2)"


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        RecursionError("maximum recursion depth exceeded"),
        OSError(errno.ENOSPC, "No space left on device", "/x/.out.json.12.ab.tmp"),
        RuntimeError("size mismatch for net.1.weight"),
        ZeroDivisionError("division by zero"),
    ],
    ids=["memory", "recursion", "enospc", "shape", "other"],
)
def test_user_errors_never_says_unexpected(exc, capsys, monkeypatch):
    import typer
    from sharpscope_cli._common import user_errors

    monkeypatch.delenv("SHARPSCOPE_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as info, user_errors():
        raise exc
    err = capsys.readouterr().err.splitlines()
    assert info.value.exit_code == 1 and len(err) == 1 and err[0].startswith("error: ")
    assert "unexpected" not in err[0] and ".tmp" not in err[0]
    monkeypatch.setenv("SHARPSCOPE_DEBUG", "1")
    with pytest.raises(type(exc)), user_errors():
        raise exc

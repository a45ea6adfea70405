"""Issue 16: start-up without torch, the root --threads option, python -m sharpscope_cli."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sharpscope.checkpoint import save_checkpoint
from sharpscope.models import build_model

_PROBE = """
import sys
from sharpscope_cli.app import main
try:
    main({args!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "numpy", "matplotlib", "scipy") if m in sys.modules)
print("HEAVY:", ",".join(heavy))
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["info", "--help"], ["eigen", "--help"]], ids=" ".join
)
def test_help_and_version_do_not_import_torch(args, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=args)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "HEAVY: ", r.stdout[-300:]


def test_version_names_torch_without_importing_it(cli_runner, cli_app):
    from importlib import metadata

    r = cli_runner.invoke(cli_app, ["--version"])
    assert r.exit_code == 0
    assert r.stdout.strip().endswith(f"(torch {metadata.version('torch')})")


def test_python_dash_m_sharpscope_cli(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "sharpscope_cli", "--threads", "0", "info", "x.pt"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == ["error: --threads must be a positive integer, got 0"]


@pytest.fixture
def ckpt(tmp_path):
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=[4])
    return save_checkpoint(
        tmp_path / "m.pt",
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [4]}},
        input_shape=(1, 4, 4),
        num_classes=3,
        data_spec="synthetic:train=48,test=8,classes=3,shape=1x4x4",
    )


@pytest.mark.parametrize("value", ["0", "-2"])
def test_threads_below_one_is_one_error_line(cli_runner, cli_app, ckpt, value):
    r = cli_runner.invoke(cli_app, ["--threads", value, "info", str(ckpt)])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"error: --threads must be a positive integer, got {value}"]


def test_threads_sets_torchs_thread_count_for_the_command(cli_runner, cli_app, ckpt):
    seen = []
    import sharpscope_cli.info as info_module

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        real = info_module.emit_json
        info_module.emit_json = lambda *a, **k: (
            seen.append(torch.get_num_threads()),
            real(*a, **k),
        )
        r = cli_runner.invoke(cli_app, ["--threads", "1", "info", str(ckpt), "-q"])
        assert r.exit_code == 0, r.output
        assert seen == [1] and torch.get_num_threads() == 1
        # without --threads, a count already lowered (here 1) is never raised
        r = cli_runner.invoke(cli_app, ["info", str(ckpt), "-q"])
        assert r.exit_code == 0 and seen == [1, 1]
        # the stored value does not leak into the next invocation
        torch.set_num_threads(2)
        r = cli_runner.invoke(cli_app, ["info", str(ckpt), "-q"])
        assert r.exit_code == 0 and seen[-1] <= 2
    finally:
        info_module.emit_json = real
        torch.set_num_threads(before)


def test_load_note_only_on_a_terminal(cli_runner, cli_app, ckpt, monkeypatch, capsys):
    import sharpscope.runtime.threads as threads

    monkeypatch.setattr(threads, "load_average_note", lambda n: "note: the machine is busy")
    r = cli_runner.invoke(cli_app, ["info", str(ckpt), "-q"])
    assert r.exit_code == 0 and r.stderr == ""  # captured stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    from sharpscope_cli._common import start_threads

    capsys.readouterr()
    start_threads()
    assert capsys.readouterr().err == "note: the machine is busy\n"


def test_fail_removes_terminal_control_sequences(capsys):
    import typer
    from sharpscope_cli._common import fail

    with pytest.raises(typer.Exit):
        fail("bad value '\x1b[2J\x1b]0;title\x07x' in\nfile")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert err.splitlines() == ["error: bad value 'x' in file"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("1000", 1000), ("1.5k", 1536),
     ("2GiB", 2 * 1024**3), ("none", None), ("auto", "auto"), (None, "auto")],
)  # fmt: skip
def test_parse_bytes(text, value):
    from sharpscope_cli._common import parse_bytes

    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["2X", "-1", "0", "G", "1e9"])
def test_parse_bytes_refuses(text):
    from sharpscope_cli._common import parse_bytes

    from sharpscope.errors import SharpscopeError

    with pytest.raises(SharpscopeError, match="--max-memory must be"):
        parse_bytes(text)

"""Text read from a file never reaches the terminal as control sequences (security audit).

A checkpoint's metadata can hold escape sequences (clear screen ``ESC[2J``, window title
``ESC]0;...BEL``), a carriage return that overwrites a line, or a right-to-left override
(U+202E). ``sharpscope info`` and the error messages that quote file content print it
through :func:`sharpscope.runtime.sanitize.printable`.
"""

from __future__ import annotations

import json

import pytest
import torch

from sharpscope.errors import ModelSpecError, SharpscopeError
from sharpscope.problem.checkpoint import load_checkpoint, save_checkpoint
from sharpscope.problem.losses import get_loss
from sharpscope.problem.models import build_model
from sharpscope.runtime.sanitize import printable

CLEAR, TITLE, CR, RLO = "\x1b[2J", "\x1b]0;owned\x07", "\r", "\u202e"
HOSTILE = f"a{CLEAR}b{TITLE}c{CR}d{RLO}e"


def _is_clean(text: str) -> bool:
    """No C0/C1 control (but newline), no ESC, no bidirectional formatting character."""
    return not any(
        (ord(ch) < 32 and ch != "\n")
        or 0x7F <= ord(ch) <= 0x9F
        or ch in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        for ch in text
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOSTILE, "abc de"),
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
        ("a\x9b2Jb\x9d0;t\x9cc", "abc"),  # 8-bit CSI and OSC
        ("a\x1bcb\x1b(Bc", "abc"),  # reset, charset designation
        ("tab\there\nline\r\nend", "tab here line end"),
        ("nul\x00bel\x07del\x7f", "nulbeldel"),
        ("\u2066iso\u2069 \u200fmark", "iso mark"),
        ("héllo, 日本語, ελληνικά, emoji 🙂, × ± µ", "héllo, 日本語, ελληνικά, emoji 🙂, × ± µ"),
        (3.5, "3.5"),
    ],
)
def test_printable(text, expected):
    assert printable(text) == expected


def test_printable_limit():
    assert printable("x" * 10, limit=10) == "x" * 10
    assert printable("x" * 11, limit=10) == "x" * 7 + "..."
    assert printable(f"{CLEAR}abc", limit=3) == "abc"  # the limit counts what is shown


@pytest.fixture
def hostile_ckpt(tmp_path):
    """A checkpoint with escape sequences in every field ``info`` shows."""
    torch.manual_seed(0)
    net = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[4])
    path = save_checkpoint(
        tmp_path / "c.pt",
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [4]}},
        input_shape=(1, 8, 8),
        num_classes=10,
        data_spec="digits",
        optimizer={"name": f"sgd{TITLE}", "hparams": {f"lr{CR}": f"0.1{CLEAR}"}},
        metrics=[{f"train{RLO}_loss": 0.5, "note": HOSTILE}],
    )
    obj = torch.load(path, weights_only=True)
    obj["model"]["name"] = f"mlp{CLEAR}"
    obj["model"]["kwargs"] = {f"hid{TITLE}": f"x{RLO}y"}
    obj["data"]["spec"] = f"digits{CR}cifar10"
    obj["loss"] = f"mse{RLO}"
    obj["seed"] = HOSTILE
    obj["versions"] = {"sharpscope": f"9{CLEAR}", "torch": f"{TITLE}2.0"}
    torch.save(obj, path)
    return path


def test_info_prints_no_control_sequences(cli_runner, cli_app, hostile_ckpt):
    result = cli_runner.invoke(cli_app, ["info", str(hostile_ckpt)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert _is_clean(out), repr(out)
    lines = out.splitlines()
    assert (
        len(lines) == 11
    )  # one line per field (normalize added by issue 15): nothing split or overwritten a line
    shown = {line[:13].strip(): line[13:] for line in lines}
    # names are cleaned; the kwargs dict is shown as Python writes it, escapes spelled out
    assert shown["model"] == "mlp {'hid\\x1b]0;owned\\x07': 'x\\u202ey'}"
    assert shown["data"] == "digits cifar10"
    assert shown["loss"] == "mse"
    assert shown["optimizer"] == "sgd (lr =0.1)"
    assert shown["seed"] == "abc de"
    assert shown["final"] == "train_loss=0.5, note=abc de"
    assert shown["versions"] == "sharpscope 9, torch 2.0"


def test_info_json_keeps_the_data_escaped(cli_runner, cli_app, hostile_ckpt):
    """``--json -`` is data, not display: the values are kept, JSON-escaped."""
    result = cli_runner.invoke(cli_app, ["info", str(hostile_ckpt), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert json.loads(result.stdout)["model"]["name"] == f"mlp{CLEAR}"


def test_error_messages_quoting_file_content_are_printable(tmp_path, hostile_ckpt):
    obj = torch.load(hostile_ckpt, weights_only=True)
    obj["model"]["name"] = f"os:system{CLEAR}{RLO}"
    torch.save(obj, tmp_path / "evil.pt")
    with pytest.raises(ModelSpecError) as info:
        load_checkpoint(tmp_path / "evil.pt").build_model()
    assert _is_clean(str(info.value)) and "'os:system'" in str(info.value)
    assert "pass --model os:system if you trust it" in str(info.value)
    with pytest.raises(SharpscopeError) as info:
        get_loss(f"mse{CLEAR}")
    assert _is_clean(str(info.value)) and "unknown loss" in str(info.value)

    obj = torch.load(hostile_ckpt, weights_only=True)
    obj["format_version"] = f"1{TITLE}"
    torch.save(obj, tmp_path / "version.pt")
    with pytest.raises(SharpscopeError) as info:
        load_checkpoint(tmp_path / "version.pt")
    assert _is_clean(str(info.value)) and "invalid checkpoint format version" in str(info.value)

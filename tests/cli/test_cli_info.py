"""``sharpscope info`` and the CLI's error contract: one ``error:`` line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _fixtures import hostile_cifar_batch, hostile_torch_file, write_cifar10, write_mnist

from sharpscope import __version__
from sharpscope.checkpoint import save_checkpoint
from sharpscope.models import build_model

VENV_PYTHON = Path(sys.executable)


def _net(**kw):
    torch.manual_seed(0)
    return build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[8], **kw)


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A sharpscope checkpoint, a plain state dict, a user-model state dict and a hostile file."""
    net = _net()
    ckpt = save_checkpoint(
        tmp_path / "sam.pt",
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [8]}},
        input_shape=(1, 8, 8),
        num_classes=10,
        data_spec="digits",
        optimizer={"name": "sam", "hparams": {"lr": 0.1, "rho": 0.05}},
        seed=7,
        metrics=[
            {"epoch": 1, "train_loss": 0.75, "test_acc": 0.5},
            {"epoch": 2, "train_loss": 0.5, "test_acc": 0.875},
        ],
    )
    plain = tmp_path / "plain.pt"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 3}, plain
    )
    from _user_models import make_net

    user = tmp_path / "user.pt"
    torch.save(make_net((1, 8, 8), 10, width=5).state_dict(), user)
    hostile = hostile_torch_file(
        tmp_path / "evil.pt", tmp_path / "PWNED", torch.load(ckpt, weights_only=True)
    )
    return {"ckpt": ckpt, "plain": plain, "user": user, "hostile": hostile, "dir": tmp_path}


def _ok(cli_runner, cli_app, args):
    result = cli_runner.invoke(cli_app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_info_on_a_library_checkpoint(cli_runner, cli_app, files):
    out = _ok(cli_runner, cli_app, ["info", files["ckpt"]]).stdout
    assert f"checkpoint   {files['ckpt']}" in out
    assert "model        mlp {'hidden': [8]}" in out
    assert "parameters   610" in out  # 64*8+8 + 8*10+10
    assert "optimizer    sam (lr=0.1, rho=0.05)" in out
    assert "seed         7" in out and "epochs       2" in out
    assert "final        epoch=2, train_loss=0.5, test_acc=0.875" in out
    assert f"sharpscope {__version__}, torch {torch.__version__}" in out


def test_info_json_to_stdout_and_to_a_file(cli_runner, cli_app, files):
    out = _ok(cli_runner, cli_app, ["info", files["ckpt"], "--json", "-"]).stdout
    summary = json.loads(out)  # nothing but JSON on stdout
    assert (
        summary["parameters"] == 610 and summary["format_version"] == 1 and summary["epochs"] == 2
    )
    assert summary["model"] == {
        "name": "mlp",
        "kwargs": {"hidden": [8]},
        "input_shape": [1, 8, 8],
        "num_classes": 10,
    }
    assert summary["final_metrics"] == {"epoch": 2, "train_loss": 0.5, "test_acc": 0.875}
    target = files["dir"] / "out" / "info.json"
    result = _ok(cli_runner, cli_app, ["info", files["ckpt"], "--json", target])
    assert json.loads(target.read_text()) == summary and "parameters" in result.stdout
    assert _ok(cli_runner, cli_app, ["info", files["ckpt"], "--quiet"]).stdout == ""


def test_info_on_a_plain_state_dict_with_model_and_data(cli_runner, cli_app, files):
    args = [
        "info",
        files["plain"],
        "--model",
        "mlp",
        "--model-kwargs",
        '{"hidden": [8]}',
        "--data",
        "digits",
    ]
    out = _ok(cli_runner, cli_app, args).stdout
    assert (
        "(plain state dict)" in out and "parameters   610" in out and "versions     unknown" in out
    )
    summary = json.loads(_ok(cli_runner, cli_app, [*args, "--json", "-"]).stdout)
    assert summary["plain_state_dict"] is True and summary["format_version"] is None
    assert summary["model"]["input_shape"] == [1, 8, 8] and summary["data"]["spec"] == "digits"


def test_info_on_a_user_model_by_import_path(cli_runner, cli_app, files):
    args = [
        "info",
        files["user"],
        "--model",
        "_user_models:make_net",
        "--model-kwargs",
        '{"width": 5}',
        "--data",
        "digits",
        "--json",
        "-",
    ]
    summary = json.loads(_ok(cli_runner, cli_app, args).stdout)
    assert (
        summary["model"]["name"] == "_user_models:make_net"
        and summary["parameters"] == 64 * 5 + 5 + 5 * 10 + 10
    )


def test_info_with_data_from_real_format_files(cli_runner, cli_app, tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)
    net = build_model("cnn", input_shape=(1, 28, 28), num_classes=10, channels=[2])
    torch.save(net.state_dict(), tmp_path / "cnn.pt")
    args = [
        "info",
        tmp_path / "cnn.pt",
        "--model",
        "cnn",
        "--model-kwargs",
        '{"channels": [2]}',
        "--data",
        f"mnist:{tmp_path / 'mnist'}",
        "--json",
        "-",
    ]
    summary = json.loads(_ok(cli_runner, cli_app, args).stdout)
    assert (
        summary["model"]["input_shape"] == [1, 28, 28] and summary["parameters"] == 20 + 2 * 10 + 10
    )


def test_malicious_checkpoint_is_refused_by_info_without_running_it(cli_runner, cli_app, files):
    result = cli_runner.invoke(cli_app, ["info", str(files["hostile"])])
    assert result.exit_code == 1 and "refused to load" in result.output
    assert not (files["dir"] / "PWNED").exists()


def test_malicious_data_files_are_refused_by_info_without_running_them(cli_runner, cli_app, files):
    d = files["dir"]
    hostile_torch_file(d / "evil_data.pt", d / "PWNED_PT", {"x_train": torch.zeros(2, 1)})
    write_cifar10(d / "cifar")
    hostile_cifar_batch(d / "cifar" / "data_batch_1", d / "PWNED_CIFAR")
    for spec, message in (
        (f"tensors:{d / 'evil_data.pt'}", "refused to load"),
        (f"cifar10:{d / 'cifar'}", "refusing to load"),
    ):
        result = cli_runner.invoke(
            cli_app, ["info", str(files["plain"]), "--model", "mlp", "--data", spec]
        )
        assert (
            result.exit_code == 1
            and message in result.stderr
            and len(result.stderr.splitlines()) == 1
        )
    assert not (d / "PWNED_PT").exists() and not (d / "PWNED_CIFAR").exists()


def _error_case(files: dict[str, Path], case: str) -> list[str]:
    d = files["dir"]
    ck, plain = str(files["ckpt"]), str(files["plain"])
    with_model = [plain, "--model", "mlp", "--model-kwargs", '{"hidden": [8]}']
    if case == "corrupt idx":
        write_mnist(d / "mnist")
        (d / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    if case == "cifar foreign pickle":
        write_cifar10(d / "cifar")
        (d / "cifar" / "test_batch").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    if case == "truncated":
        (d / "cut.pt").write_bytes(files["ckpt"].read_bytes()[:500])
    if case == "empty":
        (d / "empty.pt").write_bytes(b"")
    if case == "newer version":
        raw = torch.load(files["ckpt"], weights_only=True)
        raw["format_version"] = 99
        torch.save(raw, d / "future.pt")
    if case == "non-sharpscope pickle":
        (d / "notes.pkl").write_bytes(__import__("pickle").dumps({"a": 1}))
    return {
        "missing file": [str(d / "nope.pt")],
        "folder instead of file": [str(d)],
        "empty": [str(d / "empty.pt")],
        "truncated": [str(d / "cut.pt")],
        "non-sharpscope pickle": [str(d / "notes.pkl")],
        "newer version": [str(d / "future.pt")],
        "plain without model and data": [plain],
        "plain without data": [plain, "--model", "mlp"],
        "unknown model": [plain, "--model", "resnet18", "--data", "digits"],
        "unknown model kwarg": [
            plain,
            "--model",
            "mlp",
            "--model-kwargs",
            '{"depth": 3}',
            "--data",
            "digits",
        ],
        "bad model-kwargs json": [*with_model[:4], "{hidden: 8}", "--data", "digits"],
        "model-kwargs not an object": [*with_model[:4], "[8]", "--data", "digits"],
        "missing module": [plain, "--model", "no_such_pkg.nets:make", "--data", "digits"],
        "missing attr": [plain, "--model", "_user_models:nope", "--data", "digits"],
        "not an nn.Module": [plain, "--model", "_user_models:not_a_module", "--data", "digits"],
        "unknown data source": [*with_model, "--data", "imagenet:/x"],
        "malformed synthetic options": [*with_model, "--data", "synthetic:train=lots"],
        "missing data folder": [*with_model, "--data", f"cifar10:{d / 'nowhere'}"],
        "missing data files": [*with_model, "--data", f"mnist:{d}"],
        "corrupt idx": [*with_model, "--data", f"mnist:{d / 'mnist'}"],
        "cifar foreign pickle": [*with_model, "--data", f"cifar10:{d / 'cifar'}"],
        "shape mismatch": [plain, "--model", "mlp", "--data", "digits"],
        "override data of another shape": [ck, "--data", "synthetic:shape=2x4x4"],
        "override model mismatch": [ck, "--model", "mlp", "--model-kwargs", '{"hidden": [9]}'],
        "override data with more classes": [ck, "--data", "synthetic:classes=12"],
    }[case]


CLI_ERRORS = [
    ("missing file", "no such file"),
    ("folder instead of file", "is a folder, not a checkpoint file"),
    ("empty", "empty.pt is empty"),
    ("truncated", "is not a torch.save file"),
    ("non-sharpscope pickle", "notes.pkl is not a torch.save file"),
    ("newer version", "format version 99 is newer than this sharpscope"),
    ("plain without model and data", "plain state dict: pass --model and --data"),
    ("plain without data", "plain state dict: pass --model and --data"),
    ("unknown model", "unknown model 'resnet18'"),
    ("unknown model kwarg", "model 'mlp' does not take depth"),
    ("bad model-kwargs json", "--model-kwargs is not valid JSON"),
    ("model-kwargs not an object", "--model-kwargs must be a JSON object"),
    ("missing module", "cannot import module 'no_such_pkg.nets'"),
    ("missing attr", "module '_user_models' has no attribute 'nope'"),
    ("not an nn.Module", "returned str, not a torch.nn.Module"),
    ("unknown data source", "unknown data source 'imagenet'"),
    ("malformed synthetic options", "synthetic: bad value for train: 'lots'"),
    ("missing data folder", "cifar10: no such folder"),
    ("missing data files", "missing train images"),
    ("corrupt idx", "not an IDX file (bad magic number)"),
    ("cifar foreign pickle", "refusing to load os.system"),
    ("shape mismatch", "shape differences: net.1.weight [8, 64] vs model [128, 64]"),
    (
        "override data of another shape",
        "built for inputs of shape [1, 8, 8] but data 'synthetic:shape=2x4x4'",
    ),
    ("override model mismatch", "net.1.weight [8, 64] vs model [9, 64]"),
    (
        "override data with more classes",
        "the model has 10 outputs but data 'synthetic:classes=12' has 12 classes",
    ),
]


@pytest.mark.parametrize(("case", "message"), CLI_ERRORS, ids=[c[0] for c in CLI_ERRORS])
def test_info_errors_are_one_line(cli_runner, cli_app, files, case, message):
    result = cli_runner.invoke(cli_app, ["info", *_error_case(files, case)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    assert "unexpected" not in lines[0]  # a known problem, not a crash


def test_unexpected_exceptions_are_one_line_unless_debugging(
    cli_runner, cli_app, files, monkeypatch
):
    import sharpscope.problem.checkpoint

    def crash(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(sharpscope.problem.checkpoint, "load_checkpoint", crash)
    result = cli_runner.invoke(cli_app, ["info", str(files["ckpt"])])
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "error: internal error in sharpscope (KeyError: 'boom'); please report it with SHARPSCOPE_DEBUG=1 output"
    ]
    result = cli_runner.invoke(cli_app, ["info", str(files["ckpt"])], env={"SHARPSCOPE_DEBUG": "1"})
    assert isinstance(result.exception, KeyError)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_python_dash_m_version_and_console_script_help(tmp_path):
    res = _run(str(VENV_PYTHON), "-m", "sharpscope", "--version", cwd=tmp_path)
    assert (
        res.returncode == 0
        and res.stdout.strip() == f"sharpscope {__version__} (torch {torch.__version__})"
    )
    script = VENV_PYTHON.parent / "sharpscope"
    res = _run(str(script), "--help", cwd=tmp_path)
    assert res.returncode == 0 and "info" in res.stdout and "Usage" in res.stdout


def test_console_script_error_exit_code_without_traceback(tmp_path):
    res = _run(str(VENV_PYTHON.parent / "sharpscope"), "info", "missing.pt", cwd=tmp_path)
    assert (
        res.returncode == 1
        and res.stderr.strip() == "error: no such file: missing.pt"
        and res.stdout == ""
    )

"""Nothing read from a file is ever imported or called (security audit, issue 11).

A checkpoint is plain data, but its model spec names a factory: ``{"name": "os:system",
"kwargs": {"command": "touch MARKER"}}`` would run a shell command if sharpscope imported
and called the name it read. Every loader is tried with such forged files (checkpoints
and run folders) and must refuse them in one ``error:`` line naming the import path and
``--model``, with the marker file never created. Naming the factory on the command line
(or in the library call) is the only way to import it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sharpscope.errors import DataError, ModelSpecError, SharpscopeError
from sharpscope.problem import load_problem
from sharpscope.problem.checkpoint import load_checkpoint, save_checkpoint
from sharpscope.problem.losses import get_loss
from sharpscope.problem.models import ModelSpec, build_model

# the factory a forged file names, and the keyword arguments that would run `touch MARKER`
ATTACKS = {"os:system": "command", "subprocess:getoutput": "cmd"}


def _good(path: Path, *, spec=None, net=None) -> Path:
    torch.manual_seed(0)
    net = net or build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[4])
    return save_checkpoint(
        path,
        model=net,
        model_spec=spec or {"name": "mlp", "kwargs": {"hidden": [4]}},
        input_shape=(1, 8, 8),
        num_classes=10,
        data_spec={"spec": "digits", "samples": 64, "seed": 0, "normalize": True},
        metrics=[{"epoch": 1, "train_loss": 1.0, "lr": 0.1}],
    )


def _forge(path: Path, template: Path, factory: str, marker: Path, **changes) -> Path:
    """``template`` with its model spec replaced by ``factory`` called to ``touch marker``."""
    obj = torch.load(template, weights_only=True)
    obj["model"]["name"] = factory
    obj["model"]["kwargs"] = {ATTACKS[factory]: f"touch {marker}"}
    obj.update(changes)
    torch.save(obj, path)
    return path


@pytest.fixture(params=list(ATTACKS))
def forged(request, tmp_path) -> dict:
    """A forged checkpoint, a forged run folder (epoch files, last.pt, final.pt), a good checkpoint."""
    factory = request.param
    marker = tmp_path / "MARKER"
    good = _good(tmp_path / "good.pt")
    ckpt = _forge(tmp_path / "evil.pt", good, factory, marker)
    run = tmp_path / "run"
    run.mkdir()
    for name in ("epoch_000.pt", "epoch_001.pt", "last.pt", "final.pt"):
        _forge(run / name, good, factory, marker)
    return {
        "factory": factory,
        "marker": marker,
        "ckpt": ckpt,
        "run": run,
        "good": good,
        "out": tmp_path / "out",
    }


def _refused(result, forged: dict, *, source: Path) -> None:
    factory = forged["factory"]
    assert not forged["marker"].exists(), "the forged factory ran"
    assert result.exit_code != 0, result.output
    # stderr may also hold a progress bar; exactly one line is an error
    lines = [line.strip() for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0] == (
        f"error: {source} names the model factory '{factory}' by import path; sharpscope never "
        f"imports a name read from a file: pass --model {factory} if you trust it"
    ), lines[0]
    assert "Traceback" not in result.output


# (command line, the file the error names) for every command that rebuilds a model
COMMANDS = {
    "eigen": lambda f: (["eigen", f["ckpt"]], f["ckpt"]),
    "trace": lambda f: (["trace", f["ckpt"]], f["ckpt"]),
    "esd": lambda f: (["esd", f["ckpt"]], f["ckpt"]),
    "slice": lambda f: (["slice", f["ckpt"], "--out", f["out"]], f["ckpt"]),
    "slice 1d": lambda f: (["slice", f["ckpt"], "--dims", "1", "--out", f["out"]], f["ckpt"]),
    "interpolate a": lambda f: (["interpolate", f["ckpt"], f["good"]], f["ckpt"]),
    "interpolate b": lambda f: (["interpolate", f["good"], f["ckpt"]], f["ckpt"]),
    "trajectory": lambda f: (["trajectory", f["run"], "--out", f["out"]], f["run"] / "final.pt"),
    "plane": lambda f: (["plane", f["ckpt"], "--out", f["out"]], f["ckpt"]),
    "sharpness": lambda f: (["sharpness", f["ckpt"]], f["ckpt"]),
    "compare": lambda f: (["compare", f["good"], f["ckpt"], "--out", f["out"]], f["ckpt"]),
    "compare run": lambda f: (["compare", f["run"], "--out", f["out"]], f["run"] / "final.pt"),
    "eigen run": lambda f: (["eigen", f["run"]], f["run"] / "epoch_000.pt"),
    "trace run": lambda f: (["trace", f["run"]], f["run"] / "epoch_000.pt"),
    "info --model-kwargs": lambda f: (
        ["info", f["ckpt"], "--model-kwargs", '{"command": "true"}'],
        f["ckpt"],
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_factory_named_by_the_file(cli_runner, cli_app, forged, command):
    args, source = COMMANDS[command](forged)
    result = cli_runner.invoke(cli_app, [str(a) for a in args])
    _refused(result, forged, source=source)


def test_info_shows_a_forged_checkpoint_without_importing_it(cli_runner, cli_app, forged):
    """``info`` only reads: it shows the stored name, says it is not imported, and runs nothing."""
    result = cli_runner.invoke(cli_app, ["info", str(forged["ckpt"])])
    assert not forged["marker"].exists()
    assert result.exit_code == 0, result.output
    model_line = next(line for line in result.stdout.splitlines() if line.startswith("model"))
    assert model_line.startswith(f"model        {forged['factory']} ")
    assert "not imported; pass --model to use it" in model_line
    assert result.stderr == ""


def test_the_library_loaders_refuse_it(forged):
    factory, source = forged["factory"], forged["ckpt"]
    message = (
        f"{source} names the model factory '{factory}' by import path; sharpscope never "
        f"imports a name read from a file: pass --model {factory} if you trust it"
    )
    ck = load_checkpoint(source)  # reading the metadata is fine: nothing is resolved
    assert ck.model["name"] == factory and not ck.model_from_caller
    with pytest.raises(ModelSpecError) as info:
        ck.build_model()
    assert str(info.value) == message
    with pytest.raises(ModelSpecError) as info:
        load_problem(source, device="cpu")
    assert str(info.value) == message
    with pytest.raises(ModelSpecError) as info:  # kwargs given, name still from the file
        load_problem(source, model_kwargs={"command": "true"}, device="cpu")
    assert str(info.value) == message
    with pytest.raises(ModelSpecError) as info:  # a spec read from a file, built directly
        build_model(ck.model_spec, input_shape=(1, 8, 8), num_classes=10)
    assert str(info.value) == message
    assert not forged["marker"].exists()


def test_a_file_never_imports_a_module(tmp_path, monkeypatch, cli_runner, cli_app):
    """A module the file names is not even imported (importing it would run its top level)."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "planted_factory.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef make(**kw):\n    raise SystemExit(3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    good = _good(tmp_path / "good.pt")
    obj = torch.load(good, weights_only=True)
    obj["model"]["name"] = "planted_factory:make"
    torch.save(obj, tmp_path / "planted.pt")
    result = cli_runner.invoke(cli_app, ["eigen", str(tmp_path / "planted.pt")])
    assert result.exit_code == 1
    assert "names the model factory 'planted_factory:make' by import path" in result.stderr
    assert not marker.exists() and "planted_factory" not in sys.modules


def test_a_spec_the_caller_names_still_imports(tmp_path):
    """ModelSpec / build_model from the caller (no source) import as before."""
    spec = ModelSpec("_user_models:make_net", {"width": 3})
    net = build_model(spec, input_shape=(1, 8, 8), num_classes=10)
    assert net[1].out_features == 3
    refused = ModelSpec("_user_models:make_net", {"width": 3}, source="f.pt")
    assert refused == spec  # where it came from is not part of the spec
    with pytest.raises(ModelSpecError, match="f.pt names the model factory"):
        build_model(refused, input_shape=(1, 8, 8), num_classes=10)
    # a built-in name read from a file resolves as always
    net = build_model(
        ModelSpec("mlp", {"hidden": [3]}, source="f.pt"), input_shape=(4,), num_classes=2
    )
    assert net.net[1].out_features == 3


@pytest.fixture
def user_ckpt(tmp_path) -> Path:
    """A checkpoint trained with a real user factory (``_user_models:make_net``, width 5)."""
    from _user_models import make_net

    torch.manual_seed(0)
    return _good(
        tmp_path / "user.pt",
        spec={"name": "_user_models:make_net", "kwargs": {"width": 5}},
        net=make_net((1, 8, 8), 10, width=5),
    )


def test_a_user_factory_named_with_model_works(cli_runner, cli_app, user_ckpt):
    """Refused from the file alone; ``--model`` naming it imports it with the stored kwargs."""
    result = cli_runner.invoke(
        cli_app, ["eigen", str(user_ckpt), "--top-k", "1", "--samples", "64"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {user_ckpt} names the model factory '_user_models:make_net' by import path; "
        "sharpscope never imports a name read from a file: pass --model _user_models:make_net "
        "if you trust it"
    )
    args = ["eigen", str(user_ckpt), "--model", "_user_models:make_net", "--top-k", "1"]
    result = cli_runner.invoke(cli_app, [*args, "--samples", "64", "--json", "-"])
    assert result.exit_code == 0, result.output
    for run_args in (["info", str(user_ckpt), "--model", "_user_models:make_net"],):
        result = cli_runner.invoke(cli_app, run_args)
        assert result.exit_code == 0, result.output
        assert "parameters   385" in result.stdout  # 64*5+5 + 5*10+10

    problem = load_problem(user_ckpt, model="_user_models:make_net", device="cpu")
    assert problem.model[1].out_features == 5  # the stored kwargs were used
    net = load_checkpoint(user_ckpt, model="_user_models:make_net").build_model()
    assert torch.equal(
        net[1].weight, torch.load(user_ckpt, weights_only=True)["state_dict"]["1.weight"]
    )
    # explicit kwargs replace the stored ones (width 4 does not match the weights)
    with pytest.raises(SharpscopeError, match="does not match the model"):
        load_problem(
            user_ckpt, model="_user_models:make_net", model_kwargs={"width": 4}, device="cpu"
        )


def test_loss_and_data_from_a_file_are_only_looked_up(tmp_path):
    """A checkpoint's loss and data spec resolve through the built-in tables, never an import."""
    marker = tmp_path / "MARKER"
    good = _good(tmp_path / "good.pt")
    obj = torch.load(good, weights_only=True)
    obj["loss"] = "os:system"
    torch.save(obj, tmp_path / "loss.pt")
    with pytest.raises(SharpscopeError, match=r"unknown loss 'os:system': choose one of"):
        load_problem(tmp_path / "loss.pt", device="cpu")
    obj["loss"] = ["not", "a", "name"]
    torch.save(obj, tmp_path / "loss2.pt")
    with pytest.raises(SharpscopeError, match=r"unknown loss \['not', 'a', 'name'\]"):
        load_problem(tmp_path / "loss2.pt", device="cpu")
    with pytest.raises(SharpscopeError, match="unknown loss 'subprocess:getoutput'"):
        get_loss("subprocess:getoutput")

    obj = torch.load(good, weights_only=True)
    obj["data"]["spec"] = f"os:touch {marker}"
    torch.save(obj, tmp_path / "data.pt")
    with pytest.raises(DataError, match="unknown data source 'os'"):
        load_problem(tmp_path / "data.pt", device="cpu")
    assert not marker.exists()

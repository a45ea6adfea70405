"""Directions files and run folders: refused in sharpscope's own words, usable with --model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sharpscope import save_checkpoint
from sharpscope.errors import SharpscopeError
from sharpscope.landscape import load_directions, load_trajectory, random_directions

from .conftest import DIGITS_SHAPE, make_model


class _Payload:
    """Creates a folder when unpickled: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_pickled_payload_in_a_directions_file_is_refused_in_our_words(tmp_path):
    marker = tmp_path / "PWNED"
    good = random_directions(make_model("mlp", {"hidden": [4]}), count=1).to_dict()
    good["meta"]["payload"] = _Payload(marker)
    torch.save(good, tmp_path / "evil.pt")
    with pytest.raises(SharpscopeError) as info:
        load_directions(tmp_path / "evil.pt")
    message = str(info.value)
    assert "refused to load" in message and "directions file" in message, message
    assert "weights_only" not in message and "\n" not in message, message
    assert not marker.exists()


def test_a_damaged_directions_file_is_one_line(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(SharpscopeError) as info:
        load_directions(tmp_path / "bad.pt")
    assert "\n" not in str(info.value) and "bad.pt" in str(info.value)


def _user_run(tmp_path: Path) -> Path:
    """A run folder trained with a model named by import path (``_user_models:make_net``)."""
    from _user_models import make_net

    run = tmp_path / "run"
    for name, seed in (("epoch_001.pt", 1), ("epoch_002.pt", 2), ("final.pt", 0)):
        torch.manual_seed(seed)
        save_checkpoint(
            run / name,
            model=make_net(DIGITS_SHAPE, 10, width=5),
            model_spec={"name": "_user_models:make_net", "kwargs": {"width": 5}},
            input_shape=DIGITS_SHAPE,
            num_classes=10,
            data_spec={"spec": "digits", "samples": None, "seed": 0, "normalize": True},
            metrics=[],
        )
    return run


def test_trajectory_of_an_import_path_model_takes_the_callers_names(tmp_path):
    run = _user_run(tmp_path)
    with pytest.raises(SharpscopeError, match="by import path"):
        load_trajectory(run)  # the file alone never imports its factory
    names = ["1.weight", "1.bias", "3.weight", "3.bias"]
    traj = load_trajectory(run, names=names)
    assert traj.epochs == [1, 2] and list(traj.final) == names
    final = torch.load(run / "final.pt", weights_only=True)["state_dict"]
    assert torch.equal(traj.final["1.weight"], final["1.weight"].float())
    with pytest.raises(SharpscopeError, match="has no parameter 'nope'"):
        load_trajectory(run, names=["nope"])


def test_trajectory_cli_with_model_works_for_an_import_path_run(tmp_path, cli_runner, cli_app):
    run = _user_run(tmp_path)
    args = ["trajectory", str(run), "--points", "3", "--samples", "32", "--quiet"]
    r = cli_runner.invoke(cli_app, [*args, "--out", str(tmp_path / "t1")])
    assert r.exit_code == 1 and "by import path" in r.output, r.output
    r = cli_runner.invoke(
        cli_app, [*args, "--model", "_user_models:make_net", "--out", str(tmp_path / "t2")]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t2" / "trajectory.png").is_file()

"""A refused file gets sharpscope's own one-line reason, never torch's advice (security audit).

torch's error for a file holding pickled code tells the user to retry with
``weights_only=False``, which would run that code. Checkpoints and eigenvector files
refused by the restricted unpickler say instead what the file holds and that sharpscope
never runs code from a file.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from _fixtures import MarkerPayload

from sharpscope.errors import CheckpointError, SharpscopeError
from sharpscope.hessian.vectors import load_vectors, save_vectors
from sharpscope.problem.checkpoint import load_checkpoint, safe_torch_load


class _System:
    """Unpickling this would run ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _payloads(tmp_path, marker):
    """(name, file) pairs: torch.save zip and legacy files and a raw pickle, each with code."""
    good = save_vectors(
        tmp_path / "good.pt", vectors=[{"w": torch.ones(3) / 3**0.5}], eigenvalues=[2.0]
    )
    obj = torch.load(good, weights_only=True)
    files = []
    for name, hook in (("open", MarkerPayload(marker)), ("system", _System(f"touch {marker}"))):
        zipped = tmp_path / f"{name}-zip.pt"
        torch.save({**obj, "hook": hook}, zipped)
        legacy = tmp_path / f"{name}-legacy.pt"
        torch.save({**obj, "hook": hook}, legacy, _use_new_zipfile_serialization=False)
        raw = tmp_path / f"{name}-raw.pt"
        raw.write_bytes(pickle.dumps({**obj, "hook": hook}, protocol=2))
        files += [(f"{name} zip", zipped), (f"{name} legacy", legacy), (f"{name} raw", raw)]
    return files


def _one_own_line(message: str, path) -> None:
    assert "\n" not in message and "weights_only" not in message, message
    assert "add_safe_globals" not in message and "\x1b" not in message, message
    assert message.startswith(f"{path}: refused to load: it holds "), message
    assert "sharpscope never runs code from a" in message, message


def test_a_vectors_file_with_code_is_refused_in_sharpscopes_words(tmp_path):
    marker = tmp_path / "MARKER"
    for _, path in _payloads(tmp_path, marker):
        with pytest.raises(SharpscopeError) as info:
            load_vectors(path)
        _one_own_line(str(info.value), path)
        assert str(info.value).endswith("sharpscope never runs code from a vectors file")
    assert not marker.exists()


def test_a_checkpoint_with_code_is_refused_in_sharpscopes_words(tmp_path):
    marker = tmp_path / "MARKER"
    for _, path in _payloads(tmp_path, marker):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        _one_own_line(str(info.value), path)
        with pytest.raises(SharpscopeError) as info:
            safe_torch_load(path, error=SharpscopeError, what="directions file")
        assert str(info.value).endswith("sharpscope never runs code from a directions file")
    assert not marker.exists()


def test_the_refusal_names_the_pickled_callable(tmp_path):
    marker = tmp_path / "MARKER"
    files = dict(_payloads(tmp_path, marker))
    with pytest.raises(SharpscopeError, match=r"it holds a pickled (posix|nt)\.system object"):
        load_vectors(files["system zip"])
    with pytest.raises(SharpscopeError, match=r"it holds a pickled (builtins|io)\.open object"):
        load_vectors(files["open legacy"])


def test_good_and_broken_vectors_files_still_read(tmp_path):
    v = [{"w": torch.tensor([0.6, 0.8])}]
    path = save_vectors(tmp_path / "v.pt", vectors=v, eigenvalues=[3.0], source="c.pt")
    obj = load_vectors(path)
    assert torch.equal(obj["vectors"][0]["w"], v[0]["w"]) and obj["source"] == "c.pt"
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(SharpscopeError, match="is not a torch.save file"):
        load_vectors(tmp_path / "bad.pt")
    with pytest.raises(SharpscopeError, match="no such vectors file"):
        load_vectors(tmp_path / "missing.pt")

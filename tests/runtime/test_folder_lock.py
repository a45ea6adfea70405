"""The output-folder lock: exclusive across processes, re-entrant within one, no leftovers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sharpscope.errors import FolderLockedError, SharpscopeError
from sharpscope.runtime.files import LOCK_NAME, folder_lock


def test_lock_is_exclusive_across_processes_and_names_the_owner(tmp_path) -> None:
    out = tmp_path / "run"
    with folder_lock(out, command="train"):
        code = f"from sharpscope.runtime.files import folder_lock\nwith folder_lock({str(out)!r}): pass"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode != 0
        assert "in use by another sharpscope command (train, pid" in r.stderr
        with folder_lock(out):  # re-entrant in this process
            assert (out / LOCK_NAME).exists()
        assert (out / LOCK_NAME).exists()
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    (out / LOCK_NAME).write_text(
        f'{{"pid": {int(dead.stdout)}, "host": "{socket.gethostname()}", "command": "slice"}}'
    )
    with folder_lock(out, command="slice"):
        pass
    assert not (out / LOCK_NAME).exists()


def test_a_failed_command_leaves_no_empty_folder(tmp_path) -> None:
    out = tmp_path / "new" / "plane"
    with pytest.raises(SharpscopeError), folder_lock(out):
        raise SharpscopeError("bad --range")
    assert not out.exists()
    kept = tmp_path / "kept"
    with folder_lock(kept):
        (kept / "surface.npz").write_bytes(b"x")
    assert (kept / "surface.npz").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(FolderLockedError), folder_lock(existing):
        raise FolderLockedError("x")
    assert existing.is_dir()  # a folder the user had is never removed

"""A full disk is one line naming the user's path, and leaves no temporary file (issue 11).

With root (and a kernel that lets this container mount), a 64 KiB tmpfs is filled and the
real commands write into it; otherwise those tests are skipped with the reason, and the
same path is tested by making the write itself raise ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid

import pytest
import torch

from sharpscope.checkpoint import save_checkpoint
from sharpscope.models import build_model

DATA = "synthetic:train=48,test=8,classes=3,shape=1x4x4"
FAST = ["--backend", "double", "--batch-size", "20", "-q", "-k", "2"]


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=[4])
    return save_checkpoint(
        tmp_path / "m.pt",
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [4]}},
        input_shape=(1, 4, 4),
        num_classes=3,
        data_spec=DATA,
    )


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC path is tested by monkeypatching")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); tested by monkeypatching")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for size in (4096, 512, 1):  # to the last byte
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _disk_full_line(r, target) -> None:
    lines = r.stderr.splitlines()
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert lines[0].startswith(f"error: no space left on the device while writing {target}")
    assert ".tmp" not in lines[0]


def test_eigen_json_on_a_full_disk(cli_runner, cli_app, ckpt, full_disk):
    target = full_disk / "out.json"
    r = cli_runner.invoke(cli_app, ["eigen", str(ckpt), *FAST, "--json", str(target)])
    _disk_full_line(r, target)
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_eigen_save_vectors_on_a_full_disk(cli_runner, cli_app, ckpt, full_disk):
    target = full_disk / "sub" / "vectors.pt"
    r = cli_runner.invoke(cli_app, ["eigen", str(ckpt), *FAST, "--save-vectors", str(target)])
    _disk_full_line(r, target)
    leftovers = [p.name for p in full_disk.rglob("*") if p.is_file()]
    assert leftovers == ["filler"]


def test_json_enospc_by_monkeypatch(cli_runner, cli_app, ckpt, tmp_path, monkeypatch):
    import sharpscope.runtime.files as utils

    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(utils.os, "fsync", no_space)
    target = tmp_path / "out" / "e.json"
    try:
        r = cli_runner.invoke(cli_app, ["eigen", str(ckpt), *FAST, "--json", str(target)])
    finally:
        monkeypatch.setattr(utils.os, "fsync", real_fsync)
    _disk_full_line(r, target)
    assert os.listdir(target.parent) == []


def test_save_vectors_enospc_by_monkeypatch(cli_runner, cli_app, ckpt, tmp_path, monkeypatch):
    def no_space(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", no_space)
    target = tmp_path / "v.pt"
    r = cli_runner.invoke(cli_app, ["eigen", str(ckpt), *FAST, "--save-vectors", str(target)])
    _disk_full_line(r, target)
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]

"""Resuming a grid never trusts a damaged, forged or tampered ``surface.npz``/``meta.json``.

Each case damages a saved folder, resumes, and checks the result is identical to an
uninterrupted run (never a NaN reported as done, never a crash, one notice line).
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from sharpscope import get_loss
from sharpscope.errors import SharpscopeError
from sharpscope.landscape import Surface, evaluate_grid, random_directions

from .conftest import make_model

CE = get_loss("cross_entropy")
AXES = [np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)]


class _Stop(Exception):
    pass


@pytest.fixture
def setup(batches):
    model = make_model("mlp", {"hidden": [16]})
    dirs = random_directions(model, count=2, seed=0).resolve(model)
    full = evaluate_grid(model, CE, batches, dirs, AXES, method="loop", quiet=True, chunk_size=5)
    return model, dirs, full


def _run(setup, batches, folder, **kw):
    model, dirs, _ = setup
    return evaluate_grid(
        model,
        CE,
        batches,
        dirs,
        AXES,
        method="loop",
        quiet=True,
        chunk_size=5,
        out_dir=folder,
        **kw,
    )


def _partial(setup, batches, folder):
    """Stop after the first chunk of 5 points."""

    def stop(s):
        raise _Stop

    with pytest.raises(_Stop):
        _run(setup, batches, folder, on_chunk=stop)
    assert Surface.load(folder).done.sum() == 5


def _rewrite(folder, **changes):
    with np.load(folder / "surface.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    with open(folder / "surface.npz", "wb") as fh:
        np.savez(fh, **arrays)


def _check(res, full, capsys, notice: str | None):
    assert res.done.all()
    assert np.array_equal(res.loss, full.loss) and np.array_equal(res.accuracy, full.accuracy)
    err = capsys.readouterr().err
    if notice is None:
        assert "notice" not in err
    else:
        lines = [line for line in err.splitlines() if line.startswith("notice:")]
        assert len(lines) == 1 and notice in lines[0], err
        assert ".tmp" not in lines[0]


def test_forged_done_mask_is_not_trusted(setup, batches, tmp_path, capsys):
    _partial(setup, batches, tmp_path / "s")
    with np.load(tmp_path / "s" / "surface.npz") as z:
        shape = z["done"].shape
    _rewrite(tmp_path / "s", done=np.ones(shape, dtype=bool))  # missing points marked finished
    _check(_run(setup, batches, tmp_path / "s"), setup[2], capsys, "failed their checksum")
    # the forger also sets every chunk id: the checksum of chunk 0 no longer matches
    _partial(setup, batches, tmp_path / "t")
    _rewrite(tmp_path / "t", done=np.ones(shape, bool), chunk=np.zeros(shape, np.int64))
    _check(_run(setup, batches, tmp_path / "t"), setup[2], capsys, "failed their checksum")


def test_tampered_values_are_recomputed(setup, batches, tmp_path, capsys):
    _run(setup, batches, tmp_path / "s")
    capsys.readouterr()
    with np.load(tmp_path / "s" / "surface.npz") as z:
        loss = z["loss"].copy()
    loss[1, 2] = 0.001
    _rewrite(tmp_path / "s", loss=loss)
    _check(_run(setup, batches, tmp_path / "s"), setup[2], capsys, "failed their checksum")
    # an intact folder resumes silently and computes nothing
    seen = []
    res = _run(setup, batches, tmp_path / "s", on_chunk=lambda s: seen.append(1))
    assert seen == []
    _check(res, setup[2], capsys, None)


def test_nan_with_a_valid_checksum_is_recomputed(setup, batches, tmp_path, capsys):
    """A NaN loss is never a finished point, even when its chunk's checksum matches."""
    _run(setup, batches, tmp_path / "s")
    s, digests = Surface.load(tmp_path / "s", with_digests=True)
    s.loss[0, 0] = np.nan
    s.save(tmp_path / "s")  # checksums recomputed over the NaN
    capsys.readouterr()
    _check(_run(setup, batches, tmp_path / "s"), setup[2], capsys, None)


def _pickled(folder):
    with open(folder / "surface.npz", "wb") as fh:
        np.savez(fh, x=np.array([object()], dtype=object), loss=np.zeros(3))


def _truncated(folder):
    data = (folder / "surface.npz").read_bytes()
    (folder / "surface.npz").write_bytes(data[: len(data) // 2])


def _wrong_shape(folder):
    _rewrite(folder, loss=np.zeros((2, 2)))


def _wrong_dtype(folder):
    with np.load(folder / "surface.npz") as z:
        _rewrite(folder, done=z["done"].astype(np.float64))


def _zip_of_garbage(folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("loss.npy", b"not an array")
    (folder / "surface.npz").write_bytes(buf.getvalue())


NPZ_DAMAGE = {
    "truncated": _truncated,
    "not-a-zip": lambda f: (f / "surface.npz").write_bytes(b"hello, not a zip"),
    "empty": lambda f: (f / "surface.npz").write_bytes(b""),
    "wrong-keys": lambda f: _rewrite(f, x=None),
    "pickled": _pickled,
    "wrong-shape": _wrong_shape,
    "wrong-dtype": _wrong_dtype,
    "zip-of-garbage": _zip_of_garbage,
    "no-checksums": lambda f: _rewrite(f, chunk=None, digests=None),
    "bad-checksums": lambda f: _rewrite(f, digests=np.zeros((3, 5), np.int64)),
    "axes-moved": lambda f: _rewrite(f, x=np.linspace(-2, 2, 4)),
}
META_DAMAGE = {
    "binary": b"\x00\xff\xfe binary \x89PNG",
    "not-an-object": b"[1, 2, 3]",
    "wrong-types": json.dumps({"format": "sharpscope-surface", "signature": 5}).encode(),
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"elapsed_s": ' + b"9" * 100_000 + b"}",
    "truncated": b'{"format": "sharpscope-surf',
}


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("damage", list(NPZ_DAMAGE))
def test_damaged_surface_npz_is_a_cache_miss(setup, batches, tmp_path, capsys, damage, force):
    _run(setup, batches, tmp_path / "s")
    capsys.readouterr()
    NPZ_DAMAGE[damage](tmp_path / "s")
    res = _run(setup, batches, tmp_path / "s", force=force)
    notice = None if damage == "no-checksums" else "recomputing"
    if damage == "no-checksums":  # an old file: nothing trusted, every point recomputed
        notice = "failed their checksum"
    _check(res, setup[2], capsys, notice)
    assert Surface.load(tmp_path / "s").complete


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("damage", list(META_DAMAGE))
def test_damaged_meta_json_is_a_cache_miss(setup, batches, tmp_path, capsys, damage, force):
    _run(setup, batches, tmp_path / "s")
    capsys.readouterr()
    (tmp_path / "s" / "meta.json").write_bytes(META_DAMAGE[damage])
    res = _run(setup, batches, tmp_path / "s", force=force)
    _check(res, setup[2], capsys, "recomputing")
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["complete"] is True


def test_wrong_typed_elapsed_time_is_dropped(setup, batches, tmp_path, capsys):
    _run(setup, batches, tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    meta["elapsed_s"] = [1, 2]
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    capsys.readouterr()
    res = _run(setup, batches, tmp_path / "s")
    _check(res, setup[2], capsys, None)
    assert isinstance(res.meta["elapsed_s"], float)


def test_other_settings_are_refused_unless_forced(setup, batches, tmp_path, capsys):
    model, dirs, full = setup
    _run(setup, batches, tmp_path / "s")
    with pytest.raises(SharpscopeError, match="other settings"):
        evaluate_grid(
            model, CE, batches, dirs, AXES, mode="train", quiet=True, out_dir=tmp_path / "s"
        )
    res = evaluate_grid(
        model,
        CE,
        batches,
        dirs,
        AXES,
        mode="train",
        quiet=True,
        out_dir=tmp_path / "s",
        force=True,
    )
    assert Surface.load(tmp_path / "s").meta["signature"]["mode"] == "train"
    assert res.done.all()

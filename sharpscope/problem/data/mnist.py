"""``mnist:DIR``: the four MNIST idx files, gzipped or not."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .arrays import _as_tensors, _dir

__all__ = ["read_idx"]


def _open_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc})") from exc
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not."""
    raw = _open_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise DataError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dt = np.dtype(dtypes[dtype_code])
    expected = int(np.prod(dims)) * dt.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: expected {expected} data bytes for shape {list(dims)}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dt, offset=header).reshape(dims)


def _find(folder: Path, candidates: list[str], what: str) -> Path:
    for name in candidates:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    raise DataError(f"{folder}: missing {what} (looked for {', '.join(candidates)}[.gz])")


def _load_mnist(arg: str) -> tuple[torch.Tensor, ...]:
    folder = _dir(arg, "mnist")
    if not any(folder.glob("*idx*")) and (folder / "raw").is_dir():
        folder = folder / "raw"
    parts = {}
    for key, stem, kind in (
        ("x_train", "train", "images-idx3"),
        ("y_train", "train", "labels-idx1"),
        ("x_test", "t10k", "images-idx3"),
        ("y_test", "t10k", "labels-idx1"),
    ):
        names = [f"{stem}-{kind}-ubyte", f"{stem}-{kind.replace('-idx', '.idx')}-ubyte"]
        parts[key] = read_idx(_find(folder, names, f"{stem} {kind.split('-')[0]}"))
    for split in ("train", "test"):
        if parts[f"x_{split}"].ndim != 3 or parts[f"y_{split}"].ndim != 1:
            raise DataError(f"mnist: {split} images must be 3-D and labels 1-D")
    x_train = parts["x_train"].astype(np.float32)[:, None] / 255.0
    x_test = parts["x_test"].astype(np.float32)[:, None] / 255.0
    return (
        *_as_tensors(
            x_train,
            parts["y_train"].astype(np.int64),
            x_test,
            parts["y_test"].astype(np.int64),
            "mnist",
        ),
        10,
    )

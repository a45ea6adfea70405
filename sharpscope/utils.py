"""Small shared helpers: devices, seeds, atomic writes, ranges and progress bars."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import SharpscopeError

T = TypeVar("T")

__all__ = [
    "resolve_device",
    "seed_everything",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_savez",
    "read_json",
    "parse_range",
    "progress",
    "to_jsonable",
]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:1" | torch.device`` into a device.

    ``auto`` picks CUDA when it is available. Asking for CUDA on a machine
    without it is a :class:`SharpscopeError`.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SharpscopeError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SharpscopeError(f"device {device!r} requested but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_path(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the usual permissions (0666 minus umask).
    os.chmod(tmp, 0o666 & ~_UMASK)
    return path, tmp


def _writes_files() -> bool:
    """False on the ranks other than 0 of a distributed run: only rank 0 writes files."""
    from .distributed import is_main

    return is_main()


@contextlib.contextmanager
def _replace_on_success(path: str | os.PathLike) -> Iterator[str]:
    if not _writes_files():
        # a distributed run's other ranks: write into a private folder and drop it
        with tempfile.TemporaryDirectory(prefix="sharpscope-rank-") as scratch:
            yield os.path.join(scratch, Path(path).name)
        return
    target, tmp = _atomic_path(path)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with _replace_on_success(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, paths and tuples into JSON-ready Python values.

    Non-finite floats become ``None`` so the output is strict JSON.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON, atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is a :class:`SharpscopeError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise SharpscopeError(f"no such file: {path}") from exc
    except json.JSONDecodeError as exc:
        raise SharpscopeError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    with _replace_on_success(path) as tmp:
        torch.save(obj, tmp)


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``numpy.savez`` through a temporary file and an atomic rename."""
    with _replace_on_success(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def parse_range(text: str, *, name: str = "range") -> tuple[float, float, int]:
    """Parse ``"START:STOP:NUM"`` into ``(start, stop, num)``.

    ``num`` points from ``start`` to ``stop`` inclusive, ``start < stop`` and
    ``num >= 2`` (``num == 1`` is allowed only when ``start == stop``).

    Example:
        >>> parse_range("-1:1:51")
        (-1.0, 1.0, 51)
    """
    parts = str(text).split(":")
    if len(parts) != 3:
        raise SharpscopeError(f"invalid {name} {text!r}: expected START:STOP:NUM, e.g. -1:1:51")
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise SharpscopeError(f"invalid {name} {text!r}: START and STOP must be numbers") from exc
    try:
        num = int(parts[2])
    except ValueError as exc:
        raise SharpscopeError(f"invalid {name} {text!r}: NUM must be a whole number") from exc
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise SharpscopeError(f"invalid {name} {text!r}: START and STOP must be finite")
    if num < 1:
        raise SharpscopeError(f"invalid {name} {text!r}: NUM must be at least 1, got {num}")
    if num == 1 and start != stop:
        raise SharpscopeError(f"invalid {name} {text!r}: one point needs START == STOP")
    if num > 1 and not start < stop:
        raise SharpscopeError(f"invalid {name} {text!r}: START must be below STOP")
    return start, stop, num


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    quiet: bool = False,
    leave: bool = False,
    unit: str = "it",
) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm progress bar on stderr unless ``quiet``.

    Silent on the ranks other than 0 of a distributed run.
    """
    if quiet or not _writes_files():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave, unit=unit, dynamic_ncols=True)

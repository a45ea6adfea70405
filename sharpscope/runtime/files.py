"""Small shared helpers: devices, seeds, atomic writes, ranges and progress bars."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import DiskFullError, FolderLockedError, SharpscopeError

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
    "folder_lock",
    "clean_stale_tmp",
    "check_writable",
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
    # the writer's pid is in the name so that a later run can tell a dead writer's leftovers
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
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
    target = Path(path)
    try:
        target, tmp = _atomic_path(path)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, (OSError, RuntimeError)):
            raise _write_error(target, exc) from exc
        raise


def _disk_nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _write_error(target: Path, exc: BaseException) -> BaseException:
    """Name the user's path (never the temporary file) and the real cause of a failed write."""
    if isinstance(exc, SharpscopeError):
        return exc
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or _disk_nearly_full(target.parent):
        return DiskFullError(
            f"no space left on the device while writing {target}; the previous file, if any, is intact"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SharpscopeError(f"permission denied: cannot write {target}")
    if isinstance(exc, OSError):
        return SharpscopeError(f"cannot write {target}: {exc.strerror or exc}")
    return exc


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


# ----------------------------------------------------------------------------- output folders
LOCK_NAME = ".sharpscope.lock"
_HELD: dict[Path, int] = {}
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        info = json.loads(lock.read_text(encoding="utf-8", errors="replace")[:4096])
    except (OSError, ValueError, RecursionError):
        return {}
    return info if isinstance(info, dict) else {}


def _lock_is_stale(info: dict[str, Any]) -> bool:
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
        return True  # unreadable or forged: no live owner can be named
    return host == socket.gethostname() and not _pid_alive(pid)


def _clean(text: Any) -> str:
    return "".join(ch for ch in str(text) if ch.isprintable())[:200]


def _take_lock(lock: Path, command: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read_lock(lock)
            if _lock_is_stale(info):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                continue
            raise FolderLockedError(
                f"{lock.parent} is in use by another sharpscope command "
                f"({_clean(info.get('command', '?'))}, pid {info.get('pid')} on "
                f"{_clean(info.get('host'))}, started {_clean(info.get('started', '?'))}); wait for it "
                f"to finish, or delete {lock} if that process is gone"
            ) from None
        except OSError as exc:
            raise _write_error(lock, exc) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        return
    raise FolderLockedError(f"could not take the lock {lock}: it keeps reappearing")


def clean_stale_tmp(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Delete ``.NAME.PID.XXXX.tmp`` files left by killed writers; returns what was removed.

    A temporary file whose writer (the pid in its name) still runs on this machine is kept.
    Files of the older ``.NAME.XXXX.tmp`` form (no pid) are removed only while the caller
    holds the folder's lock, when no other sharpscope command can be writing them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    locked = folder.resolve() in _HELD
    removed: list[Path] = []
    walker = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    for tmp in list(walker):
        m = _TMP_RE.match(tmp.name)
        if m is None or not tmp.is_file():
            continue
        pid = m.group("pid")
        if pid is not None and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        if pid is None and not locked:
            continue
        if pid is not None and int(pid) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, command: str = "sharpscope") -> Iterator[Path]:
    """Hold an exclusive lock on an output folder while a command writes into it.

    The lock is the file ``FOLDER/.sharpscope.lock`` holding the owner's pid, host,
    command and start time. A second command on the same folder gets a
    :class:`~sharpscope.errors.FolderLockedError` naming the first; a lock whose owner
    is dead (same host, pid gone) is stale and taken over. Re-entrant within one
    process. On taking the lock, temporary files of killed writers are removed.
    Only rank 0 of a distributed run locks (only it writes).
    """
    folder = Path(folder)
    if not _writes_files():
        yield folder
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise SharpscopeError(f"{folder} exists and is not a folder") from exc
    except OSError as exc:
        raise _write_error(folder / LOCK_NAME, exc) from exc
    key = folder.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    lock = folder / LOCK_NAME
    _take_lock(lock, command)
    _HELD[key] = 1
    try:
        clean_stale_tmp(folder)
        yield folder
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def check_writable(path: str | os.PathLike, *, what: str = "output") -> Path:
    """Fail before any work when ``path`` (a file to be written) cannot be written.

    Names the user's path: a folder given where a file is expected, a parent that is
    a file, or a folder without write permission.
    """
    path = Path(path)
    if path.is_dir():
        raise SharpscopeError(f"{what} {path} is a folder; give a file name")
    parent = path.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SharpscopeError(f"cannot write {what} {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SharpscopeError(f"cannot write {what} {path}: no write permission in {probe}")
    if path.exists() and not os.access(path, os.W_OK):
        raise SharpscopeError(f"cannot write {what} {path}: permission denied")
    return path

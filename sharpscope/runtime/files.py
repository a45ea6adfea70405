"""Files that are never half-written and folders that are never shared by two writers.

Atomic writers (temporary file, then rename; they name the user's path on failure, never
the temporary file), strict JSON, an exclusive folder lock with stale-lock takeover, the
clean-up of killed writers' temporary files, an early "can this file be written" check,
and :func:`safe_torch_load` (``torch.load(weights_only=True)``, one error line per failure).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, DiskFullError, FolderLockedError, SharpscopeError
from .distributed import is_main
from .sanitize import printable

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_savez",
    "read_json",
    "to_jsonable",
    "folder_lock",
    "clean_stale_tmp",
    "check_writable",
    "safe_torch_load",
    "LOCK_NAME",
]


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
    created = not folder.exists()
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
        if created:  # a command that failed before writing leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when the folder is empty


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


# ----------------------------------------------------------------------------- safe loading
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return printable(text[0]) if text else type(exc).__name__


def _load_failure(path: Path, exc: BaseException, what: str) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused or failed on ``path``."""
    text = str(exc)
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match or "Unsupported global" in text:
        name = match.group(1) if match else "an unknown global"
        return (
            f"{path}: refused to load: it holds a pickled {name} object, not only tensors and "
            f"plain data; sharpscope never runs code from a {what}"
        )
    if not zipfile.is_zipfile(path):
        return f"{path} is not a torch.save file (truncated, corrupt or another format?)"
    if "Weights only load failed" in text:  # torch's own advice (weights_only=False) is unsafe
        detail = re.search(r"Unsupported (operand|class)[^.\n]*", text)
        return (
            f"{path}: refused to load: it holds pickled data other than tensors and plain data"
            f"{f' ({detail.group(0).strip()})' if detail else ''}; sharpscope never runs code "
            f"from a {what}"
        )
    return (
        f"{path} is not a readable torch {what} (truncated or corrupt?): {_first_line(exc)[:160]}"
    )


def safe_torch_load(
    path: str | os.PathLike, *, error: type[Exception] = CheckpointError, what: str = "checkpoint"
) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; every failure is one ``error`` line.

    A file holding anything but tensors and plain data (a pickled function, a class
    instance) is refused by torch's restricted unpickler before any of it runs.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise error(f"no such file: {path}")
    if path.is_dir():
        raise error(f"{path} is a folder, not a {what} file")
    if path.stat().st_size == 0:
        raise error(f"{path} is empty")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file; say which
        raise error(_load_failure(path, exc, what)) from exc
    for w in caught:  # torch's warnings about a file that loaded fine still reach the user
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return obj

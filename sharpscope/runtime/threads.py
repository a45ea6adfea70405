"""How many CPU threads torch should use: the CPUs this process may actually run on.

torch's default intra-op thread count follows the machine's cores (and the affinity
mask), not a container's CPU quota. On a shared node where a job may use 2 of 64 cores
through a cgroup quota, 64 OpenMP threads spin and wait for each other and the same work
burns many times the CPU time. :func:`choose_threads` picks the count from the affinity
mask and the cgroup v1/v2 CPU quota (or from ``--threads`` / ``OMP_NUM_THREADS``), and
:func:`configure_threads` applies it.

This module imports only the standard library at the top (torch is imported inside
:func:`configure_threads`), so the CLI can call it before any heavy import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import SharpscopeError

__all__ = [
    "ThreadsError",
    "cgroup_cpu_limit",
    "choose_threads",
    "configure_threads",
    "load_average_note",
    "usable_cpus",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

# cgroup v1 mounts the cpu controller under one of these names
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


class ThreadsError(SharpscopeError):
    """A thread count that is not a positive integer."""


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="strict") as fh:
            return fh.read(4096)
    except (OSError, UnicodeError, ValueError):
        return None


def _quota_cpus(quota_text: str | None, period_text: str | None) -> float | None:
    """``quota / period`` as a CPU count, or None for "no limit" and anything unparsable."""
    if quota_text is None or period_text is None:
        return None
    try:
        quota = int(quota_text.strip())
        period = int(period_text.strip())
    except ValueError:
        return None  # "max", "-1" handled below; garbage is ignored
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _v2_limit(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    return _quota_cpus(parts[0], parts[1])


def _v1_limit(folder: Path) -> float | None:
    return _quota_cpus(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _ancestors(root: Path, relative: str) -> Iterator[Path]:
    """``root/a/b/c``, ``root/a/b``, ``root/a``: a quota at any level limits the process."""
    parts = [p for p in relative.split("/") if p and p not in (".", "..")]
    for n in range(len(parts), 0, -1):
        yield root.joinpath(*parts[:n])


def _own_cgroups(proc_cgroup: str | None) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and cgroup v1 ``cpu`` path from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (proc_cgroup or "").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and controllers == "":
            v2 = path.strip()
        elif "cpu" in controllers.split(","):
            v1 = path.strip()
    return v2, v1


def cgroup_cpu_limit(
    *, cgroup_root: str | os.PathLike[str] | None = None, proc_cgroup: str | None = None
) -> float | None:
    """The CPU quota (in CPUs, possibly fractional) of this process's cgroup, or None.

    Reads cgroup v2 ``cpu.max`` and cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
    at the root (what a container sees) and along the process's own cgroup path from
    ``/proc/self/cgroup``; the smallest quota found wins. Missing, unreadable or garbled
    files and "no limit" values (``max``, ``-1``) are ignored. ``cgroup_root`` and
    ``proc_cgroup`` (the text of /proc/self/cgroup) exist for tests; with a custom
    ``cgroup_root`` and no ``proc_cgroup``, only the files at that root are read.
    """
    if cgroup_root is None:
        root = CGROUP_ROOT
        if proc_cgroup is None:
            proc_cgroup = _read(PROC_SELF_CGROUP)
    else:
        root = Path(cgroup_root)
    v2_path, v1_path = _own_cgroups(proc_cgroup)

    limits: list[float] = []

    def add(value: float | None) -> None:
        if value is not None and math.isfinite(value) and value > 0:
            limits.append(value)

    add(_v2_limit(root))
    add(_v1_limit(root))  # a root that is itself the v1 cpu controller
    if v2_path:
        for folder in _ancestors(root, v2_path):
            add(_v2_limit(folder))
    for name in _V1_CPU_DIRS:
        base = root / name
        add(_v1_limit(base))
        if v1_path:
            for folder in _ancestors(base, v1_path):
                add(_v1_limit(folder))
    return min(limits) if limits else None


def _affinity_cpus() -> int:
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            n = len(getaffinity(0))
            if n > 0:
                return n
        except OSError:
            pass
    return os.cpu_count() or 1


def usable_cpus(
    *, cgroup_root: str | os.PathLike[str] | None = None, proc_cgroup: str | None = None
) -> int:
    """The number of CPUs this process may actually use, at least 1.

    ``min(len(os.sched_getaffinity(0)) (or os.cpu_count()), ceil(cgroup CPU quota))``.
    """
    n = _affinity_cpus()
    limit = cgroup_cpu_limit(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if limit is not None:
        n = min(n, math.ceil(limit - 1e-9))
    return max(1, n)


def _parse_threads(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise ThreadsError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            raise ThreadsError(f"{what} must be a positive integer, got {value!r}") from None
    elif isinstance(value, int):
        number = value
    else:
        raise ThreadsError(f"{what} must be a positive integer, got {value!r}")
    if number < 1:
        raise ThreadsError(f"{what} must be a positive integer, got {number}")
    return number


def _env_threads(env: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS as the user set it (first entry of a nested list), or None."""
    raw = env.get("OMP_NUM_THREADS")
    if raw is None or not raw.strip():
        return None
    try:
        return _parse_threads(raw.split(",")[0], "OMP_NUM_THREADS")
    except ThreadsError:
        return None  # libgomp itself warns about and ignores such a value


def choose_threads(requested: int | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """The intra-op thread count to use.

    An explicit ``requested`` count wins (0, negatives and non-integers raise
    :class:`ThreadsError`, one line); otherwise a valid ``OMP_NUM_THREADS`` the user set;
    otherwise :func:`usable_cpus`.
    """
    if requested is not None:
        return _parse_threads(requested, "--threads")
    from_env = _env_threads(os.environ if env is None else env)
    if from_env is not None:
        return from_env
    return usable_cpus()


def configure_threads(requested: int | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Set torch's intra-op (and, if still possible, inter-op) thread count; return it.

    Call before any torch work: torch refuses to change the inter-op count once its pool
    has started, which is then left as it is.
    """
    n = choose_threads(requested, env=env)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        if torch.get_num_interop_threads() != n:
            torch.set_num_interop_threads(n)
    except RuntimeError:
        pass  # inter-op pool already started (parallel work has run); keep it
    return n


def load_average_note(threads: int | None = None) -> str | None:
    """One line when the 1-minute load average exceeds the usable CPUs, else None.

    On a busy machine every extra thread waits for a core; ``--threads 1`` usually
    finishes sooner and burns far less CPU time.
    """
    getloadavg = getattr(os, "getloadavg", None)
    if getloadavg is None:
        return None
    try:
        load = getloadavg()[0]
    except OSError:
        return None
    cpus = usable_cpus()
    if load <= cpus or (threads is not None and threads <= 1):
        return None
    return (
        f"note: the machine is busy (load {load:.1f} on {cpus} usable CPUs); "
        "--threads 1 may run faster and use less CPU time"
    )

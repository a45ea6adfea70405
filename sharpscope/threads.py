"""Compatibility: ``sharpscope.threads``, now :mod:`sharpscope.runtime.threads`."""

from __future__ import annotations

from .runtime.threads import (  # noqa: F401
    ThreadsError,
    cgroup_cpu_limit,
    choose_threads,
    configure_threads,
    load_average_note,
    usable_cpus,
)

__all__ = [
    "ThreadsError",
    "cgroup_cpu_limit",
    "choose_threads",
    "configure_threads",
    "load_average_note",
    "usable_cpus",
]

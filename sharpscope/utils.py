"""Compatibility: 0.1's ``sharpscope.utils``; the helpers now live in :mod:`sharpscope.runtime`.

``files`` (atomic writes, JSON, folder locks), ``device``, ``ranges`` and ``progress``.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch ``sharpscope.utils.os.fsync``

from .runtime.device import (  # noqa: F401
    resolve_device,
    seed_everything,
)
from .runtime.files import (  # noqa: F401
    LOCK_NAME,
    _atomic_path,
    _replace_on_success,
    _write_error,
    atomic_savez,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    clean_stale_tmp,
    folder_lock,
    read_json,
    to_jsonable,
)
from .runtime.progress import (  # noqa: F401
    progress,
)
from .runtime.ranges import (  # noqa: F401
    parse_range,
)

__all__ = [
    "resolve_device",
    "seed_everything",
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
    "parse_range",
    "progress",
]

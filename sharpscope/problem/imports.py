"""Import a ``package.module:name`` the caller named (a model, data or loss factory).

Only names given by the caller (a command-line option or a library argument) come here;
nothing read from a file is ever imported. Like ``python -m``, the working directory is
put on the import path when the module is not found otherwise, and the error says so.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import SharpscopeError

__all__ = ["import_object", "is_import_path"]


def is_import_path(text: str) -> bool:
    """``pkg.mod:name`` (module and attribute both look like dotted Python identifiers)."""
    module, sep, attr = str(text).partition(":")
    attr = attr.partition("?")[0]
    return bool(sep) and all(
        part.isidentifier() for dotted in (module, attr) for part in dotted.split(".")
    )


def _import_module(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        missing = exc.name or module_name
        if not module_name.startswith(missing) or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)  # what `python -m` does for the working directory
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


def import_object(path: str, *, what: str, error: type[SharpscopeError]) -> Callable[..., Any]:
    """The callable ``path`` (``package.module:name``) names, or one ``error`` line.

    ``what`` says what it is for (``"model"``, ``"data"``, ``"loss"``).
    """
    module_name, _, attr = str(path).partition(":")
    if not module_name or not attr:
        raise error(f"{what} import path {path!r} must look like 'package.module:function'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise error(
            f"cannot import module {module_name!r} for {what} {path!r}: {exc} (looked in the "
            f"working directory {os.getcwd()} and on PYTHONPATH)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise error(
            f"importing module {module_name!r} for {what} {path!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise error(f"{path!r} is not callable")
    return obj

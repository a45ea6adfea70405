"""A restricted unpickler that only builds numpy arrays and plain data, so a hostile
CIFAR batch cannot run code.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

from ...errors import DataError

__all__ = ["restricted_unpickle"]


class _Refused(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain Python containers."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise _Refused(
            f"refusing to load {module}.{name}: only numpy arrays and plain data are allowed"
        )


def restricted_unpickle(data: bytes, *, where: str = "pickle") -> Any:
    """Unpickle ``data`` allowing only numpy arrays, lists, dicts, strings and numbers.

    Any other global (a function, a class) is refused before it is called.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DataError(f"{where}: {exc}") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        struct.error,
        IndexError,
        AttributeError,
        ImportError,
    ) as exc:
        raise DataError(
            f"{where}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from exc

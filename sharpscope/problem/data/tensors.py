"""``tensors:FILE``: ``.npz`` (no pickles) or ``.pt`` (``weights_only``) holding
``x_train, y_train, x_test, y_test``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ...runtime.files import safe_torch_load
from .arrays import _as_tensors


def _load_tensors(arg: str) -> tuple[torch.Tensor, ...]:
    if not arg:
        raise DataError("data spec 'tensors' needs a file: 'tensors:FILE.npz' or 'tensors:FILE.pt'")
    path = Path(os.path.expanduser(arg))
    if not path.is_file():
        raise DataError(f"tensors: no such file: {arg}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise DataError(
                        f"{path}: missing arrays {', '.join(missing)} (has {', '.join(z.files)})"
                    )
                arrays = [z[k] for k in keys]
        except DataError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            detail = (
                "it holds pickled objects"
                if "pickle" in str(exc)
                else f"{type(exc).__name__}: {exc}"
            )
            raise DataError(
                f"{path}: not a readable .npz file of numeric arrays ({detail})"
            ) from exc
    elif path.suffix in (".pt", ".pth"):
        obj = safe_torch_load(path, error=DataError, what="tensor file")
        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a dict with {', '.join(keys)}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise DataError(f"{path}: missing tensors {', '.join(missing)}")
        arrays = [obj[k] for k in keys]
    else:
        raise DataError(f"tensors: {path} must end in .npz or .pt")
    return _as_tensors(*arrays, where=str(path))

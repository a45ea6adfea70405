"""Direction files: save and load sharpscope directions, read Hessian eigenvector files.

Both are plain-data ``torch.save`` files read with ``weights_only=True`` through
:func:`~sharpscope.checkpoint.safe_torch_load`: a file holding pickled objects is
refused in one sentence, and nothing in it ever runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import SharpscopeError
from ..problem.checkpoint import safe_torch_load
from .vectors import DIRECTIONS_FORMAT, VECTORS_FORMAT, Directions

__all__ = ["save_directions", "load_directions", "eigen_directions"]


def save_directions(directions: Directions, path: str | Path) -> Path:
    """Save ``directions`` to ``path`` (see :meth:`Directions.save`)."""
    return directions.save(path)


def _load_plain(path: str | Path, what: str) -> Any:
    """The plain data of a ``torch.save`` file; anything else is one :class:`SharpscopeError`."""
    path = Path(path)
    if not path.is_file():
        raise SharpscopeError(f"no such {what} file: {path}")
    return safe_torch_load(path, error=SharpscopeError, what=f"{what} file")


def load_directions(path: str | Path) -> Directions:
    """Load a file written by :func:`save_directions` (``torch.load(weights_only=True)`` only)."""
    obj = _load_plain(path, "directions")
    if not isinstance(obj, dict) or obj.get("format") != DIRECTIONS_FORMAT:
        raise SharpscopeError(
            f"{path} is not a sharpscope directions file (format {DIRECTIONS_FORMAT!r})"
        )
    if int(obj.get("version", 0)) > 1:
        raise SharpscopeError(
            f"{path}: directions format version {obj.get('version')} is newer than this sharpscope"
        )
    meta = dict(obj.get("meta") or {})
    orthogonal = bool(meta.pop("orthogonal", False))
    vectors = [dict(v) for v in obj.get("directions") or []]
    if not vectors:
        raise SharpscopeError(f"{path} holds no directions")
    return Directions(
        kind=obj.get("kind", "random"),
        vectors=vectors,
        norm=obj.get("norm", "none"),
        ignore=obj.get("ignore", "none"),
        seed=obj.get("seed"),
        orthogonal=orthogonal,
        meta=meta,
    )


def eigen_directions(path: str | Path, *, count: int = 2) -> Directions:
    """Hessian eigenvectors from a file written by ``sharpscope eigen --save-vectors``.

    The vectors are used as they are (``norm="none"``): unit vectors in parameter
    space, so the axis is the distance along the eigenvector.
    """
    obj = _load_plain(path, "eigenvector")
    if not isinstance(obj, dict) or obj.get("format") != VECTORS_FORMAT:
        raise SharpscopeError(
            f"{path} is not a sharpscope vectors file (format {VECTORS_FORMAT!r})"
        )
    vectors = [dict(v) for v in obj.get("vectors") or []]
    if len(vectors) < count:
        raise SharpscopeError(f"{path} holds {len(vectors)} eigenvector(s) but {count} are needed")
    vals = obj.get("eigenvalues")
    meta = {
        "source": obj.get("source"),
        "which": obj.get("which"),
        "mode": obj.get("mode"),
        "samples": obj.get("samples"),
        "eigenvalues": [
            float(v) for v in (vals.tolist() if isinstance(vals, torch.Tensor) else vals or [])
        ][:count],
    }
    if obj.get("source_fingerprint") is not None:
        meta["source_fingerprint"] = str(obj["source_fingerprint"])
    return Directions(
        "eigen", [{n: t.float() for n, t in v.items()} for v in vectors[:count]], meta=meta
    )

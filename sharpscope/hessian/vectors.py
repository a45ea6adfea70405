"""The ``sharpscope-vectors`` file: eigenvectors saved for other probes (landscape directions).

``torch.save`` of plain data, loaded with ``weights_only=True``::

    {"format": "sharpscope-vectors", "version": 1, "kind": "eigenvectors", "which": str,
     "names": [param names], "shapes": {name: [dims]}, "eigenvalues": float64 tensor [k],
     "vectors": [{name: tensor}, ...], "source": str, "mode": str, "samples": int | None}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import SharpscopeError
from ..utils import atomic_torch_save

__all__ = ["save_vectors", "load_vectors", "VECTORS_FORMAT"]

VECTORS_FORMAT = "sharpscope-vectors"


def save_vectors(
    path: str | Path,
    *,
    vectors: list[dict[str, torch.Tensor]],
    eigenvalues: Any,
    which: str = "largest",
    source: str = "",
    mode: str = "eval",
    samples: int | None = None,
    kind: str = "eigenvectors",
) -> Path:
    """Write eigenvectors (one ``{name: tensor}`` dict each, unit norm overall) atomically."""
    if not vectors:
        raise SharpscopeError("no vectors to save")
    names = list(vectors[0])
    payload = {
        "format": VECTORS_FORMAT,
        "version": 1,
        "kind": kind,
        "which": which,
        "names": names,
        "shapes": {n: [int(s) for s in vectors[0][n].shape] for n in names},
        "eigenvalues": torch.as_tensor(eigenvalues, dtype=torch.float64)
        .detach()
        .cpu()
        .reshape(-1)
        .clone(),
        "vectors": [{n: v[n].detach().cpu().clone() for n in names} for v in vectors],
        "source": str(source),
        "mode": mode,
        "samples": None if samples is None else int(samples),
    }
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def load_vectors(path: str | Path) -> dict[str, Any]:
    """Read a ``sharpscope-vectors`` file (``weights_only=True``); a bad file is a :class:`SharpscopeError`."""
    from ..checkpoint import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise SharpscopeError(f"no such vectors file: {path}")
    # one sentence of sharpscope's for a refused or broken file, never torch's advice
    obj = safe_torch_load(path, error=SharpscopeError, what="vectors file")
    if not isinstance(obj, dict) or obj.get("format") != VECTORS_FORMAT:
        raise SharpscopeError(f"{path} is not a sharpscope vectors file")
    if int(obj.get("version", 0)) > 1:
        raise SharpscopeError(
            f"{path}: vectors format version {obj.get('version')} is newer than this sharpscope"
        )
    return obj

"""The ``sharpscope-vectors`` file: eigenvectors saved for other probes (landscape directions).

``torch.save`` of plain data, loaded with ``weights_only=True``::

    {"format": "sharpscope-vectors", "version": 1, "kind": "eigenvectors", "which": str,
     "names": [param names], "shapes": {name: [dims]}, "eigenvalues": float64 tensor [k],
     "vectors": [{name: tensor}, ...], "source": str, "mode": str, "samples": int | None,
     "source_fingerprint": str}

``source_fingerprint`` (:func:`weights_fingerprint` of the model the vectors were
computed on) lets ``sharpscope slice --eigvecs`` refuse the eigenvectors of another
checkpoint; files written before it existed have none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import SharpscopeError
from ..runtime.files import atomic_torch_save

__all__ = ["save_vectors", "load_vectors", "weights_fingerprint", "VECTORS_FORMAT"]

VECTORS_FORMAT = "sharpscope-vectors"


def weights_fingerprint(model: torch.nn.Module) -> str:
    """``sha256:`` of a model's parameters (names, shapes and float32 bytes, in order).

    float32 bytes: a checkpoint probed in float64 (cast exactly from its float32
    weights) has the same fingerprint as in float32.
    """
    import hashlib

    h = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach().to(device="cpu", dtype=torch.float32).contiguous()
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return "sha256:" + h.hexdigest()


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
    fingerprint: str | None = None,
) -> Path:
    """Write eigenvectors (one ``{name: tensor}`` dict each, unit norm overall) atomically.

    ``fingerprint``: :func:`weights_fingerprint` of the model they belong to.
    """
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
    if fingerprint is not None:
        payload["source_fingerprint"] = str(fingerprint)
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def load_vectors(path: str | Path) -> dict[str, Any]:
    """Read a ``sharpscope-vectors`` file (``weights_only=True``); a bad file is a :class:`SharpscopeError`."""
    from ..problem.checkpoint import safe_torch_load

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

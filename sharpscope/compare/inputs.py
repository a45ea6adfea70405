"""What :func:`~sharpscope.compare.compare` is given: checkpoint files and run folders."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SharpscopeError

__all__ = ["resolve_inputs", "unique_labels"]


def unique_labels(names: Sequence[str]) -> list[str]:
    """File-system-safe labels, de-duplicated with ``-2``, ``-3``... suffixes."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "model"
        label = base
        while label in out:
            seen[base] = seen.get(base, 1) + 1
            label = f"{base}-{seen[base]}"
        out.append(label)
    return out


def resolve_inputs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Turn checkpoint files and run folders into ``{"checkpoint", "run", "name"}`` records.

    A run folder stands for its ``final.pt`` (the final minimum) and its
    ``epoch_XXX.pt`` checkpoints (curvature over training). The name is the run
    folder's name (``runs/sam/final.pt`` -> ``sam``) or the file's stem.
    """
    if not paths:
        raise SharpscopeError("compare needs at least one checkpoint or run folder")
    out = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            final = p / "final.pt"
            if not final.is_file():
                hint = (
                    " (its training is unfinished: resume it first)"
                    if (p / "last.pt").is_file()
                    else ""
                )
                raise CheckpointError(f"run folder {p} holds no final.pt{hint}")
            run = p if any(p.glob("epoch_*.pt")) else None
            out.append({"checkpoint": final, "run": run, "name": p.resolve().name})
        elif p.is_file():
            run = None
            if p.name in ("final.pt", "last.pt"):
                name = p.resolve().parent.name or p.stem
                if p.name == "final.pt" and any(p.parent.glob("epoch_*.pt")):
                    run = p.parent
            else:
                name = p.stem
            out.append({"checkpoint": p, "run": run, "name": name})
        else:
            raise CheckpointError(f"no such checkpoint or run folder: {p}")
    return out


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def run_fingerprint(run: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(run.glob("epoch_*.pt")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]

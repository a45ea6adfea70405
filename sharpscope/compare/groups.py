"""Groups of runs (issue 13): ``sgd=runs/sgd-s*/``, ``{"sam": [...]}`` or a folder of run folders.

A group is a label and its members, each member a checkpoint file or a run folder;
every probe runs on every member with the same data subset, directions and settings,
and the per-checkpoint cache is reused, so adding a seed computes only the new run.
Member labels are ``GROUP.NAME`` (``sam.seed0``), or ``GROUP`` alone when the member
carries the group's name (a single run folder ``runs/sgd`` given as is).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SharpscopeError
from .inputs import resolve_inputs

__all__ = ["group_spec", "resolve_groups"]

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAGIC = re.compile(r"[*?[]")


def _is_run(folder: Path) -> bool:
    return (folder / "final.pt").is_file() or (folder / "last.pt").is_file()


def _runs_inside(folder: Path) -> list[Path]:
    """The run folders directly inside ``folder`` (``runs/sam/seed0``, ...), sorted."""
    if not folder.is_dir() or _is_run(folder):
        return []
    return sorted(d for d in folder.iterdir() if d.is_dir() and _is_run(d))


def _members(entry: str | Path) -> list[Path]:
    """The checkpoints or run folders one entry stands for (a glob, a folder of runs, a path)."""
    text = str(entry)
    if _MAGIC.search(text) and not Path(text).expanduser().exists():
        matches = sorted(glob.glob(str(Path(text).expanduser())))
        if not matches:
            raise CheckpointError(f"{text} matches no checkpoint or run folder")
        return [m for match in matches for m in (_runs_inside(Path(match)) or [Path(match)])]
    path = Path(text).expanduser()
    return _runs_inside(path) or [path]


def _split(arg: str) -> tuple[str, str] | None:
    """``(label, pattern)`` of a ``LABEL=GLOB`` argument (``None`` for a plain path)."""
    label, sep, pattern = arg.partition("=")
    if not sep or Path(arg).expanduser().exists():
        return None
    if not _LABEL.fullmatch(label) or not pattern:
        raise SharpscopeError(
            f"invalid group {arg!r}: write LABEL=GLOB with a label of letters, digits, '.', "
            "'_' or '-' and a non-empty glob, e.g. sgd=runs/sgd-s*/"
        )
    return label, pattern


def group_spec(checkpoints: Any) -> dict[str, list[Any]] | None:
    """The groups ``checkpoints`` names (label -> entries), or ``None`` for plain checkpoints.

    A mapping is groups as given. In a list, ``LABEL=GLOB`` arguments and folders holding
    run folders make it a comparison of groups; there, every other checkpoint or run
    folder is a group of one named after it.
    """
    if isinstance(checkpoints, Mapping):
        return {str(k): list(_as_list(v, str(k))) for k, v in checkpoints.items()}
    if isinstance(checkpoints, (str, Path)):
        checkpoints = [checkpoints]
    groups: dict[str, list[Any]] = {}
    grouped = False
    for raw in checkpoints or []:
        split = _split(str(raw))
        if split is not None:
            grouped = True
            groups.setdefault(split[0], []).append(split[1])
            continue
        path = Path(raw).expanduser()
        if _runs_inside(path):
            grouped = True
            groups.setdefault(path.resolve().name, []).append(raw)
        else:
            groups.setdefault(resolve_inputs([raw])[0]["name"], []).append(raw)
    return groups if grouped else None


def _as_list(value: Any, label: str) -> Sequence[Any]:
    if isinstance(value, (str, Path)):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise SharpscopeError(
            f"group {label!r}: expected a list of checkpoints or run folders, got {value!r}"
        ) from None


def resolve_groups(spec: dict[str, list[Any]]) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """The input records of every member (with ``group``) and each group's record indices."""
    if not spec:
        raise SharpscopeError("compare needs at least one group of checkpoints or run folders")
    records: list[dict[str, Any]] = []
    groups: dict[str, list[int]] = {}
    for label, entries in spec.items():
        if not _LABEL.fullmatch(label):
            raise SharpscopeError(
                f"invalid group label {label!r}: use letters, digits, '.', '_' or '-'"
            )
        members = [m for entry in entries for m in _members(entry)]
        if not members:
            raise SharpscopeError(f"group {label!r} has no checkpoints or run folders")
        seen: set[Path] = set()
        groups[label] = []
        for rec in resolve_inputs(members):
            where = Path(rec["checkpoint"]).resolve()
            if where in seen:
                raise SharpscopeError(f"group {label!r} lists {rec['checkpoint']} twice")
            seen.add(where)
            name = rec["name"]
            rec.update(group=label, name=label if name == label else f"{label}.{name}")
            groups[label].append(len(records))
            records.append(rec)
    return records, groups

"""The report folder's caches: per-probe JSON records, owned folders, shared directions.

A cache is only an optimisation: a record that cannot be read or fails its schema is a
one-line notice and recomputed; a folder made for another checkpoint is emptied; the
settings file refuses a report made with other settings (without ``--force``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SharpscopeError
from ..runtime.cache import (
    NUM,
    NUM_REQUIRED,
    Damaged,
    check_schema,
    notice,
    nums,
    read_json_checked,
    surface_problem,
)
from ..runtime.distributed import current, is_main
from ..runtime.files import atomic_write_json, to_jsonable
from .settings import SETTINGS_FILE


def jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(to_jsonable(obj)))


def cached(
    path: Path,
    key: dict[str, Any],
    compute: Any,
    *,
    validate: Any = None,
    grids: Sequence[Path] = (),
    drawn: Sequence[Path] = (),
) -> tuple[Any, bool]:
    """``compute()``'s JSON-ready result, from ``path`` when its key matches (then ``True``).

    A cache that cannot be read, or whose result fails ``validate``, is a miss: a one-line
    notice, then recomputed. Before computing, grids in ``grids`` that a resume could not
    read are removed; ``drawn`` are grids the report draws, which a hit needs intact.
    """
    key = jsonable(key)

    def stored() -> Any:
        try:
            old = read_json_checked(path)
        except FileNotFoundError:
            return None
        except Damaged as exc:
            notice(path, str(exc))
            return None
        if not isinstance(old, dict) or "key" not in old or not isinstance(old.get("result"), dict):
            notice(path, "not a sharpscope cache record")
            return None
        if old["key"] != key:
            return None  # computed with other settings: recomputed
        try:
            if validate is not None:
                validate(old["result"])
        except Damaged as exc:
            notice(path, str(exc))
            return None
        for folder in drawn:
            if not (folder / "surface.npz").is_file():
                return None
            if surface_problem(folder) is not None:
                drop_damaged_grids([folder])
                return None
        return old["result"]

    ctx = current()  # distributed: rank 0 reads the cache and tells the others
    old_result = ctx.run_on_main(stored) if ctx is not None else stored()
    if old_result is not None:
        return old_result, True
    if grids and is_main():
        drop_damaged_grids(grids)
    result = jsonable(compute())
    atomic_write_json(path, {"key": key, "result": result})
    return result, False


def clear_report(out: Path) -> None:
    """Remove what :func:`compare` writes into ``out`` (and nothing else)."""
    if not is_main():  # distributed runs: rank 0 owns the files
        return
    for name in ("cache", "figures"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (SETTINGS_FILE, "directions.pt", "summary.json", "summary.md", "report.html"):
        (out / name).unlink(missing_ok=True)


def claim(folder: Path, owner: dict[str, Any]) -> None:
    """Make ``folder`` belong to ``owner`` (checkpoint fingerprints): stale contents are removed."""
    if not is_main():  # distributed runs: rank 0 owns the files
        return
    marker = folder / "owner.json"
    owner = jsonable(owner)
    if folder.is_dir():
        try:
            old = read_json_checked(marker)
        except FileNotFoundError:
            old = None
        except Damaged as exc:
            notice(marker, str(exc))
            old = None
        if old != owner:
            shutil.rmtree(folder, ignore_errors=True)
    if not marker.is_file():
        atomic_write_json(marker, owner)


def check_settings_file(out: Path, settings: dict[str, Any]) -> None:
    """Refuse a report folder made with other settings (or whose settings file is damaged)."""
    settings_path = out / SETTINGS_FILE
    try:
        old = read_json_checked(settings_path)
    except FileNotFoundError:
        return
    except Damaged as exc:
        raise SharpscopeError(
            f"{settings_path} is damaged ({exc}): use --force to replace the report in {out} "
            "or choose another --out"
        ) from None
    saved = old.get("settings") if isinstance(old, dict) else None
    if not isinstance(saved, dict):
        raise SharpscopeError(
            f"{settings_path} is damaged (no settings object): use --force to replace the "
            f"report in {out} or choose another --out"
        )
    want = jsonable(settings)
    if saved != want:
        diff = sorted(str(k) for k in set(want) | set(saved) if saved.get(k) != want.get(k))
        raise SharpscopeError(
            f"{out} holds a report made with other settings ({', '.join(diff)} "
            "differ): use --force to replace it or choose another --out"
        )


def directions_fingerprint(dirs: Any, count: int) -> str:
    """A hash of the first ``count`` raw direction vectors; :class:`Damaged` if they are not tensors."""
    h = hashlib.sha1()
    vectors = list(getattr(dirs, "vectors", None) or [])
    if len(vectors) < count:
        raise Damaged(f"holds {len(vectors)} directions, expected {count}")
    for vec in vectors[:count]:
        if not isinstance(vec, dict) or not vec:
            raise Damaged("a direction is not a set of named tensors")
        for name in sorted(vec, key=str):
            t = vec[name]
            if not isinstance(name, str) or not isinstance(t, torch.Tensor):
                raise Damaged("a direction is not a set of named tensors")
            if not t.is_floating_point():
                raise Damaged(f"direction entry {name[:60]} is not floating point")
            t = t.detach().to("cpu", torch.float64).contiguous()
            h.update(f"{name}:{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def load_shared_directions(dir_path: Path, model: Any, need: int, seed: int) -> Any:
    """The saved shared directions when they are intact and fit ``model``; else ``None``."""
    from ..landscape.directions import load_directions

    if not dir_path.exists():
        return None
    try:
        dirs = load_directions(dir_path)
        directions_fingerprint(dirs, need)
    except (Damaged, ValueError, TypeError, AttributeError, KeyError, RuntimeError) as exc:
        notice(dir_path, str(exc).replace(str(dir_path), "").strip(" :") or type(exc).__name__)
        return None
    if dirs.seed != seed:
        return None
    try:
        dirs.resolve(model)
    except (SharpscopeError, TypeError, RuntimeError):
        return None  # drawn for another first model: drawn again
    return dirs


def drop_damaged_grids(folders: Sequence[Path]) -> None:
    """Remove grid files (``surface.npz``, ``meta.json``) that a resume cannot read."""
    for folder in folders:
        problem = surface_problem(folder)
        if problem is not None:
            notice(folder / "surface.npz", problem)
            for name in ("surface.npz", "meta.json"):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (folder / name).unlink()
                if (folder / name).is_dir():
                    shutil.rmtree(folder / name, ignore_errors=True)


def grid_folders(probe: str, folder: Path) -> list[Path]:
    """The resumable grids a probe keeps under its cache folder."""
    if probe == "slice1d":
        root = folder / "slice1d" / "directions"
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if probe in ("slice2d", "plane"):
        return [folder / probe]
    if probe == "interpolation":
        return [folder]
    return []


def schemas(s: dict[str, Any]) -> dict[str, Any]:
    """What every probe's cached result must hold: the fields the tables and figures read."""
    n1, n2 = int(s["range1d"][2]), int(s["range2d"][2])
    ni, dc = int(s["interp_range"][2]), int(s["directions_count"])
    del n2
    point = nums(2, required=True)
    return {
        "metrics": {
            "train_loss": NUM,
            "train_acc": NUM,
            "test_loss": NUM,
            "test_acc": NUM,
            "logged_test_acc": NUM,
            "epochs": ("opt", "int"),
            "logged": "dict",
            "optimizer": ("opt", "str"),
            "hparams": ("opt", "dict"),
        },
        "eigen": {"eigenvalues": nums(required=True), "lambda_max": NUM_REQUIRED},
        "trace": {"trace": NUM, "stderr": NUM},
        "density": {
            "density": nums(),
            "grid": nums(),
            "lambda_max": NUM_REQUIRED,
            "runs": "int",
            "iters": "int",
        },
        "sharpness": {
            "worst": {"sharpness": NUM},
            "average": {"sharpness": NUM, "stderr": NUM},
        },
        "slice1d": {
            "x": nums(n1, required=True),
            "loss": ("list", nums(n1), dc),
            "accuracy": ("list", nums(n1), dc),
            "curvature_fd": nums(dc),
            "curvature_fit": nums(dc),
            "curvature_fit_median": NUM,
            "rise_1d": NUM,
            "median": nums(n1),
            "q10": nums(n1),
            "q90": nums(n1),
            "median_accuracy": nums(n1),
        },
        "slice2d": {"rise_2d": NUM},
        "plane": {
            **{k: NUM_REQUIRED for k in ("psi", "psi_deg", "alpha_star", "rho", "rho_max")},
            **{
                k: NUM
                for k in (
                    "cos_psi",
                    "grad_norm",
                    "loss_theta0",
                    "loss_alpha0",
                    "loss_sam",
                    "loss_xsam",
                    "worst_sharpness",
                    "capture_sam",
                    "capture_xsam",
                )
            },
            "k": "int",
            "degenerate": "bool",
            "settings": "dict",
            "worst": {
                "coords": point,
                "loss": NUM_REQUIRED,
                "angle_to_plane_deg": NUM_REQUIRED,
            },
            "arc": {
                "alphas": nums(required=True),
                "losses": nums(),
                "coords": ("list", point, None),
            },
            "path": {"coords": ("list", point, None), "off_plane": nums()},
            "v1_coords": point,
        },
        "interpolation": {
            "a": "str",
            "b": "str",
            "t": nums(ni, required=True),
            "loss": nums(ni),
            "accuracy": nums(ni),
            **{k: NUM for k in ("loss_a", "loss_b", "loss_mid", "barrier", "distance")},
        },
        "over_training": {
            "run": "str",
            "epochs": ("list", "int", None),
            "lambda_max": nums(),
            "lr": nums(),
        },
    }


def validator(probe: str, schema: Any, extra: Any = None) -> Any:
    def check(result: Any) -> None:
        check_schema(result, schema, probe)
        if probe == "density" and len(result["density"]) != len(result["grid"]):
            raise Damaged("density: density and grid differ in length")
        if probe == "plane":
            arc = result["arc"]
            if not (len(arc["alphas"]) == len(arc["losses"]) == len(arc["coords"])):
                raise Damaged("plane: the arc's alphas, losses and coords differ in length")
        if probe == "over_training":
            n = len(result["epochs"])
            if len(result["lambda_max"]) != n or len(result["lr"]) != n:
                raise Damaged("over_training: epochs, lambda_max and lr differ in length")
        if extra is not None:
            extra(result)

    return check

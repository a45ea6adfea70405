"""Put minima side by side: which one is flatter, by which measure, and by how much.

:func:`compare` runs every probe of sharpscope on several checkpoints with the same
data subset, model mode, seed and (filter-normalised, per-model re-scaled) random
directions, and writes a report folder:

* ``summary.json`` and ``summary.md``: one row per checkpoint, one column per
  measure, the flattest value marked (every flatness measure: lower = flatter);
* ``figures/*.png``: overlaid 1D slices, 2D contours on one colour scale, spectral
  densities, interpolation paths, XSAM planes, ``lambda_max`` over training;
* ``report.html``: one self-contained page (plotly inlined once, no network);
* ``directions.pt`` (the shared raw directions) and ``cache/`` (every probe's
  numbers per checkpoint, written atomically, and the resumable grids), so a
  repeated or interrupted call only computes what is missing.

The measures and what they answer:

* ``lambda_max``, ``trace``: the top eigenvalue and the trace of the Hessian of the
  training loss (Lanczos; Hutchinson with a standard error);
* ``worst``: worst-case sharpness ``max_{||d|| <= rho} L(theta + d) - L(theta)``
  (Keskar et al. 2017), ``average``: ``E L(theta + d) - L(theta)`` with
  ``d ~ N(0, rho^2 I)`` (Andriushchenko et al. 2023);
* ``curvature_1d``, ``rise_1d``, ``rise_2d``: from loss slices along random
  filter-normalised directions (Li et al. 2018), which are invariant to the
  layer-wise rescalings that change the Hessian measures without changing the
  function (Dinh et al. 2017, "Sharp Minima Can Generalize For Deep Nets").
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import json
import platform
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._cache import (
    NUM,
    NUM_REQUIRED,
    Damaged,
    check_schema,
    notice,
    nums,
    read_json_checked,
    surface_problem,
)
from ._func import preserved, probe_mode
from .distributed import current, is_main
from .errors import CheckpointError, SharpscopeError
from .utils import (
    atomic_write_json,
    check_writable,
    folder_lock,
    parse_range,
    progress,
    to_jsonable,
)

__all__ = [
    "PROBES",
    "MEASURES",
    "Measure",
    "ComparisonReport",
    "compare",
    "resolve_inputs",
    "unique_labels",
]

PROBES = (
    "metrics",
    "eigen",
    "trace",
    "density",
    "sharpness",
    "slice1d",
    "slice2d",
    "plane",
    "interpolation",
    "over_training",
)
SETTINGS_FILE = "settings.json"
REPORT_FORMAT = "sharpscope-comparison"


@dataclass(frozen=True)
class Measure:
    """One column of the flatness table (every one of them: lower = flatter)."""

    key: str
    title: str
    probe: str
    description: str
    lower_is_flatter: bool = True


MEASURES: tuple[Measure, ...] = (
    Measure(
        "lambda_max", "lambda_max", "eigen", "top eigenvalue of the Hessian of the training loss"
    ),
    Measure(
        "trace",
        "tr(H)",
        "trace",
        "Hessian trace (Hutchinson), with its standard error",
    ),
    Measure(
        "worst",
        "worst-case sharpness",
        "sharpness",
        "max over ||d|| <= rho of L(theta + d) - L(theta) (projected gradient ascent)",
    ),
    Measure(
        "average",
        "average-case sharpness",
        "sharpness",
        "E L(theta + d) - L(theta), d ~ N(0, rho^2 I) (Monte Carlo, with its standard error)",
    ),
    Measure(
        "curvature_1d",
        "1D curvature",
        "slice1d",
        "median over the shared filter-normalised directions of the curvature at the minimum",
    ),
    Measure(
        "rise_1d",
        "1D loss rise",
        "slice1d",
        "median 1D slice at the ends of the range minus the loss at the minimum",
    ),
    Measure(
        "rise_2d",
        "2D loss rise",
        "slice2d",
        "mean loss over the 2D slice minus the loss at the minimum",
    ),
)

PERFORMANCE_COLUMNS = (
    ("train_loss", "train loss", "loss on the probe subset of the training split (recomputed)"),
    ("train_acc", "train acc", "accuracy on the probe subset (recomputed)"),
    ("test_loss", "test loss", "loss on the whole test split (recomputed)"),
    ("test_acc", "test acc", "accuracy on the whole test split (recomputed)"),
    ("logged_test_acc", "test acc (logged)", "the last epoch's test accuracy in the checkpoint"),
    ("epochs", "epochs", "epochs the checkpoint was trained for"),
)

PLANE_COLUMNS = (
    ("psi_deg", "psi (deg)", "angle between v0 and v1 (SAM's direction)"),
    ("alpha_star", "alpha*", "XSAM's arc maximiser (1 = SAM's direction)"),
    ("capture_sam", "SAM capture", "share of the worst-case loss rise reached along v1 (SAM)"),
    ("capture_xsam", "XSAM capture", "share of the worst-case loss rise reached at alpha*"),
    ("plane_worst", "worst (rho_max)", "worst-case sharpness in the rho_max ball"),
)

INTERPOLATION_COLUMNS = (
    ("barrier", "barrier", "max over t in [0, 1] of L(t) minus the straight line between the ends"),
    ("loss_mid", "loss at t=0.5", "loss halfway between the two minima"),
    ("distance", "distance", "||theta_b - theta_a|| (parameters)"),
)


# ----------------------------------------------------------------------------- report object
@dataclass
class ComparisonReport:
    """What :func:`compare` found and where it wrote it.

    Attributes:
        out: the report folder.
        labels: one label per checkpoint (run folder names, de-duplicated).
        checkpoints: the checkpoint files compared (``final.pt`` of run folders).
        tables: ``flatness``, ``performance``, ``plane``, ``interpolation``: each with
            ``columns`` and ``rows`` (``label`` and ``values``; ``stderr`` where known);
            ``flatness`` also marks the ``flattest`` label(s) per measure.
        comparisons: per measure, each checkpoint against the first (the baseline):
            value, ratio, flatter or not, and (with standard errors) whether the
            difference exceeds two standard errors.
        details: every probe's numbers per label.
        settings: every setting that defines the numbers.
        files: the files written (summary, figures, HTML page).
        notes: warnings (one checkpoint only, probes skipped, mismatches allowed...).
    """

    out: Path
    labels: list[str]
    checkpoints: list[str]
    tables: dict[str, Any]
    comparisons: dict[str, Any]
    details: dict[str, Any]
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def html_path(self) -> Path:
        return self.out / "report.html"

    def flattest(self, measure: str) -> list[str]:
        """The label(s) with the lowest value of ``measure`` (empty with fewer than 2 values)."""
        return list(self.tables["flatness"]["flattest"].get(measure, []))

    def value(self, label: str, measure: str) -> float | None:
        """The number in the table (flatness or performance) for ``label`` and ``measure``."""
        for name in ("flatness", "performance", "plane"):
            for row in self.tables[name]["rows"]:
                if row["label"] == label and measure in row["values"]:
                    return row["values"][measure]
        raise SharpscopeError(f"no measure {measure!r} for {label!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of ``summary.json``."""
        return to_jsonable(
            {
                "format": REPORT_FORMAT,
                "version": 1,
                "out": str(self.out),
                "labels": self.labels,
                "checkpoints": self.checkpoints,
                "baseline": self.labels[0] if self.labels else None,
                "tables": self.tables,
                "comparisons": self.comparisons,
                "settings": self.settings,
                "environment": self.environment,
                "notes": self.notes,
                "files": self.files,
                "details": self.details,
            }
        )

    def markdown(self) -> str:
        """The Markdown summary (what ``summary.md`` holds)."""
        from .report import summary_markdown

        return summary_markdown(self)


# ----------------------------------------------------------------------------- inputs
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


def _range(value: Any, name: str, *, needs_zero: bool = True) -> tuple[float, float, int]:
    if isinstance(value, str):
        start, stop, num = parse_range(value, name=name)
    else:
        try:
            start, stop, num = value
        except (TypeError, ValueError) as exc:
            raise SharpscopeError(
                f"invalid {name} {value!r}: expected (start, stop, num) or 'START:STOP:NUM'"
            ) from exc
        start, stop, num = parse_range(f"{float(start)!r}:{float(stop)!r}:{num}", name=name)
    if num < 3:
        raise SharpscopeError(f"invalid {name} {value!r}: needs at least 3 points, got {num}")
    if needs_zero:
        axis = np.linspace(start, stop, num)
        if not (start < 0 < stop) or np.abs(axis).min() > 1e-12 * max(abs(start), abs(stop)):
            raise SharpscopeError(
                f"invalid {name} {value!r}: 0 (the minimum itself) must be a grid point, "
                "e.g. -1:1:51 (a symmetric range with an odd number of points)"
            )
    return float(start), float(stop), int(num)


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SharpscopeError(f"{name} must be a whole number of at least {low}, got {value!r}")
    return int(value)


def _file_fingerprint(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _run_fingerprint(run: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(run.glob("epoch_*.pt")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(to_jsonable(obj)))


def _cached(
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
    key = _jsonable(key)

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
                _drop_damaged_grids([folder])
                return None
        return old["result"]

    ctx = current()  # distributed: rank 0 reads the cache and tells the others
    old_result = ctx.run_on_main(stored) if ctx is not None else stored()
    if old_result is not None:
        return old_result, True
    if grids and is_main():
        _drop_damaged_grids(grids)
    result = _jsonable(compute())
    atomic_write_json(path, {"key": key, "result": result})
    return result, False


def _clear_report(out: Path) -> None:
    """Remove what :func:`compare` writes into ``out`` (and nothing else)."""
    if not is_main():  # distributed runs: rank 0 owns the files
        return
    for name in ("cache", "figures"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (SETTINGS_FILE, "directions.pt", "summary.json", "summary.md", "report.html"):
        (out / name).unlink(missing_ok=True)


def _claim(folder: Path, owner: dict[str, Any]) -> None:
    """Make ``folder`` belong to ``owner`` (checkpoint fingerprints): stale contents are removed."""
    if not is_main():  # distributed runs: rank 0 owns the files
        return
    marker = folder / "owner.json"
    owner = _jsonable(owner)
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


def _environment(device: torch.device) -> dict[str, Any]:
    import matplotlib
    import plotly

    from ._version import __version__

    return {
        "sharpscope": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "plotly": plotly.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


# ----------------------------------------------------------------------------- probes
def _probe_metrics(problem: Any, batches: list, mode: str, batch_size: int) -> dict[str, Any]:
    from .landscape.grid import evaluate_point

    model = problem.model
    test = problem.batches("test", batch_size)
    with preserved(model), probe_mode(model, mode):
        train_loss, train_acc = evaluate_point(model, problem.loss_fn, batches)
        test_loss, test_acc = evaluate_point(model, problem.loss_fn, test) if test else (None, None)
    ck = problem.checkpoint
    logged = dict(ck.final_metrics) if ck is not None else {}
    return {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "logged": logged,
        "logged_test_acc": logged.get("test_acc"),
        "epochs": len(ck.metrics) if ck is not None else None,
        "optimizer": (ck.optimizer or {}).get("name") if ck is not None else None,
        "hparams": (ck.optimizer or {}).get("hparams") if ck is not None else None,
    }


def _probe_eigen(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from .hessian import hessian_eigenvalues

    res = hessian_eigenvalues(
        problem.model, problem.loss_fn, batches, k=s["top_k"], mode=s["mode"], seed=s["seed"]
    ).to_dict()
    res["lambda_max"] = max(res["eigenvalues"])
    return res


def _probe_trace(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from .hessian import hessian_trace

    res = hessian_trace(
        problem.model,
        problem.loss_fn,
        batches,
        probes=s["trace_probes"],
        mode=s["mode"],
        seed=s["seed"],
    ).to_dict()
    res.pop("probe_values", None)
    return res


def _probe_density(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from .hessian import spectral_density

    res = spectral_density(
        problem.model,
        problem.loss_fn,
        batches,
        runs=s["density_runs"],
        iters=s["density_iters"],
        grid_points=400,
        mode=s["mode"],
        seed=s["seed"],
    ).to_dict()
    res.pop("nodes", None)
    res.pop("weights", None)
    return res


def _probe_sharpness(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from .sharpness import sharpness

    common = dict(rho=s["rho"], mode=s["mode"], seed=s["seed"])
    worst = sharpness(
        problem.model,
        problem.loss_fn,
        batches,
        measure="worst",
        steps=s["worst_steps"],
        restarts=s["worst_restarts"],
        **common,
    ).to_dict()
    average = sharpness(
        problem.model,
        problem.loss_fn,
        batches,
        measure="average",
        samples=s["average_draws"],
        **common,
    ).to_dict()
    return {"worst": worst, "average": average}


def _axis(r: Sequence[float]) -> np.ndarray:
    return np.linspace(float(r[0]), float(r[1]), int(r[2]))


def _probe_slice1d(
    problem: Any, batches: list, dirs: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from .landscape.multi import evaluate_slices_1d

    axis = _axis(s["range1d"])
    sset = evaluate_slices_1d(
        problem.model,
        problem.loss_fn,
        batches,
        dirs[: s["directions_count"]],
        axis,
        out_dir=out_dir,
        mode=s["mode"],
        quiet=True,
        force=True,
        metadata={"label": problem.label},
    )
    summary = sset.summary()
    med = sset.median
    center = summary["center_loss"]
    ends = [v for v in (med[0], med[-1]) if np.isfinite(v)]
    return {
        **summary,
        "rise_1d": float(np.mean(ends)) - center if ends and center is not None else None,
        "x": sset.x.tolist(),
        "loss": sset.loss.tolist(),
        "accuracy": sset.accuracy.tolist(),
        "median": med.tolist(),
        "q10": sset.q10.tolist(),
        "q90": sset.q90.tolist(),
        "median_accuracy": sset.median_accuracy.tolist(),
    }


def _probe_slice2d(
    problem: Any, batches: list, dirs: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from .landscape.grid import evaluate_grid

    axis = _axis(s["range2d"])
    surf = evaluate_grid(
        problem.model,
        problem.loss_fn,
        batches,
        dirs[:2],
        [axis, axis],
        out_dir=out_dir,
        mode=s["mode"],
        quiet=True,
        force=True,
        metadata={"label": problem.label, "command": "compare"},
    )
    summary = surf.summary()
    finite = np.isfinite(surf.loss)
    center = summary["center_loss"]
    summary["rise_2d"] = (
        float(surf.loss[finite].mean()) - center if finite.any() and center is not None else None
    )
    summary["surface_dir"] = str(out_dir)
    return summary


def _probe_plane(problem: Any, batches: list, s: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from .plane import xsam_plane

    res = xsam_plane(
        problem.model,
        problem.loss_fn,
        batches,
        rho=s["rho"],
        grid=tuple(s["plane_range"]),
        mode=s["mode"],
        worst_steps=s["worst_steps"],
        restarts=s["worst_restarts"],
        seed=s["seed"],
        out_dir=out_dir,
        quiet=True,
    )
    rec = res.to_dict(arrays=True)
    rec["surface_dir"] = str(out_dir)
    return rec


def _probe_interpolation(
    a: Any, b: Any, batches: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from .landscape.api import float_state
    from .landscape.grid import evaluate_grid

    sa, sb = float_state(a.model), float_state(b.model)
    direction = {n: sb[n].to(t.device, t.dtype) - t for n, t in sa.items()}
    axis = _axis(s["interp_range"])
    surf = evaluate_grid(
        a.model,
        a.loss_fn,
        batches,
        [direction],
        [axis],
        center=sa,
        mode=s["mode"],
        out_dir=out_dir,
        quiet=True,
        force=True,
        metadata={"command": "compare", "a": a.label, "b": b.label},
    )
    loss = surf.loss
    names = {n for n, _ in a.model.named_parameters()}
    distance = float(
        torch.sqrt(sum((d.double() ** 2).sum() for n, d in direction.items() if n in names))
    )

    def at(t: float) -> float | None:
        hit = np.flatnonzero(np.abs(axis - t) <= 1e-9)
        return float(loss[hit[0]]) if len(hit) else None

    la, lb = at(0.0), at(1.0)
    inside = (axis >= -1e-12) & (axis <= 1 + 1e-12) & np.isfinite(loss)
    barrier = None
    if la is not None and lb is not None and inside.any():
        line = (1 - axis[inside]) * la + axis[inside] * lb
        barrier = float(np.max(loss[inside] - line))
    mid = at(0.5)
    if mid is None and inside.any():
        mid = float(np.interp(0.5, axis[inside], loss[inside]))
    return {
        "a": a.label,
        "b": b.label,
        "t": axis.tolist(),
        "loss": loss.tolist(),
        "accuracy": surf.accuracy.tolist(),
        "loss_a": la,
        "loss_b": lb,
        "loss_mid": mid,
        "barrier": barrier,
        "distance": distance,
    }


def _probe_over_training(run: Path, s: dict[str, Any], device: str) -> dict[str, Any]:
    from .hessian import probe_over_training

    settings = dict(
        k=1,
        which="largest",
        tol=1e-3,
        samples=s["samples"],
        batch_size=s["batch_size"],
        batch_only=False,
        mode=s["mode"],
        params=None,
        backend="auto",
        seed=s["seed"],
    )
    res = probe_over_training(run, what="eigen", settings=settings, device=device, quiet=True)
    epochs = [int(r["epoch"]) for r in res["epochs"]]
    lam = [float(max(r["eigenvalues"])) for r in res["epochs"]]
    lrs = [r.get("lr") for r in res["epochs"]]
    return {"run": str(run), "epochs": epochs, "lambda_max": lam, "lr": lrs}


# ----------------------------------------------------------------------------- tables
def _flattest(values: dict[str, float | None]) -> list[str]:
    finite = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    if len(finite) < 2:
        return []
    best = min(finite.values())
    tol = 1e-12 * max(1.0, abs(best))
    return [k for k, v in finite.items() if v <= best + tol]


def _build_tables(
    labels: list[str], details: dict[str, dict[str, Any]], pairs: list[dict[str, Any]]
) -> dict[str, Any]:
    def get(label: str, probe: str, *keys: str) -> Any:
        v: Any = details.get(label, {}).get(probe)
        for k in keys:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v

    flat_rows = []
    for label in labels:
        values = {
            "lambda_max": get(label, "eigen", "lambda_max"),
            "trace": get(label, "trace", "trace"),
            "worst": get(label, "sharpness", "worst", "sharpness"),
            "average": get(label, "sharpness", "average", "sharpness"),
            "curvature_1d": get(label, "slice1d", "curvature_fit_median"),
            "rise_1d": get(label, "slice1d", "rise_1d"),
            "rise_2d": get(label, "slice2d", "rise_2d"),
        }
        stderr = {
            "trace": get(label, "trace", "stderr"),
            "average": get(label, "sharpness", "average", "stderr"),
        }
        flat_rows.append({"label": label, "values": values, "stderr": stderr})
    measured = [m for m in MEASURES if any(r["values"][m.key] is not None for r in flat_rows)]
    flattest = {
        m.key: _flattest({r["label"]: r["values"][m.key] for r in flat_rows}) for m in measured
    }
    flatness = {
        "columns": [
            {
                "key": m.key,
                "title": m.title,
                "probe": m.probe,
                "description": m.description,
                "lower_is_flatter": m.lower_is_flatter,
            }
            for m in measured
        ],
        "rows": [
            {
                "label": r["label"],
                "values": {m.key: r["values"][m.key] for m in measured},
                "stderr": {k: v for k, v in r["stderr"].items() if k in flattest},
            }
            for r in flat_rows
        ],
        "flattest": flattest,
    }

    perf_rows = []
    for label in labels:
        m = details.get(label, {}).get("metrics")
        if m is None:
            continue
        perf_rows.append(
            {"label": label, "values": {k: m.get(k) for k, _, _ in PERFORMANCE_COLUMNS}}
        )
    plane_rows = []
    for label in labels:
        p = details.get(label, {}).get("plane")
        if p is None:
            continue
        vals = {k: p.get(k) for k, _, _ in PLANE_COLUMNS if k != "plane_worst"}
        vals["plane_worst"] = p.get("worst_sharpness")
        plane_rows.append({"label": label, "values": vals})
    interp_rows = [
        {
            "label": f"{p['a']} -> {p['b']}",
            "values": {k: p.get(k) for k, _, _ in INTERPOLATION_COLUMNS},
        }
        for p in pairs
    ]

    def cols(spec: tuple) -> list[dict[str, str]]:
        return [{"key": k, "title": t, "description": d} for k, t, d in spec]

    return {
        "flatness": flatness,
        "performance": {
            "columns": cols(PERFORMANCE_COLUMNS) if perf_rows else [],
            "rows": perf_rows,
        },
        "plane": {"columns": cols(PLANE_COLUMNS) if plane_rows else [], "rows": plane_rows},
        "interpolation": {
            "columns": cols(INTERPOLATION_COLUMNS) if interp_rows else [],
            "rows": interp_rows,
        },
    }


def _comparisons(tables: dict[str, Any]) -> dict[str, Any]:
    """Each checkpoint against the first, per flatness measure."""
    rows = tables["flatness"]["rows"]
    if len(rows) < 2:
        return {}
    base = rows[0]
    out: dict[str, Any] = {"baseline": base["label"], "measures": {}}
    for col in tables["flatness"]["columns"]:
        key = col["key"]
        b = base["values"].get(key)
        b_se = base.get("stderr", {}).get(key)
        entries = []
        for r in rows[1:]:
            v = r["values"].get(key)
            se = r.get("stderr", {}).get(key)
            entry: dict[str, Any] = {"label": r["label"], "value": v, "baseline_value": b}
            if v is None or b is None:
                entry.update(ratio=None, flatter=None, significant=None)
            else:
                entry["ratio"] = v / b if b > 0 and v >= 0 else None
                entry["flatter"] = bool(v < b)
                if se is not None and b_se is not None:
                    entry["significant"] = bool(abs(v - b) > 2 * float(np.hypot(se, b_se)))
                else:
                    entry["significant"] = None
            entries.append(entry)
        out["measures"][key] = entries
    return out


# ----------------------------------------------------------------------------- main
def compare(
    checkpoints: Sequence[str | Path],
    *,
    out: str | Path,
    samples: int | None = 4096,
    batch_size: int = 512,
    top_k: int = 5,
    rho: float = 0.05,
    range1d: str | Sequence[float] = (-1.0, 1.0, 51),
    range2d: str | Sequence[float] = (-1.0, 1.0, 25),
    directions_count: int = 10,
    seed: int = 0,
    mode: str = "eval",
    trace_probes: int = 100,
    density_runs: int = 3,
    density_iters: int = 80,
    worst_steps: int = 20,
    worst_restarts: int = 2,
    average_draws: int = 64,
    plane_range: str | Sequence[float] | None = None,
    interp_range: str | Sequence[float] = (-0.5, 1.5, 41),
    allow_mismatch: bool = False,
    force: bool = False,
    device: str = "auto",
    quiet: bool = False,
    probes: Sequence[str] | None = None,
) -> ComparisonReport:
    """Compare the minima of several checkpoints with every sharpscope probe.

    Every probe runs on the same seeded subset of the training split, in the same
    model ``mode``, with the same seed; the 1D and 2D slices cut every model along
    the SAME random directions (drawn once, saved to ``out/directions.pt``, and
    filter-normalised against each model's own weights, Li et al. 2018). Numbers
    are cached per checkpoint in ``out/cache`` and grids resume, so calling again
    computes only what is missing.

    Args:
        checkpoints: checkpoint files or run folders (a run folder stands for its
            ``final.pt`` and, for ``lambda_max`` over training, its ``epoch_XXX.pt``).
        out: the report folder.
        samples: training samples in the probe subset (``None``/0: the whole split).
        batch_size: samples per forward pass.
        top_k: Hessian eigenvalues per checkpoint.
        rho: radius of the worst-case ball, scale of the average-case noise and the
            XSAM plane's ascent radius.
        range1d: 1D slice coordinates ``(start, stop, num)`` or ``"START:STOP:NUM"``
            (0 must be a grid point).
        range2d: the same for both axes of the 2D slice.
        directions_count: random directions for the 1D slices (median and band).
        seed: seeds the data subset, the directions and every estimator.
        mode: ``eval`` or ``train`` (batch statistics, running stats frozen).
        trace_probes: Hutchinson probes; ``density_runs``, ``density_iters``: SLQ.
        worst_steps, worst_restarts: projected gradient ascent of the worst case.
        average_draws: noise draws of the average case.
        plane_range: XSAM plane grid (absolute distances; default ``+-5 rho``, 21 points).
        interp_range: coordinates ``t`` of the interpolation paths (0 = first, 1 = second).
        allow_mismatch: compare checkpoints of different architectures or data anyway.
        force: discard what an earlier call wrote in ``out`` and recompute everything.
        device: ``auto``, ``cpu``, ``cuda``...
        quiet: no progress bar.
        probes: the probes to run (default: all of :data:`PROBES`).

    Returns:
        the :class:`ComparisonReport` (also written to ``out``).

    Raises:
        SharpscopeError: no checkpoints, missing files, checkpoints that are not
            comparable, bad ranges or settings, a report in ``out`` made with other
            settings (without ``force``).
    """
    chosen = list(PROBES) if probes is None else [str(p).strip() for p in probes if str(p).strip()]
    unknown = [p for p in chosen if p not in PROBES]
    if unknown or not chosen:
        raise SharpscopeError(
            f"unknown probe(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(PROBES)}"
        )
    if mode not in ("eval", "train"):
        raise SharpscopeError(f"mode must be eval or train, got {mode!r}")
    if samples is not None and (isinstance(samples, bool) or samples < 0):
        raise SharpscopeError(f"samples must be 0 (the whole split) or more, got {samples!r}")
    if not (isinstance(rho, (int, float)) and np.isfinite(rho) and rho > 0):
        raise SharpscopeError(f"rho must be a positive number, got {rho!r}")
    r1 = _range(range1d, "--range")
    r2 = _range(range2d, "--range2d")
    rp = (
        _range(plane_range, "--plane-range") if plane_range is not None else (-5 * rho, 5 * rho, 21)
    )
    ri = _range(interp_range, "--interp-range", needs_zero=False)
    settings: dict[str, Any] = {
        "samples": int(samples) if samples else None,
        "batch_size": _positive_int("batch size", batch_size),
        "top_k": _positive_int("top_k", top_k),
        "rho": float(rho),
        "range1d": list(r1),
        "range2d": list(r2),
        "plane_range": list(rp),
        "interp_range": list(ri),
        "directions_count": _positive_int("directions_count", directions_count),
        "seed": _positive_int("seed", seed, low=0),
        "mode": mode,
        "trace_probes": _positive_int("trace_probes", trace_probes, low=2),
        "density_runs": _positive_int("density_runs", density_runs),
        "density_iters": _positive_int("density_iters", density_iters, low=2),
        "worst_steps": _positive_int("worst_steps", worst_steps),
        "worst_restarts": _positive_int("worst_restarts", worst_restarts, low=0),
        "average_draws": _positive_int("average_draws", average_draws, low=2),
        "directions": {"kind": "random", "norm": "filter", "ignore": "biasbn"},
    }
    inputs = resolve_inputs(checkpoints)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SharpscopeError(f"--out {out} is a file, not a folder")
    check_writable(out / "summary.json", what="report")
    created = not out.exists()
    try:
        # one compare per report folder at a time: a second one would delete the first's caches
        with folder_lock(out, command="compare"):
            return _compare_locked(
                inputs,
                out=out,
                settings=settings,
                chosen=chosen,
                allow_mismatch=allow_mismatch,
                force=force,
                device=device,
                quiet=quiet,
            )
    finally:
        if created and is_main():
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when a failed call wrote nothing


def _check_settings_file(out: Path, settings: dict[str, Any]) -> None:
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
    want = _jsonable(settings)
    if saved != want:
        diff = sorted(str(k) for k in set(want) | set(saved) if saved.get(k) != want.get(k))
        raise SharpscopeError(
            f"{out} holds a report made with other settings ({', '.join(diff)} "
            "differ): use --force to replace it or choose another --out"
        )


def _directions_fingerprint(dirs: Any, count: int) -> str:
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


def _load_shared_directions(dir_path: Path, model: Any, need: int, seed: int) -> Any:
    """The saved shared directions when they are intact and fit ``model``; else ``None``."""
    from .landscape.directions import load_directions

    if not dir_path.exists():
        return None
    try:
        dirs = load_directions(dir_path)
        _directions_fingerprint(dirs, need)
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


def _drop_damaged_grids(folders: Sequence[Path]) -> None:
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


def _grid_folders(probe: str, folder: Path) -> list[Path]:
    """The resumable grids a probe keeps under its cache folder."""
    if probe == "slice1d":
        root = folder / "slice1d" / "directions"
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if probe in ("slice2d", "plane"):
        return [folder / probe]
    if probe == "interpolation":
        return [folder]
    return []


def _schemas(s: dict[str, Any]) -> dict[str, Any]:
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


def _validator(probe: str, schema: Any, extra: Any = None) -> Any:
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


def _compare_locked(
    inputs: list[dict[str, Any]],
    *,
    out: Path,
    settings: dict[str, Any],
    chosen: list[str],
    allow_mismatch: bool,
    force: bool,
    device: str,
    quiet: bool,
) -> ComparisonReport:
    """:func:`compare` once the report folder is locked: validate everything, then write."""
    from .landscape.directions import random_directions
    from .problem import check_comparable, load_problem
    from .report import write_report
    from .utils import resolve_device

    seed, mode = settings["seed"], settings["mode"]
    settings_path = out / SETTINGS_FILE
    ctx = current()  # distributed: rank 0 checks the folder
    if not force:
        ctx.run_on_main(lambda: _check_settings_file(out, settings)) if ctx is not None else (
            _check_settings_file(out, settings)
        )
    notes: list[str] = []
    dev = resolve_device(device)
    # every input is loaded and checked before anything in the folder is replaced
    problems = []
    for rec in inputs:
        problems.append(load_problem(rec["checkpoint"], device=dev))
    labels = unique_labels([rec["name"] for rec in inputs])
    for p, label in zip(problems, labels, strict=True):
        p.label = label
    if len(problems) < 2:
        notes.append(
            "only one checkpoint: its numbers are reported, but nothing is marked flattest "
            "(compare needs at least 2 checkpoints for that)"
        )
        warnings.warn(notes[-1], stacklevel=3)
    try:
        check_comparable(problems, allow_mismatch=False)
        comparable = True
    except CheckpointError:
        if not allow_mismatch:
            raise
        comparable = False
        notes.append(
            "the checkpoints differ in architecture or data (--allow-mismatch): numbers are "
            "measured on each model's own data and may not be comparable"
        )
    batches = {
        p.label: p.batches("train", settings["batch_size"], samples=settings["samples"], seed=seed)
        for p in problems
    }
    fingerprints = {
        p.label: _file_fingerprint(Path(r["checkpoint"]))
        for p, r in zip(problems, inputs, strict=True)
    }
    runs = {p.label: rec["run"] for p, rec in zip(problems, inputs, strict=True)}
    if force:  # everything is validated: only now is the old report replaced
        ctx.run_on_main(lambda: _clear_report(out)) if ctx is not None else _clear_report(out)
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(settings_path, {"format": REPORT_FORMAT, "settings": settings})

    # the shared directions: drawn once from the first model, re-normalised per model
    need = max(settings["directions_count"], 2)
    dir_path = out / "directions.pt"

    def shared() -> Any:
        return _load_shared_directions(dir_path, problems[0].model, need, settings["seed"])

    dirs_obj = ctx.run_on_main(shared) if ctx is not None else shared()
    if dirs_obj is None:
        dirs_obj = random_directions(
            problems[0].model, count=need, seed=settings["seed"], norm="filter", ignore="biasbn"
        )
        dirs_obj.save(dir_path)
    dirs_fp = _directions_fingerprint(dirs_obj, need)

    def directions_for(problem: Any) -> list:
        try:
            return dirs_obj.resolve(problem.model)
        except SharpscopeError:
            notes.append(
                f"{problem.label}: the shared directions do not fit this model, so it was "
                "cut along its own random directions (same seed)"
            )
            own = random_directions(
                problem.model, count=need, seed=settings["seed"], norm="filter", ignore="biasbn"
            )
            return own.resolve(problem.model)

    pairs_spec = (
        list(itertools.combinations(range(len(problems)), 2))
        if "interpolation" in chosen and comparable
        else []
    )
    if "interpolation" in chosen and not comparable and len(problems) > 1:
        notes.append("interpolation paths skipped: the checkpoints have different parameters")
    if "over_training" in chosen and not any(runs.values()):
        notes.append(
            "lambda_max over training skipped: give run folders (with epoch_XXX.pt) instead of "
            "checkpoint files to see it"
        )

    per_model = [p for p in chosen if p not in ("interpolation", "over_training")]
    tasks: list[tuple[str, Any]] = [(probe, p) for p in problems for probe in per_model]
    tasks += [("interpolation", (problems[i], problems[j])) for i, j in pairs_spec]
    tasks += [("over_training", p) for p in problems if "over_training" in chosen and runs[p.label]]

    schemas = _schemas(settings)
    details: dict[str, dict[str, Any]] = {p.label: {} for p in problems}
    pairs: list[dict[str, Any]] = []
    reused = 0
    cache = out / "cache"
    bar = progress(tasks, desc="compare", total=len(tasks), quiet=quiet, unit="probe")
    resolved_dirs: dict[str, list] = {}
    for probe, target in bar:
        if hasattr(bar, "set_postfix_str"):
            name = (
                target.label if probe != "interpolation" else f"{target[0].label}-{target[1].label}"
            )
            bar.set_postfix_str(f"{probe} {name}")
        if probe == "interpolation":
            a, b = target
            key = {
                "probe": probe,
                "a": fingerprints[a.label],
                "b": fingerprints[b.label],
                **{
                    k: settings[k]
                    for k in ("samples", "batch_size", "seed", "mode", "interp_range")
                },
            }
            sub = cache / "pairs" / f"{a.label}__{b.label}"
            _claim(sub, {"a": fingerprints[a.label], "b": fingerprints[b.label]})

            def same_pair(r: dict[str, Any], a: Any = a, b: Any = b) -> None:
                if (r["a"], r["b"]) != (a.label, b.label):
                    raise Damaged("interpolation: the labels of the pair differ")

            res, hit = _cached(
                sub / "interpolation.json",
                key,
                lambda a=a, b=b, sub=sub: _probe_interpolation(
                    a, b, batches[a.label], settings, sub
                ),
                validate=_validator(probe, schemas[probe], same_pair),
                grids=[sub],
            )
            pairs.append(res)
            reused += hit
            continue
        p = target
        label = p.label
        folder = cache / label
        _claim(folder, {"checkpoint": fingerprints[label]})
        key = {"probe": probe, "checkpoint": fingerprints[label], "settings": settings}
        if probe == "over_training":
            key["run"] = _run_fingerprint(runs[label])
        if probe in ("slice1d", "slice2d"):
            key["directions"] = dirs_fp  # other shared directions: other slices
        if probe in ("slice1d", "slice2d") and label not in resolved_dirs:
            resolved_dirs[label] = directions_for(p)
        compute = {
            "metrics": lambda p=p: _probe_metrics(
                p, batches[p.label], mode, settings["batch_size"]
            ),
            "eigen": lambda p=p: _probe_eigen(p, batches[p.label], settings),
            "trace": lambda p=p: _probe_trace(p, batches[p.label], settings),
            "density": lambda p=p: _probe_density(p, batches[p.label], settings),
            "sharpness": lambda p=p: _probe_sharpness(p, batches[p.label], settings),
            "slice1d": lambda p=p, f=folder: _probe_slice1d(
                p, batches[p.label], resolved_dirs[p.label], settings, f / "slice1d"
            ),
            "slice2d": lambda p=p, f=folder: _probe_slice2d(
                p, batches[p.label], resolved_dirs[p.label], settings, f / "slice2d"
            ),
            "plane": lambda p=p, f=folder: _probe_plane(p, batches[p.label], settings, f / "plane"),
            "over_training": lambda p=p: _probe_over_training(runs[p.label], settings, str(dev)),
        }[probe]
        res, hit = _cached(
            folder / f"{probe}.json",
            key,
            compute,
            validate=_validator(probe, schemas[probe]),
            grids=_grid_folders(probe, folder),
            drawn=[folder / probe] if probe in ("slice2d", "plane") else [],
        )
        if probe in ("slice2d", "plane"):
            res["surface_dir"] = str(folder / probe)  # never a path read from the cache
        details[label][probe] = res
        reused += hit
    if hasattr(bar, "close"):
        bar.close()

    tables = _build_tables(labels, details, pairs)
    for label in labels:
        details[label]["checkpoint"] = str(inputs[labels.index(label)]["checkpoint"])
    report = ComparisonReport(
        out=out,
        labels=labels,
        checkpoints=[str(rec["checkpoint"]) for rec in inputs],
        tables=tables,
        comparisons=_comparisons(tables),
        details={**details, "pairs": pairs},
        settings={**settings, "probes": chosen, "device": str(dev)},
        notes=list(dict.fromkeys(notes)),
        environment=_environment(dev),
    )
    report.settings["probe_samples"] = int(sum(len(b[1]) for b in batches[labels[0]]))
    report.settings["reused_probes"] = int(reused)
    report.settings["computed_probes"] = len(tasks) - int(reused)
    if is_main():  # distributed runs: rank 0 draws and writes the report
        write_report(report)
    return report

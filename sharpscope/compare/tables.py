"""The tables of a comparison: flatness measures, loss/accuracy, XSAM plane, interpolation.

Every flatness measure: lower = flatter. The tables are built from the probes' numbers
per label; :func:`comparisons` sets each checkpoint against the first (the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MEASURES",
    "Measure",
    "PERFORMANCE_COLUMNS",
    "PLANE_COLUMNS",
    "INTERPOLATION_COLUMNS",
    "build_tables",
    "comparisons",
]


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
# shown only when some checkpoint has them (token models): perplexity = exp(mean token loss)
TOKEN_COLUMNS = (
    ("test_perplexity", "test perplexity", "exp of the test loss (recomputed)"),
    ("logged_perplexity", "perplexity (logged)", "the last epoch's test perplexity"),
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


def _flattest(values: dict[str, float | None]) -> list[str]:
    finite = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    if len(finite) < 2:
        return []
    best = min(finite.values())
    tol = 1e-12 * max(1.0, abs(best))
    return [k for k, v in finite.items() if v <= best + tol]


def build_tables(
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
    metrics = [details.get(label, {}).get("metrics") for label in labels]
    tokens = [c for c in TOKEN_COLUMNS if any(m and m.get(c[0]) is not None for m in metrics)]
    perf_columns = PERFORMANCE_COLUMNS + tuple(tokens)
    for label, m in zip(labels, metrics, strict=True):
        if m is None:
            continue
        perf_rows.append({"label": label, "values": {k: m.get(k) for k, _, _ in perf_columns}})
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
            "columns": cols(perf_columns) if perf_rows else [],
            "rows": perf_rows,
        },
        "plane": {"columns": cols(PLANE_COLUMNS) if plane_rows else [], "rows": plane_rows},
        "interpolation": {
            "columns": cols(INTERPOLATION_COLUMNS) if interp_rows else [],
            "rows": interp_rows,
        },
    }


def comparisons(tables: dict[str, Any]) -> dict[str, Any]:
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

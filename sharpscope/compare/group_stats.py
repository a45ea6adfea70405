"""Is it really flatter? Group summaries, verdicts per pair of groups, correlation with the gap.

Everything here is computed from the per-run numbers of the flatness and performance
tables with :mod:`.stats`: :func:`summarize` per group and measure (with each run's
own standard error for the trace and the average-case sharpness), :func:`compare_groups`
per pair of groups (the later group against the earlier one, the first group being the
baseline) and :func:`kendall_with_gap` of each measure with the generalisation gap
across all runs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .stats import compare_groups, kendall_with_gap, summarize

__all__ = ["GAPS", "STDERR_MEASURES", "group_statistics", "member_values"]

#: measures whose runs carry their own estimator standard error
STDERR_MEASURES = ("trace", "average")
#: the generalisation gaps the measures are correlated with: key, title, description
GAPS = (
    ("gap_loss", "test loss - train loss", "test loss minus train loss (probe subset)"),
    ("test_error", "test error", "1 - test accuracy"),
)
LEVEL = 0.95


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def member_values(
    tables: dict[str, Any], members: list[str], measure: str
) -> tuple[list[str], list[float], list[float] | None]:
    """``(labels, values, standard errors or None)`` of the members with a finite value."""
    rows = {r["label"]: r for r in tables["flatness"]["rows"]}
    used, values, errors = [], [], []
    for label in members:
        row = rows.get(label)
        value = row["values"].get(measure) if row else None
        if not _finite(value):
            continue
        used.append(label)
        values.append(float(value))
        errors.append(row.get("stderr", {}).get(measure))
    if measure not in STDERR_MEASURES or not all(_finite(e) for e in errors):
        return used, values, None
    return used, values, [float(e) for e in errors]


def _summaries(tables: dict[str, Any], groups: dict[str, list[str]], measure: str) -> dict:
    out: dict[str, Any] = {}
    for group, members in groups.items():
        used, values, errors = member_values(tables, members, measure)
        if not values:
            out[group] = None
            continue
        summary = summarize(values, std_errors=errors, level=LEVEL).to_dict()
        out[group] = {"members": used, "values": values, "stderr": errors, **summary}
    return out


def _verdicts(
    summaries: dict[str, Any], *, lower_is_flatter: bool, seed: int
) -> list[dict[str, Any]]:
    out = []
    names = list(summaries)
    for i, j in itertools.combinations(range(len(names)), 2):
        a, b = summaries[names[j]], summaries[names[i]]
        if a is None or b is None:
            continue
        verdict = compare_groups(
            a["values"],
            b["values"],
            a_se=a["stderr"],
            b_se=b["stderr"],
            lower_is_flatter=lower_is_flatter,
            level=LEVEL,
            seed=seed,
        )
        out.append({"a": names[j], "b": names[i], **verdict.to_dict()})
    return out


def _gaps(tables: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each run's generalisation gaps (only those its metrics allow)."""
    out: dict[str, dict[str, float]] = {}
    for row in tables["performance"]["rows"]:
        v = row["values"]
        gaps = {}
        if _finite(v.get("test_loss")) and _finite(v.get("train_loss")):
            gaps["gap_loss"] = float(v["test_loss"]) - float(v["train_loss"])
        if _finite(v.get("test_acc")):
            gaps["test_error"] = 1.0 - float(v["test_acc"])
        out[row["label"]] = gaps
    return out


def _correlations(tables: dict[str, Any], labels: list[str], measure: str) -> dict[str, Any]:
    gaps = _gaps(tables)
    out: dict[str, Any] = {}
    for key, _, _ in GAPS:
        used, values, _ = member_values(tables, labels, measure)
        pairs = [
            (lb, x, gaps[lb][key])
            for lb, x in zip(used, values, strict=True)
            if key in gaps.get(lb, {})
        ]
        if len(pairs) < 2:
            out[key] = None
            continue
        corr = kendall_with_gap([x for _, x, _ in pairs], [g for _, _, g in pairs], level=LEVEL)
        out[key] = {
            "labels": [lb for lb, _, _ in pairs],
            "values": [x for _, x, _ in pairs],
            "gaps": [g for _, _, g in pairs],
            **corr.to_dict(),
        }
    return out


def group_statistics(
    tables: dict[str, Any], groups: dict[str, list[str]], *, seed: int
) -> dict[str, Any]:
    """Per measure: each group's summary, the verdicts of every pair, the correlations.

    Returns ``{"level", "summaries": {measure: {group: summary | None}}, "verdicts":
    {measure: [{"a", "b", **Verdict}]}, "correlations": {measure: {gap: Correlation |
    None}}}``; a verdict reads "a is ``word`` than b".
    """
    labels = [label for members in groups.values() for label in members]
    out: dict[str, Any] = {"level": LEVEL, "summaries": {}, "verdicts": {}, "correlations": {}}
    for col in tables["flatness"]["columns"]:
        key = col["key"]
        summaries = _summaries(tables, groups, key)
        out["summaries"][key] = summaries
        out["verdicts"][key] = _verdicts(
            summaries, lower_is_flatter=col["lower_is_flatter"], seed=seed
        )
        if tables["performance"]["rows"]:
            out["correlations"][key] = _correlations(tables, labels, key)
    return out

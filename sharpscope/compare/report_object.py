"""What :func:`~sharpscope.compare.compare` found and where it wrote it."""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SharpscopeError
from ..runtime.files import to_jsonable
from .settings import REPORT_FORMAT

__all__ = ["ComparisonReport"]


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
        groups: for a comparison of groups (seeds), each group's member labels.
        group_stats: for groups, per measure: each group's mean, std and interval
            (``summaries``), the ``verdicts`` of every pair of groups and the Kendall
            ``correlations`` with the generalisation gap (see :mod:`.group_stats`).
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
    groups: dict[str, list[str]] = field(default_factory=dict)
    group_stats: dict[str, Any] = field(default_factory=dict)

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

    def _group(self, group: str, measure: str) -> dict[str, Any]:
        if group not in self.groups:
            known = ", ".join(self.groups) or "none: this report compares single checkpoints"
            raise SharpscopeError(f"no group {group!r} in this report (groups: {known})")
        summaries = self.group_stats.get("summaries", {})
        if measure not in summaries:
            raise SharpscopeError(
                f"no measure {measure!r} in this report's groups "
                f"(measures: {', '.join(summaries) or 'none'})"
            )
        found = summaries[measure].get(group)
        if found is None:
            raise SharpscopeError(f"group {group!r} has no finite {measure!r}")
        return found

    def group_summary(self, group: str, measure: str) -> Any:
        """The :class:`~sharpscope.compare.stats.GroupSummary` of ``group`` for ``measure``."""
        from .stats import GroupSummary

        s = self._group(group, measure)
        return GroupSummary(**{k: s[k] for k in GroupSummary.__dataclass_fields__})

    def verdict(self, a: str, b: str, measure: str) -> Any:
        """Is group ``a`` flatter than group ``b`` by ``measure``? The
        :class:`~sharpscope.compare.stats.Verdict` of :func:`compare_groups` on the runs'
        numbers (with their standard errors where the measure has them)."""
        from .stats import compare_groups
        from .tables import MEASURES

        ga, gb = self._group(a, measure), self._group(b, measure)
        lower = {m.key: m.lower_is_flatter for m in MEASURES}.get(measure, True)
        return compare_groups(
            ga["values"],
            gb["values"],
            a_se=ga["stderr"],
            b_se=gb["stderr"],
            lower_is_flatter=lower,
            level=self.group_stats.get("level", 0.95),
            seed=int(self.settings["seed"]),
        )

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
                **({"groups": self.groups, "group_stats": self.group_stats} if self.groups else {}),
            }
        )

    def markdown(self) -> str:
        """The Markdown summary (what ``summary.md`` holds)."""
        from ..report import summary_markdown

        return summary_markdown(self)


def environment(device: torch.device) -> dict[str, Any]:
    import matplotlib
    import plotly

    from .._version import __version__

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

"""The Markdown summary of a comparison (``summary.md``) and the tables the CLI prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .format import FLATTEST, format_value
from .groups import group_markdown, group_table, verdict_text
from .notes import (
    FIGURE_GUIDE,
    MODE_NOTE,
    SEARCH_HEAD,
    boundary_warnings,
    curvature_note,
    samples_text,
    search_rows,
)

__all__ = ["summary_markdown", "summary_tables"]


def _md_table(table: dict[str, Any], *, first: str, marks: bool) -> list[str]:
    cols = table["columns"]
    if not cols or not table["rows"]:
        return []
    flattest = table.get("flattest", {}) if marks else {}
    head = [first] + [c["title"] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        cells = [row["label"]]
        for c in cols:
            text = format_value(row["values"].get(c["key"]), row.get("stderr", {}).get(c["key"]))
            if row["label"] in flattest.get(c["key"], []):
                text = f"**{text}** {FLATTEST}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict_lines(report: Any) -> list[str]:
    comp = report.comparisons
    if not comp:
        return []
    base = comp["baseline"]
    titles = {c["key"]: c["title"] for c in report.tables["flatness"]["columns"]}
    lines = [f"## Versus {base}", ""]
    for key, entries in comp["measures"].items():
        parts = []
        for e in entries:
            if e["flatter"] is None:
                parts.append(f"{e['label']}: n/a")
                continue
            word = "flatter" if e["flatter"] else "sharper"
            ratio = f"{e['ratio']:.3g}x" if e["ratio"] is not None else "ratio n/a"
            sig = ""
            if e.get("significant") is not None:
                sig = "" if e["significant"] else ", within 2 standard errors"
            parts.append(
                f"{e['label']} {format_value(e['value'])} vs {format_value(e['baseline_value'])} "
                f"({ratio}, {word}{sig})"
            )
        lines.append(f"- **{titles.get(key, key)}**: " + "; ".join(parts))
    lines.append("")
    return lines


def summary_markdown(report: Any) -> str:
    """The Markdown summary of a comparison (the tables agree with ``summary.json``)."""
    s = report.settings
    t = report.tables
    lines = [
        f"# sharpscope comparison: {', '.join(report.labels)}",
        "",
        f"{len(report.labels)} checkpoint(s) probed on the same "
        f"{samples_text(s.get('probe_samples'))} "
        f"training samples (seed {s['seed']}, {s['mode']} mode, rho {s['rho']:g}, "
        f"{s['directions_count']} shared filter-normalised directions).",
        "",
    ]
    for note in report.notes:
        lines += [f"> note: {note}", ""]
    for warning in boundary_warnings(report):
        lines += [f"> **warning**: {warning}", ""]
    if t["flatness"]["columns"]:
        lines += [
            "## Flatness (lower = flatter for every measure)",
            "",
            *_md_table(t["flatness"], first="checkpoint", marks=True),
            "",
        ]
        for c in t["flatness"]["columns"]:
            direction = "lower = flatter" if c["lower_is_flatter"] else "higher = flatter"
            lines.append(f"- **{c['title']}** ({direction}): {c['description']}.")
        lines.append("")
        note = curvature_note(report)
        if note:
            lines += [note + ".", ""]
    # groups: mean and interval per group and a verdict per pair replace 'versus the first'
    lines += group_markdown(report) or _verdict_lines(report)
    for name, title, first in (
        ("performance", "Loss and accuracy", "checkpoint"),
        ("plane", "XSAM plane (Chen & Zhou 2026)", "checkpoint"),
        ("interpolation", "Interpolation between minima", "path"),
    ):
        rows = _md_table(t[name], first=first, marks=False)
        if rows:
            lines += [f"## {title}", "", *rows, ""]
            for c in t[name]["columns"]:
                lines.append(f"- **{c['title']}**: {c['description']}.")
            lines.append("")
    rows = search_rows(report)
    if rows:
        lines += ["## Searches and their limits", "", *_rows_md(SEARCH_HEAD, rows), ""]
    lines += _spectrum_lines(report)
    lines += _figure_lines(report)
    return "\n".join(lines)


def _rows_md(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _spectrum_lines(report: Any) -> list[str]:
    """Top eigenvalues and the SLQ trace (with its error over runs) of each checkpoint."""
    lines: list[str] = []
    eig = [
        (label, report.details[label]["eigen"]["eigenvalues"])
        for label in report.labels
        if "eigen" in report.details.get(label, {})
    ]
    if eig:
        lines += ["## Top Hessian eigenvalues", ""]
        for label, values in eig:
            lines.append(f"- {label}: " + ", ".join(format_value(v) for v in values))
        lines += ["", f"{report.settings.get('mode', 'eval')} mode: {MODE_NOTE}", ""]
    dens = [
        (label, report.details[label]["density"])
        for label in report.labels
        if "density" in report.details.get(label, {})
    ]
    if dens:
        lines += [
            "## Hessian trace from the spectral density (SLQ, ± standard error over runs)",
            "",
        ]
        for label, d in dens:
            se = d.get("trace_stderr")
            extra = "" if se is not None else " (one run: no error bar)"
            lines.append(f"- {label}: {format_value(d.get('trace_estimate'), se)}{extra}")
        lines.append("")
    return lines


def _figure_lines(report: Any) -> list[str]:
    """Each figure once, with how to read it and links to its other formats."""
    figs = [(k.split(":", 1)[1], v) for k, v in report.files.items() if k.startswith("figure:")]
    if not figs:
        return []
    lines = ["## Figures", ""]
    for name, path in figs:
        rel = Path(path).relative_to(report.out).as_posix()
        lines.append(f"![{name}]({rel})")
        guide = FIGURE_GUIDE.get("plane_detail" if name.startswith("plane_") else name)
        others = [
            f"[{k.split(':', 1)[0].partition('_')[2].upper()}]"
            f"({Path(v).relative_to(report.out).as_posix()})"
            for k, v in report.files.items()
            if k.startswith("figure_") and k.split(":", 1)[1] == name
        ]
        lines += [
            "",
            *([guide] if guide else []),
            *(["Also: " + ", ".join(others)] if others else []),
        ]
        lines.append("")
    return lines


def summary_tables(report: Any) -> str:
    """The flatness and the loss/accuracy tables as Markdown (what the CLI prints)."""
    t = report.tables
    lines = []
    if t["flatness"]["columns"]:
        lines += [
            "Flatness (lower = flatter):",
            *_md_table(t["flatness"], first="checkpoint", marks=True),
            "",
        ]
    perf = _md_table(t["performance"], first="checkpoint", marks=False)
    if perf:
        lines += ["Loss and accuracy:", *perf, ""]
    if getattr(report, "groups", None):
        titles = {c["key"]: c["title"] for c in t["flatness"]["columns"]}
        lines += ["Groups (mean [95% CI] over runs):", *group_table(report), ""]
        lines += ["Is it really flatter?"]
        for measure, verdicts in report.group_stats.get("verdicts", {}).items():
            lines += [f"  {titles.get(measure, measure)}: {verdict_text(v)}" for v in verdicts]
        lines.append("")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines).rstrip()

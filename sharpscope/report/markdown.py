"""The Markdown summary of a comparison (``summary.md``) and the tables the CLI prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .format import FLATTEST, format_value
from .groups import group_markdown, group_table, verdict_text

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
        f"{len(report.labels)} checkpoint(s) probed on the same {s.get('probe_samples')} "
        f"training samples (seed {s['seed']}, {s['mode']} mode, rho {s['rho']:g}, "
        f"{s['directions_count']} shared filter-normalised directions).",
        "",
    ]
    for note in report.notes:
        lines += [f"> note: {note}", ""]
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
    eig = [
        (label, report.details[label]["eigen"]["eigenvalues"])
        for label in report.labels
        if "eigen" in report.details.get(label, {})
    ]
    if eig:
        lines += ["## Top Hessian eigenvalues", ""]
        for label, values in eig:
            lines.append(f"- {label}: " + ", ".join(format_value(v) for v in values))
        lines.append("")
    figs = [(k, v) for k, v in report.files.items() if k.startswith("figure:")]
    if figs:
        lines += ["## Figures", ""]
        for key, path in figs:
            rel = Path(path).relative_to(report.out).as_posix()
            lines.append(f"![{key.split(':', 1)[1]}]({rel})")
        lines.append("")
    return "\n".join(lines)


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

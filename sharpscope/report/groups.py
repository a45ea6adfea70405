"""The groups sections of a report: mean and interval per group, verdicts, correlations.

Read from ``report.groups`` and ``report.group_stats`` (plain numbers that
:mod:`sharpscope.compare.group_stats` computed); the same rows feed ``summary.md``,
the CLI and the HTML page, so they agree with ``summary.json``.
"""

from __future__ import annotations

import html
from typing import Any

from .format import format_value

__all__ = ["group_html", "group_markdown", "group_table", "summary_cell", "verdict_text"]

GAP_TITLES = {"gap_loss": "test loss - train loss", "test_error": "test error"}


def summary_cell(s: dict[str, Any] | None) -> str:
    """``mean [low, high]`` of a group's summary (``mean (one run)``, ``n/a``)."""
    if s is None:
        return "n/a"
    if s.get("ci_low") is None:
        return f"{format_value(s['mean'])} (one run)"
    return f"{format_value(s['mean'])} [{format_value(s['ci_low'])}, {format_value(s['ci_high'])}]"


def verdict_text(v: dict[str, Any]) -> str:
    """``sam is flatter than sgd: ratio 0.62 [0.51, 0.77], p = 0.029 (welch t, ...)``."""
    word = v["word"]
    head = f"{v['a']} vs {v['b']}: {word}"
    if word in ("flatter", "sharper"):
        head = f"{v['a']} is {word} than {v['b']}"
    ratio = "ratio n/a" if v.get("ratio") is None else f"ratio {v['ratio']:.3g}"
    if v.get("ratio_ci"):
        ratio += f" [{v['ratio_ci'][0]:.3g}, {v['ratio_ci'][1]:.3g}]"
    p = "" if v.get("p_value") is None else f", p = {v['p_value']:.2g} ({v['test_used']})"
    return f"{head}: {ratio}{p}, n = {v['n_a']}/{v['n_b']}"


def _titles(report: Any) -> dict[str, str]:
    return {c["key"]: c["title"] for c in report.tables["flatness"]["columns"]}


def _summary_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    titles = _titles(report)
    summaries = report.group_stats.get("summaries", {})
    head = ["group", "runs", *(titles[m] for m in summaries)]
    rows = []
    for group, members in report.groups.items():
        cells = [summary_cell(summaries[m].get(group)) for m in summaries]
        rows.append([group, str(len(members)), *cells])
    return head, rows


def _correlation_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    titles = _titles(report)
    corr = report.group_stats.get("correlations", {})
    head = ["measure", *(f"tau with {t}" for t in GAP_TITLES.values())]
    rows = []
    for measure, gaps in corr.items():
        cells = []
        for key in GAP_TITLES:
            c = gaps.get(key)
            if c is None or c.get("tau") is None:
                cells.append("n/a")
                continue
            text = f"{c['tau']:.3g} (p = {c['p_value']:.2g}, n = {c['n']})"
            if c.get("ci"):
                text += f" [{c['ci'][0]:.2g}, {c['ci'][1]:.2g}]"
            cells.append(text)
        rows.append([titles.get(measure, measure), *cells])
    return head, rows


def _md(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def group_table(report: Any) -> list[str]:
    """The Markdown table of each group's mean and interval per measure."""
    return _md(*_summary_rows(report))


def group_markdown(report: Any) -> list[str]:
    """The Markdown sections of a comparison of groups (empty without groups)."""
    if not getattr(report, "groups", None):
        return []
    level = int(round(100 * report.group_stats.get("level", 0.95)))
    lines = [f"## Groups: mean [{level}% CI] over runs (lower = flatter)", ""]
    lines += [*group_table(report), ""]
    lines += ["## Is it really flatter? (every pair of groups)", ""]
    titles = _titles(report)
    for measure, verdicts in report.group_stats.get("verdicts", {}).items():
        for v in verdicts:
            lines.append(f"- **{titles.get(measure, measure)}**: {verdict_text(v)}")
    lines += [
        "",
        "A verdict needs the test (p < 0.05) and the ratio's bootstrap interval to agree; "
        "else the groups are not distinguishable at this number of runs.",
        "",
    ]
    head, rows = _correlation_rows(report)
    if rows:
        lines += ["## Does flatness predict generalisation? (Kendall tau across runs)", ""]
        lines += [*_md(head, rows), ""]
    return lines


def _html(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def group_html(report: Any) -> list[str]:
    """The HTML sections of a comparison of groups (empty without groups)."""
    if not getattr(report, "groups", None):
        return []
    level = int(round(100 * report.group_stats.get("level", 0.95)))
    parts = [f"<h2>Groups: mean [{level}% CI] over runs</h2>", _html(*_summary_rows(report))]
    titles = _titles(report)
    items = [
        f"<li><b>{html.escape(titles.get(m, m))}</b>: {html.escape(verdict_text(v))}</li>"
        for m, verdicts in report.group_stats.get("verdicts", {}).items()
        for v in verdicts
    ]
    parts += ["<h2>Is it really flatter?</h2>", "<ul>" + "".join(items) + "</ul>"]
    head, rows = _correlation_rows(report)
    if rows:
        parts += ["<h2>Does flatness predict generalisation?</h2>", _html(head, rows)]
    return parts

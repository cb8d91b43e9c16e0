"""The report as one self-contained HTML page: tables, and each figure as an embedded PNG.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global state), from the same `Figure` data the JSON carries.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from html import escape
from typing import Any

from copilot.measure.feedback import Group
from copilot.measure.report.model import PLACEMENT_COLUMNS, Figure, Report

COLOURS = {"treated": "#2b6cb0", "holdout": "#a0aec0", "acceptance": "#38a169", "edit": "#d69e2e",
           "rejection": "#e53e3e", "median": "#2b6cb0", "p90": "#90cdf4",
           "ok": "#38a169", "watch": "#d69e2e", "breach": "#e53e3e"}  # fmt: skip
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a202c;max-width:1100px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #cbd5e0;
padding:.25rem .5rem;text-align:right}th{background:#edf2f7}td:first-child,th:first-child
{text-align:left}.warn{background:#fffaf0;border-left:4px solid #dd6b20;padding:.5rem 1rem;
margin:.5rem 0}.breach{color:#c53030;font-weight:600}.watch{color:#b7791f}figure{margin:1rem 0}
img{max-width:100%;border:1px solid #e2e8f0}
"""


def plot_png(fig: Figure) -> bytes:
    """One figure as PNG bytes."""
    from matplotlib.figure import Figure as Canvas  # imported here: the JSON path needs none

    labels = [p.label for p in fig.series[0].points]
    height = max(2.5, 0.45 * len(labels) + 1.2)
    canvas = Canvas(figsize=(9, height), dpi=100, layout="constrained")
    ax = canvas.add_subplot()
    scale = 100.0 if fig.unit in ("rate", "points") else 1.0
    ys = list(range(len(labels)))
    if fig.kind == "interval":
        for y, p in zip(ys, fig.series[0].points, strict=True):
            colour = COLOURS.get(p.flag or "", "#2b6cb0")
            err = [[(p.value - (p.low if p.low is not None else p.value)) * scale],
                   [((p.high if p.high is not None else p.value) - p.value) * scale]]  # fmt: skip
            ax.errorbar([p.value * scale], [y], xerr=err, fmt="o", color=colour, capsize=4)
    elif fig.kind == "stacked":
        left = [0.0] * len(labels)
        for s in fig.series:
            widths = [p.value * scale for p in s.points]
            ax.barh(ys, widths, left=left, color=COLOURS.get(s.name), label=s.name)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        band = 0.8 / len(fig.series)
        for i, s in enumerate(fig.series):
            pos = [y - 0.4 + band * (i + 0.5) for y in ys]
            widths = [p.value * scale for p in s.points]
            xerr = None
            if all(p.low is not None and p.high is not None for p in s.points):
                xerr = [[(p.value - (p.low or 0)) * scale for p in s.points],
                        [((p.high or 0) - p.value) * scale for p in s.points]]  # fmt: skip
            ax.barh(pos, widths, height=band, xerr=xerr, color=COLOURS.get(s.name), label=s.name,
                    capsize=3)  # fmt: skip
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    if fig.reference is not None:
        ax.axvline(fig.reference * scale, color="#718096", linestyle="--", linewidth=1)
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel({"rate": "%", "points": "percentage points", "seconds": "seconds"}[fig.unit])
    ax.set_title(fig.title, fontsize=11)
    buf = io.BytesIO()
    canvas.savefig(buf, format="png")
    return buf.getvalue()


def render_html(report: Report) -> str:
    """The whole page: summary, warnings, lift, segments, guardrails, feedback, figures."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>copilot report: {escape(report.tenant)}</title><style>{CSS}</style></head><body>\n"
        f"{render_body(report)}\n</body></html>"
    )


def render_body(report: Report) -> str:
    """The page's content without the document around it (the web app wraps it in its own)."""
    when = datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>Evaluation report: {escape(report.tenant)}</h1>",
        f"<p>Generated {when}. Workflow: {escape(report.workflow or 'all')}. "
        f"Outcome: {escape(report.outcome or 'none')}. Segment: {escape(report.segment or 'none')}. "
        f"Subjects: {report.subjects} ({report.treated} treated, {report.holdout} holdout). "
        f"Interval: {escape(report.method)}, {1 - report.alpha:.0%}.</p>",
    ]
    parts += [f'<div class="warn" data-warning="{escape(w.code)}"><b>{escape(w.code)}</b>: '
              f"{escape(w.message)}</div>" for w in report.warnings]  # fmt: skip
    if report.lift is not None:
        x = report.lift.lift
        parts.append("<h2>Lift</h2>" + _table(
            ["outcome", "treated", "holdout", "difference", "interval", "p-value", "MDE"],
            [[report.lift.outcome, _arm(x.treated), _arm(x.holdout), _pts(x.difference),
              f"[{_pts(x.low)}, {_pts(x.high)}]", f"{x.p_value:.3g}",
              _pts(x.mde) if x.mde is not None else "-"]]))  # fmt: skip
    if report.evidence:
        parts.append("<h2>Evidence per holdout</h2>" + _evidence(report))
    if report.segments:
        parts.append("<h2>Segments</h2>" + _table(
            ["segment", "subjects", "share", "difference", "interval"],
            [[f"{s.segment}={s.value}", s.subjects, f"{s.share:.0%}",
              _pts(s.lift.difference) if s.lift else "-",
              f"[{_pts(s.lift.low)}, {_pts(s.lift.high)}]" if s.lift else "no comparison"]
             for s in report.segments]))  # fmt: skip
    checks = report.guardrails + [c for s in report.segments for c in s.guardrails]
    if checks:
        parts.append("<h2>Guardrails</h2>" + _table(
            ["metric", "scope", "rule", "threshold", "value", "interval", "status"],
            [[c.metric, c.scope, c.rule, f"{c.threshold:g}", _value(c.rule, c.value),
              f"[{_value(c.rule, c.low)}, {_value(c.rule, c.high)}]",
              f'<span class="{c.status}">{c.status}</span>'] for c in checks],
            raw_last=True))  # fmt: skip
    if report.groups:
        parts.append("<h2>Reviewer feedback and execution</h2>" + _groups(report.groups))
    if report.deliveries:
        parts.append("<h2>Delivery to the app</h2>" + _table(
            ["kind", "route", "actions", "delivered", "retrying", "dead", "cancelled",
             "failed attempts"],
            [[c.kind, c.route, c.actions, c.delivered, c.retrying, c.dead, c.cancelled,
              c.failed_attempts] for c in report.deliveries]))  # fmt: skip
    if report.placements:
        parts.append("<h2>Placements: impression → accept → complete, per segment</h2>"
                     + _table(PLACEMENT_COLUMNS, [row.cells() for row in report.placements],
                              keys=[f"{r.placement}:{r.segment or 'all'}"
                                    for r in report.placements], key="placement"))  # fmt: skip
    if report.funnel:
        parts.append("<h2>Funnel per segment (workflow / level)</h2>" + _table(
            ["segment", "proposed", "accepted", "completed"],
            [[f.segment, f.proposed, f.accepted, f.completed] for f in report.funnel],
            keys=[f.segment for f in report.funnel], key="funnel"))  # fmt: skip
    if report.cohorts:
        parts.append(f"<h2>Cohorts by first exposure ({escape(report.retention_outcome or '')}"
                     " week by week)</h2>" + _table(
            ["comparison", "cohort", "arm", "size", "retention by week"],
            [[c.name, c.week, c.arm, c.size, c.curve] for c in report.cohorts],
            keys=[f"{c.name}:{c.week}:{c.arm}" for c in report.cohorts], key="cohort"))  # fmt: skip
    for learned in report.learning:
        parts.append(
            f"<h2>Learned policy: {escape(learned.surface)}</h2><pre data-learning>"
            + escape("\n".join(learned.lines()))
            + "</pre>"
        )
    for fig in report.figures:
        data = base64.b64encode(plot_png(fig)).decode()
        parts.append(f'<figure data-figure="{escape(fig.name)}"><img alt="{escape(fig.title)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{escape(fig.title)}'
                     "</figcaption></figure>")  # fmt: skip
    return "\n".join(parts)


def _evidence(report: Report) -> str:
    """Sample ratio, the fixed and the anytime-valid interval, CUPED, and which to trust."""
    rows = []
    for e in report.evidence:
        fixed = f"[{_pts(e.lift.low)}, {_pts(e.lift.high)}]" if e.lift else "-"
        anytime = f"[{_pts(e.anytime.low)}, {_pts(e.anytime.high)}]" if e.anytime else "-"
        c = e.cuped
        cuped = ("-" if c is None else f"{_pts(c.difference)} [{_pts(c.low)}, {_pts(c.high)}], "
                 f"variance -{c.variance_reduction:.0%} ({c.covariate})" if c.applied
                 else f"not applied ({c.reason})")  # fmt: skip
        srm = f"p = {e.srm.p_value:.3g}" + (" MISMATCH" if e.srm.mismatch else "")
        rows.append([f"{e.kind} {e.name}", f"{e.treated} / {e.holdout}", srm, fixed, anytime,
                     cuped, e.trust])  # fmt: skip
    head = ["comparison", "treated / holdout", "sample ratio", "fixed-horizon (Newcombe)",
            "anytime-valid", "CUPED", "trust"]  # fmt: skip
    return _table(head, rows)


def _groups(groups: list[Group]) -> str:
    def pct(v: float | None) -> str:
        return f"{v:.0%}" if v is not None else "-"

    def secs(v: float | None) -> str:
        return f"{v:.0f} s" if v is not None else "-"

    head = ["workflow", "segment", "level", "runs", "failed", "proposals", "decided", "accepted",
            "edited", "rejected", "edit distance", "median / p90 time", "exec. failed",
            "shadow agreement", "rejection reasons"]  # fmt: skip
    rows = [[g.workflow, g.segment, g.level, g.runs, g.runs_failed, g.proposals, g.decided,
             pct(g.acceptance_rate), pct(g.edit_rate), pct(g.rejection_rate),
             f"{g.mean_edit_distance:.2f}" if g.mean_edit_distance is not None else "-",
             f"{secs(g.median_seconds_to_decision)} / {secs(g.p90_seconds_to_decision)}",
             f"{g.execution_failed} of {g.executed + g.execution_failed}",
             pct(g.shadow_agreement) + (f" of {g.shadow_decided}" if g.shadow_decided else ""),
             ", ".join(f"{k} {v}" for k, v in g.rejection_reasons.items()) or "-"]
            for g in groups]  # fmt: skip
    return _table(head, rows)


def _table(head: list[str], rows: list[list[Any]], *, raw_last: bool = False,
           keys: list[str] | None = None, key: str = "row") -> str:  # fmt: skip
    def cell(i: int, v: Any, n: int) -> str:
        return str(v) if raw_last and i == n - 1 else escape(str(v))

    def tr(j: int) -> str:
        return "<tr>" if keys is None else f'<tr data-{key}="{escape(keys[j])}">'

    body = "".join(
        tr(j) + "".join(f"<td>{cell(i, v, len(r))}</td>" for i, v in enumerate(r)) + "</tr>"
        for j, r in enumerate(rows)
    )
    return "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + f"</tr>{body}</table>"


def _pts(v: float) -> str:
    return f"{v * 100:+.2f} pts" if v else "0.00 pts"


def _value(rule: str, v: float) -> str:
    return f"{v:.2%}" if rule == "ceiling" else _pts(v)  # a ceiling bounds a rate, not a change


def _arm(a: Any) -> str:
    return f"{a.successes}/{a.n} ({a.rate:.2%})"

"""The weekly review as HTML: trend lines with their intervals as bands, and every number's value.

Each number is a cell whose `data-value` is the JSON's value exactly (`repr` of the float),
so a reader, or a test, can check the page against the stored document.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from copilot.measure.review.model import Trend, WeeklyReview

COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#4a5568"]


def _canvas(title: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # imported here: the JSON path needs none

    fig = Figure(figsize=(9, 3.2), dpi=80)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.16)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def trend_png(t: Trend, label: str) -> str:
    """A trend's lift week by week: a line, the anytime-valid band, the fixed-horizon bars."""
    fig, ax = _canvas(f"{label}: {t.kind} {t.name}, {t.outcome}", "percentage points")
    pts = [p for p in t.points if p.difference is not None]
    xs = list(range(len(pts)))
    ys = [(p.difference or 0) * 100 for p in pts]
    ax.fill_between(xs, [(p.anytime_low or 0) * 100 for p in pts],
                    [(p.anytime_high or 0) * 100 for p in pts], color="#90cdf4", alpha=0.5,
                    label="anytime-valid (any look)")  # fmt: skip
    ax.errorbar(xs, ys, yerr=[[y - (p.low or 0) * 100 for y, p in zip(ys, pts, strict=True)],
                              [(p.high or 0) * 100 - y for y, p in zip(ys, pts, strict=True)]],
                fmt="-o", color="#2b6cb0", capsize=3, label="estimate, fixed-horizon interval")  # fmt: skip
    ax.axhline(0, color="#718096", linestyle="--", linewidth=1)
    ax.set_xticks(xs, [p.week for p in pts])
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def lines_png(title: str, ylabel: str, weeks: Sequence[str], series: dict[str, list[float]]) -> str:
    """Several series over the weeks, as lines."""
    fig, ax = _canvas(title, ylabel)
    for i, (label, ys) in enumerate(series.items()):
        ax.plot(range(len(ys)), ys, "-o", color=COLOURS[i % len(COLOURS)], label=label)
    ax.set_xticks(range(len(weeks)), list(weeks))
    if series:
        ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def retention_png(review: WeeklyReview) -> str:
    """Each cohort's retention curve, treated solid and holdout dashed."""
    fig, ax = _canvas(f"Retention ({review.retention_outcome}) by weekly cohort", "% active")
    for i, c in enumerate(sorted({(c.name, c.week) for c in review.cohorts})):
        for cohort in (x for x in review.cohorts if (x.name, x.week) == c and x.retention):
            ax.plot(range(len(cohort.retention)), [v * 100 for v in cohort.retention],
                    "-" if cohort.arm == "treated" else "--", color=COLOURS[i % len(COLOURS)],
                    label=f"{c[1]} {cohort.arm}")  # fmt: skip
    ax.set_xlabel("weeks after first exposure")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    return _png(fig)


def _num(v: float | int | None, fmt: Callable[[float], str]) -> str:
    if v is None:
        return "<td>-</td>"
    return f'<td data-value="{v!r}">{escape(fmt(v))}</td>'


def _pts(v: float) -> str:
    return f"{v * 100:+.2f}"


def _pct(v: float) -> str:
    return f"{v:.1%}"


def _int(v: float) -> str:
    return str(int(v))


def _fig(png: str, title: str, name: str) -> str:
    return (f'<figure data-figure="{escape(name)}"><img alt="{escape(title)}" '
            f'src="data:image/png;base64,{png}"><figcaption>{escape(title)}</figcaption></figure>')  # fmt: skip


def _trend_table(trends: list[Trend], what: str) -> str:
    rows = []
    for t in trends:
        for p in t.points:
            rows.append(
                f'<tr data-{what}="{escape(t.name)}" data-week="{p.week}"><td>{escape(t.name)}</td>'
                f"<td>{p.week}</td>{_num(p.treated, _int)}{_num(p.holdout, _int)}"
                f"{_num(p.difference, _pts)}{_num(p.low, _pts)}{_num(p.high, _pts)}"
                f"{_num(p.anytime_low, _pts)}{_num(p.anytime_high, _pts)}"
                f"{_num(p.srm_p, lambda v: f'{v:.3g}')}</tr>"
            )
    head = ["comparison", "week", "treated", "holdout", "lift (pts)", "fixed low", "fixed high",
            "anytime low", "anytime high", "SRM p"]  # fmt: skip
    return _table(head, rows)


def _table(head: list[str], rows: list[str]) -> str:
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
            + "".join(rows) + "</table>")  # fmt: skip


def render_review(review: WeeklyReview, weeks: Sequence[str] = ()) -> str:
    """The review page's content (the web app wraps it in its layout)."""
    parts = [f'<h1>Weekly review: {escape(review.tenant)}, week of {review.week}</h1>',
             f'<p class="headline" data-testid="headline">{escape(review.headline)}</p>']  # fmt: skip
    parts += [f'<p class="banner" role="alert" data-banner="paused" '
              f'data-paused="{escape(p.kind)}:{escape(p.target)}">{escape(p.sentence)}</p>'
              for p in review.paused]  # fmt: skip
    parts += [f'<p class="banner" role="alert" data-banner="srm">BLOCKING: {escape(e.kind)} '
              f"{escape(e.name)} has a sample-ratio mismatch (p = {e.srm.p_value:.2g}); do not read "
              f"its lift. Likely causes: {escape('; '.join(e.srm.causes))}</p>"
              for e in review.evidence if e.srm.mismatch]  # fmt: skip
    parts.append("<h2>Lift, week by week</h2><p>Each week counts everyone exposed by its end. "
                 "Read the anytime-valid interval: it stays valid however often the review "
                 "looks; the fixed-horizon one only at the planned sample size.</p>")  # fmt: skip
    for t in review.trends:
        parts.append(
            _fig(trend_png(t, "Lift"), f"Lift of {t.name} on {t.outcome}", f"lift:{t.name}")
        )
    parts.append(_trend_table(review.trends, "trend"))
    if review.guardrails:
        parts.append("<h2>Guardrails (increase over the holdout)</h2>")
        for t in review.guardrails:
            parts.append(_fig(trend_png(t, "Guardrail"), f"{t.outcome} in {t.name}",
                              f"guardrail:{t.outcome}:{t.name}"))  # fmt: skip
        parts.append(_trend_table(review.guardrails, "guardrail"))
    weeks_x = [o.week for o in review.ops]
    rates = {k: [(getattr(o, f"{k}_rate") or 0) * 100 for o in review.ops]
             for k in ("acceptance", "edit", "rejection")}  # fmt: skip
    parts.append("<h2>Reviewers and the machinery</h2>")
    parts.append(_fig(lines_png("Reviewer decisions", "% of people's decisions", weeks_x, rates),
                      "Acceptance, edit and rejection rates", "reviewers"))  # fmt: skip
    level_names = sorted({lv for o in review.ops for lv in o.levels})
    parts.append(_fig(lines_png("Runs per degradation level", "runs", weeks_x,
                                {lv: [float(o.levels.get(lv, 0)) for o in review.ops]
                                 for lv in level_names}), "Degradation levels", "levels"))  # fmt: skip
    parts.append(_table(
        ["week", "approved", "edited", "rejected", "acceptance", "edit", "rejection",
         "delivery failures", "levels", "exposures"],
        [f'<tr data-ops="{o.week}"><td>{o.week}</td>{_num(o.approved, _int)}{_num(o.edited, _int)}'
         f"{_num(o.rejected, _int)}{_num(o.acceptance_rate, _pct)}{_num(o.edit_rate, _pct)}"
         f"{_num(o.rejection_rate, _pct)}{_num(o.deliveries_failed, _int)}"
         f"<td>{escape(', '.join(f'{k} {v}' for k, v in o.levels.items()) or '-')}</td>"
         f"<td>{escape(', '.join(f'{k} {v}' for k, v in o.exposures.items()) or '-')}</td></tr>"
         for o in review.ops]))  # fmt: skip
    if review.cohorts:
        parts.append("<h2>Cohorts by first exposure</h2>")
        parts.append(_fig(retention_png(review), "Retention curves", "retention"))
        parts.append(_table(["comparison", "cohort", "arm", "size", "retention by week"], [
            f'<tr data-cohort="{c.name}:{c.week}:{c.arm}"><td>{escape(c.name)}</td><td>{c.week}</td>'
            f"<td>{c.arm}</td>{_num(c.size, _int)}"
            f"<td>{escape(c.curve)}</td></tr>"
            for c in review.cohorts]))  # fmt: skip
    if review.funnel:
        parts.append("<h2>Funnel per segment (workflow / level)</h2>" + _table(
            ["segment", "proposed", "accepted", "completed"],
            [f'<tr data-funnel="{escape(f.segment)}"><td>{escape(f.segment)}</td>'
             f"{_num(f.proposed, _int)}{_num(f.accepted, _int)}{_num(f.completed, _int)}</tr>"
             for f in review.funnel]))  # fmt: skip
    if review.placement_funnel:
        parts.append("<h2>Placement funnel: impression → accept → complete, per segment</h2>"
                     + _table(["placement", "segment", "subjects", "treated", "holdout",
                               "decisions", "shown", "impressions", "accepts", "completes",
                               "impression", "impression → accept", "accept → complete"], [
            f'<tr data-placement-funnel="{escape(f.placement)}:{escape(f.segment or "all")}">'
            f"<td>{escape(f.placement)}</td><td>{escape(f.segment or 'all')}</td>"
            + "".join(_num(v, _int) for v in (f.subjects, f.treated, f.holdout, f.decisions,
                                              f.shown, f.impressions, f.accepts, f.completes))
            + "".join(_num(v, _pct) for v in (f.impression_rate, f.accept_rate,
                                              f.complete_rate)) + "</tr>"
            for f in review.placement_funnel]))  # fmt: skip
    parts.append("<h2>Pruning</h2>" + _table(["kind", "name", "verdict", "why", "cost"], [
        f'<tr data-prune="{escape(i.kind)}:{escape(i.name)}"><td>{i.kind}</td>'
        f"<td>{escape(i.name)}</td><td><b>{i.verdict}</b></td><td>{escape(i.why)}</td>"
        f"<td>{escape(', '.join(f'{k} {v}' for k, v in i.cost.items()) or '-')}</td></tr>"
        for i in review.prune]))  # fmt: skip
    if weeks:
        links = " · ".join(f'<a href="/ui/review?week={w}">{w}</a>' for w in weeks)
        parts.append(f'<h2>Earlier reviews</h2><p data-testid="weeks">{links}</p>')
    return "\n".join(parts)

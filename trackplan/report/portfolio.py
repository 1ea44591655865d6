"""The portfolio: one row per initiative, the decision first. Shown at the top of `trackplan report`
and as `trackplan review --format html`: one component, so the two can never say different things.

Each row: the recommendation and why, the evidence grade, expected NPV with its P10–P90, P(NPV > 0),
ROI, payback and the KPI the initiative moves against its target. An initiative without an effect
estimate says "not evaluable" and why, never a grade or a figure it does not have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .format import ColumnFormat, missing

RECOMMENDATIONS = ("scale", "continue", "pivot", "stop", "not evaluable")
GRADE_TEXT = {
    "A": "randomized",
    "B": "quasi-experimental, checks passed",
    "C": "quasi-experimental, checks failed or not run",
    "D": "before/after, not causal",
}
COLUMNS = [
    "#",
    "initiative",
    "recommendation",
    "evidence",
    "expected NPV",
    "P(NPV > 0)",
    "ROI",
    "payback",
    "KPI vs target",
]


@dataclass
class Cell:
    main: str
    sub: str = ""
    cls: str = ""


def _money(currency: str | None) -> ColumnFormat:
    return ColumnFormat("currency", 0, currency)


def kpi_text(current, target, unit: str | None, direction: str | None, on_track) -> tuple[str, str, str]:
    """'36.7% vs 35.0%' in the KPI's own unit, with the status word and its css class."""
    fmt = ColumnFormat("percent", 1) if unit == "ratio" else ColumnFormat("number", 2 if _small(current, target) else 0)
    suffix = "" if unit in (None, "ratio") else f" {unit}"
    main = f"{fmt(current)} vs {fmt(target)}{suffix}" if not missing(target) else f"{fmt(current)}{suffix}"
    if on_track is True:
        return main, "on track", "ok"
    if on_track is False:
        return main, "off track", "bad"
    return main, "no target" if missing(target) else "not measured", ""


def _small(*vals) -> bool:
    finite = [abs(float(v)) for v in vals if not missing(v) and isinstance(v, int | float) and math.isfinite(float(v))]
    return bool(finite) and max(finite) < 100


def portfolio_rows(pf, roi=None, plan=None, currency: str | None = None) -> list[list[Cell]]:
    """Cells of the portfolio table from marts.initiative_portfolio (and marts.initiative_roi for ROI)."""
    roi_by = {}
    if roi is not None and len(roi) and "initiative" in roi.columns:
        roi_by = {r["initiative"]: r for r in roi.to_dict("records")}
    units = {k.key: k.unit for k in plan.metrics.kpis} if plan is not None else {}
    money = _money(currency)
    pct = ColumnFormat("percent", 0)
    months = ColumnFormat("duration", 1)
    rows = []
    for r in pf.sort_values("rank").to_dict("records") if "rank" in pf.columns else pf.to_dict("records"):
        rec = r.get("recommendation") or "–"
        evaluable = rec != "not evaluable"
        extra = roi_by.get(r.get("initiative"), {})
        grade = r.get("evidence_grade")
        expected = r.get("expected_npv") if not missing(r.get("expected_npv")) else r.get("npv")
        band = (
            f"P10 {money(r.get('npv_p10'))} · P90 {money(r.get('npv_p90'))}"
            if not missing(r.get("npv_p10"))
            else "no Monte Carlo distribution"
        )
        roi_v = extra.get("roi")
        kpi_main, kpi_status, kpi_cls = kpi_text(
            r.get("kpi_current"),
            r.get("kpi_target"),
            units.get(r.get("kpi")),
            r.get("kpi_direction"),
            r.get("kpi_on_track"),
        )
        why = r.get("reason") or ""
        rows.append(
            [
                Cell(str(r.get("rank", "")), cls="num"),
                Cell(str(r.get("name") or r.get("initiative")), f"{r.get('initiative')} · {r.get('method') or '–'}"),
                Cell(
                    rec,
                    why if not evaluable or why != "no rule matched" else "no decision rule matched",
                    "rec " + rec.replace(" ", "-"),
                ),
                Cell(
                    grade if not missing(grade) else "–",
                    GRADE_TEXT.get(grade, "") if not missing(grade) else (r.get("evidence_label") or "no estimate"),
                    "grade",
                ),
                Cell(money(expected) if evaluable else "–", band if evaluable else "", "num"),
                Cell(pct(r.get("prob_npv_positive")) if evaluable else "–", "", "num"),
                Cell(
                    pct(roi_v) if evaluable and not missing(roi_v) else "–",
                    "over the horizon" if evaluable else "",
                    "num",
                ),
                Cell(
                    f"{months(r.get('payback_months'))} months"
                    if evaluable and not missing(r.get("payback_months"))
                    else "–",
                    "not within the horizon" if evaluable and missing(r.get("payback_months")) else "",
                    "num",
                ),
                Cell(kpi_main, f"{r.get('kpi')}: {kpi_status}", f"kpicell {kpi_cls}"),
            ]
        )
    return rows


def portfolio_html(rows: list[list[Cell]], currency: str | None = None, caption: str | None = None) -> str:
    """The portfolio table as HTML (styled by tracking_plan/templates/base.css, which the review embeds too)."""
    from . import _env

    headers = [f"{c} ({currency})" if c == "expected NPV" and currency else c for c in COLUMNS]
    return _env().get_template("portfolio.html.j2").render(columns=headers, rows=rows, caption=caption)

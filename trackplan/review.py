"""`trackplan review`: the portfolio review a committee reads, from the marts of a built warehouse.

Every initiative with its evidence grade, NPV distribution, KPI movement against target and the
recommendation its decision rules give, ranked by expected NPV; then the KPI tree (objective → KPI
→ events) with each KPI's current value, target and trend. Markdown for a pull request or a wiki,
HTML (self-contained, no scripts) for a browser.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from tracking_plan.model import Plan

SPARK = "▁▂▃▄▅▆▇█"
GRADE_TEXT = {
    "A": "A randomized",
    "B": "B quasi-exp., checks passed",
    "C": "C quasi-exp., checks failed/not run",
    "D": "D before/after, not causal",
}


@dataclass
class Review:
    as_of: str | None
    portfolio: pd.DataFrame
    histograms: dict[str, list[float]] = field(default_factory=dict)
    kpis: pd.DataFrame = field(default_factory=pd.DataFrame)
    tree: list[dict] = field(default_factory=list)
    roi: pd.DataFrame = field(default_factory=pd.DataFrame)  # marts.initiative_roi, for ROI beside NPV
    plan: Plan | None = None


def _table(con, name: str) -> pd.DataFrame:
    try:
        return con.execute(f"select * from {name}").df()
    except duckdb.CatalogException:  # the mart was not built (its asset failed or never ran): the review says so
        return pd.DataFrame()


def kpi_tree(plan: Plan, kpis: pd.DataFrame) -> list[dict]:
    """Objectives with their KPIs (value, target, trend) and the events each KPI is computed from."""
    values = kpis.set_index("kpi").to_dict("index") if len(kpis) else {}
    signup = plan.metrics.signup.event if plan.metrics.signup else None
    out = []
    objectives = [o.key for o in plan.metrics.objectives]
    orphan = sorted({k.objective or "(none)" for k in plan.metrics.kpis} - set(objectives))
    for key in objectives + orphan:
        obj = next((o for o in plan.metrics.objectives if o.key == key), None)
        items = []
        for k in (k for k in plan.metrics.kpis if (k.objective or "(none)") == key):
            events = [e for e in (k.event,) if e]
            if k.measure in ("activation_rate", "conversion_rate") and signup:
                events = [signup] + events
            v = values.get(k.key, {})
            items.append(
                {
                    "kpi": k.key,
                    "name": k.name or k.key,
                    "owner": k.owner,
                    "unit": k.unit,
                    "target": k.target,
                    "direction": k.direction,
                    "deadline": k.deadline,
                    "current": v.get("current"),
                    "previous": v.get("previous"),
                    "on_track": v.get("on_track"),
                    "trend": [t["value"] for t in json.loads(v["trend"])] if v.get("trend") else [],
                    "events": events,
                }
            )
        out.append(
            {
                "objective": key,
                "description": obj.description if obj else None,
                "owner": obj.owner if obj else None,
                "kpis": items,
            }
        )
    return out


def build_review(con, plan: Plan) -> Review:
    """Read the marts (and the events, for KPI values) from an open warehouse connection."""
    from models.kpis import kpi_values

    pf = _table(con, "marts.initiative_portfolio")
    sc = _table(con, "marts.initiative_scenarios")
    hist = {}
    if len(sc) and "share" in sc:
        d = sc[sc["kind"] == "distribution"].sort_values(["initiative", "name"])
        hist = {k: g["share"].tolist() for k, g in d.groupby("initiative")}
    kpis = kpi_values(con, plan)  # the one KPI computation, shared with the report; empty without stitch.events
    as_of = str(pd.Timestamp(kpis["as_of"].iloc[0]).date()) if len(kpis) else None
    return Review(
        as_of=as_of,
        portfolio=pf,
        histograms=hist,
        kpis=kpis,
        tree=kpi_tree(plan, kpis),
        roi=_table(con, "marts.initiative_roi"),
        plan=plan,
    )


# -- formatting --------------------------------------------------------------------------------------------
def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA:
        return "–"
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _money(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:,.0f}"


def sparkline(values) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(
        " " if v is None or not math.isfinite(v) else SPARK[int((v - lo) / span * (len(SPARK) - 1))] for v in values
    )


def _grade(g) -> str:
    """An evidence grade in words; none (not evaluable, or a portfolio of nothing yet) is "–", never None or nan."""
    if g is None or (isinstance(g, float) and math.isnan(g)) or g == "":
        return "–"
    return GRADE_TEXT.get(g, str(g))


def _track(v) -> str:
    return "on track" if v is True else "off track" if v is False else "–"


def portfolio_rows(review: Review) -> list[list[str]]:
    rows = []
    for r in review.portfolio.to_dict("records"):
        rows.append(
            [
                str(r["rank"]),
                r["name"] or r["initiative"],
                r["method"] or "–",
                _grade(r["evidence_grade"]),
                f"{_num(r['estimate'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
                f"{_money(r['npv_p10'])} / {_money(r['npv_p50'])} / {_money(r['npv_p90'])}",
                sparkline(review.histograms.get(r["initiative"], [])),
                _num(r["prob_npv_positive"], 2),
                f"{r['kpi']}: {_num(r['kpi_current'])} vs {_num(r['kpi_target'])} ({_track(r['kpi_on_track'])})",
                f"**{r['recommendation']}**",
                r["reason"] or "",
            ]
        )
    return rows


PORTFOLIO_HEADER = [
    "#",
    "initiative",
    "method",
    "evidence",
    "effect [95% CI]",
    "NPV P10 / P50 / P90",
    "NPV distribution",
    "P(NPV>0)",
    "KPI vs target",
    "recommendation",
    "why",
]
KPI_HEADER = ["KPI", "owner", "current", "target", "status", "trend (weekly)", "events"]


def _kpi_rows(obj: dict) -> list[list[str]]:
    return [
        [
            f"{k['name']} ({k['unit'] or ''}, {k['direction']})",
            k["owner"] or "–",
            _num(k["current"]),
            f"{_num(k['target'])} by {k['deadline'] or '–'}",
            _track(k["on_track"]),
            sparkline(k["trend"]),
            " → ".join(k["events"]),
        ]
        for k in obj["kpis"]
    ]


def render_markdown(review: Review) -> str:
    def table(header, rows):
        esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
        return "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in esc]
        )

    out = [
        f"# Portfolio review{f' (data to {review.as_of})' if review.as_of else ''}",
        "",
        (
            "Ranked by expected NPV (Monte Carlo mean). Evidence: A randomized > B quasi-experimental with "
            "passed checks > C checks failed or not run > D before/after (not causal)."
        ),
        "",
    ]
    if len(review.portfolio):
        out.append(table(PORTFOLIO_HEADER, portfolio_rows(review)))
    else:
        out.append("_marts.initiative_portfolio is empty or missing: run `trackplan run` first._")
    out += ["", "## KPI tree", ""]
    for obj in review.tree:
        out += [
            f"### {obj['objective']}"
            + (f": {obj['description']}" if obj["description"] else "")
            + (f" (owner {obj['owner']})" if obj["owner"] else ""),
            "",
        ]
        out += [table(KPI_HEADER, _kpi_rows(obj)) if obj["kpis"] else "_no KPI_", ""]
    return "\n".join(out).rstrip() + "\n"


CSS = (
    "body{margin:0}.review{padding:16px 28px 48px;max-width:1320px}.review table{border-collapse:collapse}"
    ".review td,.review th{white-space:normal}.spark{letter-spacing:1px}"
)


def render_html(review: Review) -> str:
    """The review page: the report's own portfolio component and stylesheet, then the KPI tree."""
    from tracking_plan.docs_site import BASE_CSS

    from .report import html_table, plan_currency
    from .report.portfolio import portfolio_html, portfolio_rows

    e = html.escape
    currency = plan_currency(review.plan) if review.plan is not None else None
    css = BASE_CSS.read_text()
    parts = [
        (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Portfolio review</title>"
            f"<style>{css}{CSS}</style></head><body>"
        ),
        f"<header><h1>Portfolio review</h1><p>{e(f'data to {review.as_of}') if review.as_of else 'no data yet'}</p></header>",
        "<main class='review'><section id='decision'><h2>Decision</h2>",
        (
            "<p class='muted'>Ranked by expected NPV (Monte Carlo mean). Evidence: A randomized &gt; B quasi-experimental "
            "with passed checks &gt; C checks failed or not run &gt; D before/after (not causal).</p>"
        ),
    ]
    if len(review.portfolio):
        parts.append(portfolio_html(portfolio_rows(review.portfolio, review.roi, review.plan, currency), currency))
    else:
        parts.append("<p><em>marts.initiative_portfolio is empty or missing: run trackplan run first.</em></p>")
    parts.append("</section><section id='kpis'><h2>KPI tree</h2>")
    for obj in review.tree:
        parts.append(
            f"<h3>{e(obj['objective'])}</h3>"
            + (f"<p class='muted'>{e(obj['description'])}</p>" if obj["description"] else "")
        )
        if obj["kpis"]:
            parts.append(html_table(pd.DataFrame(_kpi_rows(obj), columns=KPI_HEADER).astype(str)))
        else:
            parts.append("<p>no KPI</p>")
    parts.append("</section></main></body></html>")
    return "\n".join(parts) + "\n"


def review(plan_dir: str | Path | None, warehouse: str | Path, fmt: str = "markdown") -> str:
    """The review text for ``trackplan review --format markdown|html`` (read-only on the warehouse)."""
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan

    if fmt not in ("markdown", "html"):
        raise ValueError("format must be markdown or html")
    plan = load_plan(plan_dir) if plan_dir else load_plan()
    con = connect(warehouse, read_only=True)
    try:
        rv = build_review(con, plan)
    finally:
        con.close()
    return render_markdown(rv) if fmt == "markdown" else render_html(rv)

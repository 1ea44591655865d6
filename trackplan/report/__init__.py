"""`trackplan report`: one self-contained HTML file of KPIs, marts and data health.

Everything is read from the warehouse by their warehouse names (README: the tables), defensively: a mart that is
not built yet becomes a labelled panel, never a crash. Charts are inline SVG (see report_charts),
and every table shown is also embedded verbatim as a JSON island (``<script id="report-data">``) so
the numbers on screen can be checked against the marts mechanically.
"""

from __future__ import annotations

import contextvars
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from tracking_plan.docs_site import BASE_CSS
from tracking_plan.loader import default_plan_dir, load_plan
from tracking_plan.model import KPI, Plan

from . import charts
from .format import format_frame
from .portfolio import portfolio_html, portfolio_rows

TEMPLATES = Path(__file__).parent / "templates"
CURRENCY: contextvars.ContextVar[str | None] = contextvars.ContextVar("currency", default=None)
MAX_ROWS = 5000  # rows of one table embedded in the JSON island; marts are small, raw tables are not read

TABLES = [  # every table the report reads, by its warehouse name
    "marts.activation_cohorts",
    "marts.retention",
    "marts.funnel_conversion",
    "marts.customer_value",
    "marts.experiment_results",
    "marts.initiative_roi",
    "marts.channel_attribution",
    "marts.initiative_scenarios",
    "marts.initiative_portfolio",
    "quality.daily_metrics",
    "quality.anomalies",
    "quality.check_results",
    "ingest.ingestion_log",
]
# What of a table the report shows (and embeds): daily retention has cohort × day rows by the
# thousand; the weekly grain is the one a reader can take in.
TABLE_FILTERS = {"marts.retention": ("period_type", "week")}


@dataclass
class Panel:
    title: str
    table: str | None = None  # the source table, shown under the panel
    charts: list[str] = field(default_factory=list)  # inline SVG
    html: str = ""  # a table or text
    missing: bool = False
    note: str | None = None


@dataclass
class Section:
    key: str
    title: str
    panels: list[Panel] = field(default_factory=list)


class _Warehouse:
    """Read-only access to the tables the report needs; each table read once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.con = duckdb.connect(str(self.path), read_only=True) if self.path.exists() else None
        if self.con is not None:
            self.con.execute("set TimeZone = 'UTC'")
            self.con.execute("set enable_progress_bar = false")
        names = (
            self.con.execute(
                "select schema_name || '.' || table_name from duckdb_tables() "
                "union select schema_name || '.' || view_name from duckdb_views() "
                "where not internal"
            ).fetchall()
            if self.con
            else []
        )
        self.present = {n for (n,) in names}
        self.cache: dict[str, pd.DataFrame | None] = {}

    def table(self, name: str) -> pd.DataFrame | None:
        if name not in self.cache:
            self.cache[name] = None
            if name in self.present:
                where, params = "", []
                col, value = TABLE_FILTERS.get(name, (None, None))
                cols = {
                    c
                    for (c,) in self.con.execute(
                        "select column_name from duckdb_columns() where schema_name || '.' || table_name = ?", [name]
                    ).fetchall()
                }
                if col in cols:
                    where, params = f"where {col} = ?", [value]
                self.cache[name] = self.con.execute(f"select * from {name} {where} limit {MAX_ROWS}", params).df()
        return self.cache[name]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def has(self, *names: str) -> bool:
        return all(n in self.present for n in names)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


# ------------------------------------------------------------------------------------- values


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def table_records(df: pd.DataFrame) -> dict:
    """Columns and rows of a DataFrame, JSON-safe (NaN → null, dates → ISO)."""
    return {
        "columns": list(df.columns),
        "rows": [[_jsonable(v) for v in row] for row in df.itertuples(index=False, name=None)],
    }


def html_table(
    df: pd.DataFrame, columns: list[str] | None = None, max_rows: int = 200, currency: str | None = None
) -> str:
    """A table where each column has one formatter for all its cells (see format.py)."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    headers, kinds, rows = format_frame(df.head(max_rows), cols, currency=currency or CURRENCY.get())
    return (
        _env()
        .get_template("table.html.j2")
        .render(columns=headers, kinds=kinds, rows=rows, more=max(0, len(df) - max_rows))
    )


# ---------------------------------------------------------------------------------------- KPIs


def kpi_value(values: pd.DataFrame, kpi: KPI) -> tuple[float | None, str]:
    """The KPI's current value and how it was computed, from models.kpis (the review reads the same)."""
    if kpi.key not in values.index:
        return None, "stitch.events not built yet"
    row = values.loc[kpi.key]
    v = row["current"]
    return (None if v is None or pd.isna(v) else float(v)), str(row["how"])


def kpi_tree(wh: _Warehouse, plan: Plan) -> list[dict]:
    """Objectives with their KPIs: value, target, status."""
    from models.kpis import kpi_values

    try:
        values = kpi_values(wh.con, plan).set_index("kpi") if wh.con is not None else pd.DataFrame()
        failed = None
    except duckdb.Error as exc:
        values, failed = pd.DataFrame(), f"could not compute: {str(exc).splitlines()[0]}"
    out = []
    objectives = list(plan.metrics.objectives)
    keys = {o.key for o in objectives}
    orphans = [k for k in plan.metrics.kpis if k.objective not in keys]
    for o in objectives + (
        [type(objectives[0])(key="(none)", description="KPIs without an objective")] if orphans and objectives else []
    ):
        kpis = []
        for k in plan.metrics.kpis:
            if (k.objective or "(none)") != o.key and not (o.key == "(none)" and k in orphans):
                continue
            value, how = (None, failed) if failed else kpi_value(values, k)
            previous = None
            if not failed and k.key in values.index and not pd.isna(values.loc[k.key, "previous"]):
                previous = float(values.loc[k.key, "previous"])
            status = "unknown"
            if value is not None and k.target is not None:
                good = value >= k.target if k.direction == "increase" else value <= k.target
                status = "on_target" if good else "off_target"
            kpis.append(
                {
                    "key": k.key,
                    "name": k.name or k.key,
                    "value": value,
                    "target": k.target,
                    "unit": k.unit,
                    "direction": k.direction,
                    "deadline": k.deadline,
                    "owner": k.owner,
                    "how": how,
                    "status": status,
                    "shown": _fmt_kpi(value, k.unit, k.target),
                    "target_shown": _fmt_kpi(k.target, k.unit, value),
                    "progress": _progress(value, k),
                    "previous": previous,
                    **_change(value, previous, k),
                }
            )
        out.append({"key": o.key, "description": o.description, "owner": o.owner, "kpis": kpis})
    return out


def _change(value: float | None, previous: float | None, k: KPI) -> dict:
    """The change against the previous period of the same length, in the KPI's unit (points for a
    ratio), and whether it went the way the KPI wants."""
    if value is None or previous is None:
        return {"change_shown": "no previous period", "change_class": ""}
    delta = value - previous
    if k.unit == "ratio":
        text = f"{delta * 100:+.1f} pts"
    elif previous:
        text = f"{delta / abs(previous):+.1%}"
    else:
        text = f"{delta:+,.2f}"
    period = f"previous {k.period_days or 30} days"
    good = delta > 0 if k.direction == "increase" else delta < 0
    return {
        "change_shown": f"{text.replace('-', '−')} vs {period} ({_fmt_kpi(previous, k.unit)})",
        "change_class": "" if delta == 0 else ("good" if good else "bad"),
    }


def _fmt_kpi(v: float | None, unit: str | None, other: float | None = None) -> str:
    """A KPI value in its unit, with enough decimals that it never reads equal to ``other`` (its
    target) when it is not: 0.3495 against 0.35 is "34.95%", not "35.0%"."""
    if v is None or math.isnan(v):
        return "–"
    if math.isinf(v):  # (a sum beyond the largest double, e.g. two revenues of 1.7e308: as the tables write it)
        return ("∞" if v > 0 else "−∞") + (f" {unit}" if unit and unit != "ratio" else "")
    for extra in range(4):
        if unit == "ratio":
            text, other_text = f"{v:.{1 + extra}%}", (f"{other:.{1 + extra}%}" if other is not None else None)
        elif unit in ("USD", "EUR", "GBP"):
            text, other_text = f"{v:,.{extra}f} {unit}", (f"{other:,.{extra}f} {unit}" if other is not None else None)
        else:
            text = f"{v:,.{2 + extra}f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")
            other_text = (
                f"{other:,.{2 + extra}f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")
                if other is not None
                else None
            )
        if other is None or v == other or text != other_text:
            return text
    return text


def _progress(v: float | None, k: KPI) -> float:
    if v is None or not k.target:
        return 0.0
    ratio = v / k.target if k.direction == "increase" else (k.target / v if v else 1.0)
    return max(0.0, min(1.0, ratio))


# ------------------------------------------------------------------------------------ sections


def _missing(title: str, table: str) -> Panel:
    return Panel(title=title, table=table, missing=True, note=f"{table} is not built yet: run `trackplan run`.")


def _safe(fn, *args) -> str | None:
    """A chart that fails shows its table instead of failing the report."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - any rendering problem degrades to the table below the chart
        return None


def _panel(wh: _Warehouse, title: str, table: str, chart_fns=(), columns: list[str] | None = None) -> Panel:
    df = wh.table(table)
    if df is None:
        return _missing(title, table)
    svgs = [s for s in (_safe(f, df) for f in chart_fns) if s]
    note = "no rows yet" if df.empty else None
    return Panel(title=title, table=table, charts=svgs, html=html_table(df, columns) if not df.empty else "", note=note)


def _funnels(wh: _Warehouse) -> Panel:
    df = wh.table("marts.funnel_conversion")
    if df is None:
        return _missing("Funnels", "marts.funnel_conversion")
    key = charts.col(df, "funnel")
    svgs = [s for k, g in (df.groupby(key, sort=False) if key else []) if (s := _safe(charts.funnel, g, k))]
    if df.empty:
        return Panel("Funnels", "marts.funnel_conversion", note="no rows yet")
    return Panel("Funnels", "marts.funnel_conversion", svgs, html_table(df))


def _experiments(wh: _Warehouse) -> Panel:
    df = wh.table("marts.experiment_results")
    if df is None:
        return _missing("Experiment readouts", "marts.experiment_results")
    if df.empty:
        return Panel("Experiment readouts", "marts.experiment_results", note="no experiment has a readout yet")
    label = [c for c in ("experiment", "variant", "metric") if c in df.columns]
    est = charts.col(df, "lift_abs", "lift", "effect")
    lo, hi = charts.col(df, "ci_low", "lift_ci_low"), charts.col(df, "ci_high", "lift_ci_high")
    d = df.dropna(subset=[c for c in (est, lo, hi) if c]) if est else df
    svg = (
        _safe(charts.ci_points, d, label, est, lo, hi, "Lift vs control with 95% confidence interval")
        if est and lo and hi
        else None
    )
    return Panel(
        "Experiment readouts",
        "marts.experiment_results",
        [svg] if svg else [],
        html_table(
            df,
            [
                "experiment",
                "metric",
                "variant",
                "exposures",
                "rate",
                "lift_abs",
                "ci_low",
                "ci_high",
                "p_value",
                "srm_p_value",
                "power",
                "metric_role",
                "hypothesis",
            ],
        ),
    )


def _scenarios(wh: _Warehouse) -> Panel:
    df = wh.table("marts.initiative_scenarios")
    if df is None:
        return _missing("Sensitivity (tornado)", "marts.initiative_scenarios")
    if df.empty:
        return Panel(
            "Sensitivity (tornado) and scenarios",
            "marts.initiative_scenarios",
            note="no initiative has an estimate to vary yet",
        )
    sens = df[df["kind"] == "sensitivity"] if "kind" in df.columns else df
    svgs = [
        s
        for k, g in (sens.groupby("initiative", sort=False) if "initiative" in sens.columns else [])
        if (s := _safe(charts.tornado, g, k))
    ]
    return Panel("Sensitivity (tornado) and scenarios", "marts.initiative_scenarios", svgs, html_table(df))


def _portfolio(wh: _Warehouse) -> Panel:
    df = wh.table("marts.initiative_portfolio")
    if df is None:
        return _missing("Portfolio and NPV distribution", "marts.initiative_portfolio")
    dist = df
    if charts.col(df, "npv_p10") is None:  # percentiles live in the scenarios mart instead
        sc = wh.table("marts.initiative_scenarios")
        if sc is not None and {"kind", "name", "npv", "initiative"} <= set(sc.columns):
            mc = sc[sc["kind"] == "monte_carlo"]
            dist = mc.pivot_table(index="initiative", columns="name", values="npv").add_prefix("npv_").reset_index()
    svg = _safe(charts.npv_range, dist)
    return Panel(
        "NPV distribution",
        "marts.initiative_portfolio",
        [svg] if svg else [],
        html_table(
            df,
            [
                "rank",
                "initiative",
                "npv_p10",
                "npv_p50",
                "npv_p90",
                "npv_mean",
                "prob_npv_positive",
                "irr",
                "payback_months",
            ],
        ),
    )


def _scored_note(wh: _Warehouse, plan: Plan) -> str | None:
    """What the series detectors scored on the newest day of quality.daily_metrics, and why the rest
    was not (quality_checks.detectors.scoring_coverage): an empty anomaly list is news only when the
    series were scored."""
    if not wh.has("quality.daily_metrics", "ingest.events"):
        return None
    from quality_checks.detectors import last_day_coverage, scoring_coverage
    from quality_checks.metrics import last_seen
    from tracking_plan.quality_settings import settings_for

    m = wh.con.execute("select * from quality.daily_metrics").df()
    c = last_day_coverage(scoring_coverage(m, settings_for(plan), last_seen(wh.con)))
    if c is None:
        return None
    text = f"on {c['day']} the series detectors scored {c['scored']:,} of {c['series']:,} series"
    if c["not_scored"]:
        text += "; not scored: " + ", ".join(f"{n:,} {reason}" for reason, n in c["not_scored"].items())
    return text


def _health(wh: _Warehouse, plan: Plan, data_docs: Path | None) -> list[Panel]:
    panels = []
    log = wh.table("ingest.ingestion_log")
    if log is None:
        panels.append(_missing("Quarantine share", "ingest.ingestion_log"))
    else:
        d = wh.con.execute(
            "select partition_date, sum(lines)::bigint as lines, sum(quarantined)::bigint as quarantined, "
            "sum(quarantined) / nullif(sum(lines), 0) as quarantine_share "
            "from ingest.ingestion_log where partition_date is not null group by 1 order by 1"
        ).df()
        svg = _safe(
            charts.time_series, d, "partition_date", "quarantine_share", "Quarantine share per day", None, ".1%"
        )
        panels.append(
            Panel(
                "Quarantine share",
                "ingest.ingestion_log",
                [svg] if svg else [],
                html_table(d.tail(14)),
                note=f"the last 14 of {len(d)} days in the table" if len(d) > 14 else None,
            )
        )
        wh.cache["report.quarantine_daily"] = d
    an = wh.table("quality.anomalies")
    if an is None:
        panels.append(_missing("Anomalies", "quality.anomalies"))
    else:
        day = charts.col(an, "day", "date", "partition_date")
        svgs = []
        if day and not an.empty:
            counts = an.groupby(day, as_index=False).size().rename(columns={"size": "anomalies"})
            svgs = [
                s for s in [_safe(charts.time_series, counts, day, "anomalies", "Anomalies per day", None, ",.0f")] if s
            ]
        panels.append(
            Panel(
                "Anomalies",
                "quality.anomalies",
                svgs,
                html_table(an.tail(50)) if not an.empty else "",
                note="; ".join(
                    x for x in ("" if not an.empty else "no anomalies detected", _scored_note(wh, plan)) if x
                )
                or None,
            )
        )
    cr = wh.table("quality.check_results")
    if cr is None:
        panels.append(_missing("Last check results", "quality.check_results"))
    else:
        check = charts.col(cr, "check", "check_name")
        when = charts.col(cr, "run_at", "checked_at", "created_at", "timestamp")
        last = cr
        if check and when:
            last = cr.sort_values(when).groupby(check, as_index=False).tail(1)
        panels.append(Panel("Last check results", "quality.check_results", [], html_table(last)))
    if data_docs is not None:
        panels.append(
            Panel(
                "Great Expectations Data Docs",
                None,
                [],
                f'<p><a href="{data_docs.as_uri()}">Open the Data Docs</a> ({data_docs})</p>',
            )
        )
    return panels


def _find_data_docs(warehouse: Path) -> Path | None:
    """GX Data Docs written next to the warehouse (the quality assets' default place), if any."""
    for root in (warehouse.parent, Path.cwd()):
        for rel in (
            "gx/uncommitted/data_docs/local_site/index.html",
            "data_docs/index.html",
            "great_expectations/uncommitted/data_docs/local_site/index.html",
        ):
            if (root / rel).is_file():
                return (root / rel).resolve()
    return None


def plan_currency(plan: Plan) -> str | None:
    """The plan's money unit: the unit of its financial KPIs (a three-letter code such as USD)."""
    for k in plan.metrics.kpis:
        if k.unit and len(k.unit) == 3 and k.unit.isalpha() and k.unit.isupper():
            return k.unit
    return None


def _decision(wh: _Warehouse, plan: Plan) -> Panel:
    pf = wh.table("marts.initiative_portfolio")
    if pf is None:
        return _missing("Portfolio: what to scale, continue, pivot or stop", "marts.initiative_portfolio")
    if pf.empty:
        return Panel("Portfolio", "marts.initiative_portfolio", note="the plan declares no initiative")
    rows = portfolio_rows(pf, wh.table("marts.initiative_roi"), plan, CURRENCY.get())
    return Panel(
        "Portfolio: what to scale, continue, pivot or stop",
        "marts.initiative_portfolio",
        html=portfolio_html(rows, CURRENCY.get()),
        note="Ranked by expected NPV (Monte Carlo mean). Evidence: A randomized > "
        "B quasi-experimental, checks passed > C checks failed or not run > D before/after, not causal.",
    )


def data_range(wh: _Warehouse) -> tuple[str, str] | None:
    """First and last day of the data the report shows (stitch.events, else the ingestion log)."""
    for sql in (
        'select min("timestamp")::date, max("timestamp")::date from stitch.events',
        "select min(partition_date), max(partition_date) from ingest.ingestion_log",
    ):
        try:
            lo, hi = wh.query(sql)[0]
        except (duckdb.Error, AttributeError):
            continue
        if lo is not None:
            return str(lo), str(hi)
    return None


def build_sections(wh: _Warehouse, plan: Plan, data_docs: Path | None) -> list[Section]:
    act_target = next((k.target for k in plan.metrics.kpis if k.measure == "activation_rate"), None)
    roi_cols = [
        "initiative",
        "evidence_grade",
        "npv",
        "roi",
        "irr",
        "payback_months",
        "estimate",
        "ci_low",
        "ci_high",
        "incremental_conversions",
        "value",
        "cost",
        "method",
    ]
    roi = wh.table("marts.initiative_roi")
    roi_cols = [c for c in roi_cols if roi is not None and c in roi.columns] or None
    cv = wh.table("marts.customer_value")
    cv_group = (
        charts.col(cv, "channel", "acquisition_channel", "utm_source", "segment") if cv is not None else None
    ) or "channel"
    return [
        Section("decision", "Decision", [_decision(wh, plan)]),
        Section(
            "growth",
            "Growth",
            [
                _panel(
                    wh,
                    "Activation by signup cohort",
                    "marts.activation_cohorts",
                    [lambda d: charts.activation(d, act_target)],
                ),
                _panel(
                    wh,
                    "Retention",
                    "marts.retention",
                    [lambda d: charts.retention_heatmap(d, (data_range(wh) or (None, None))[1])],
                ),
                _funnels(wh),
            ],
        ),
        Section(
            "value",
            "Customer value and channels",
            [
                _panel(
                    wh,
                    "CLV and CAC by channel",
                    "marts.customer_value",
                    [lambda d: charts.side_by_side(_all_plans(d), cv_group, ["clv", "cac"], "CLV and CAC by channel")],
                ),
                _attribution_panel(wh),
            ],
        ),
        Section(
            "experiments",
            "Experiments and initiatives",
            [
                _experiments(wh),
                _panel(wh, "Initiative ROI", "marts.initiative_roi", [], roi_cols),
                _scenarios(wh),
                _portfolio(wh),
            ],
        ),
        Section("health", "Data health", _health(wh, plan, data_docs)),
    ]


def _all_plans(d: pd.DataFrame) -> pd.DataFrame:
    """customer_value has a per-channel 'all' row besides one per plan: chart the channel totals."""
    if "plan" in d.columns and (d["plan"] == "all").any():
        return d[d["plan"] == "all"]
    return d


NO_TOUCH = "(none)"  # marts.channel_attribution's channel for conversions with no tracked touch


def _attribution_panel(wh: _Warehouse) -> Panel:
    """Attribution by model. Conversions with no tracked touch are not a channel: they are left out of
    the chart and counted in a note (they would otherwise be its largest bar)."""
    df = wh.table("marts.channel_attribution")
    if df is None:
        return _missing("Attribution by model", "marts.channel_attribution")
    note = None
    touched = df
    if "channel" in df.columns and (df["channel"] == NO_TOUCH).any():
        touched = df[df["channel"] != NO_TOUCH]
        none = df[df["channel"] == NO_TOUCH]
        m = charts.col(none, "conversions", "credit")
        if m:
            n = none.groupby("model")[m].first().max() if "model" in none.columns else none[m].sum()
            total = df.groupby("model")[m].sum().max() if "model" in df.columns else df[m].sum()
            note = (
                f"{n:,.0f} of {total:,.0f} conversions had no tracked marketing touch (channel {NO_TOUCH}): "
                "they are in the table, not in the chart."
            )
    svg = (
        _safe(_attribution, touched)
        if "model" in touched.columns
        else _safe(
            charts.grouped_bars,
            touched,
            "channel",
            [m for m in ("conversions", "value", "credit") if m in touched][:1],
            "Attributed conversions by channel",
        )
    )
    return Panel(
        "Attribution by model",
        "marts.channel_attribution",
        [svg] if svg else [],
        html_table(df) if not df.empty else "",
        note=note or ("no rows yet" if df.empty else None),
    )


def _attribution(d: pd.DataFrame) -> str | None:
    import altair as alt

    m = charts.col(d, "conversions", "credit", "value")
    if m is None or "channel" not in d.columns or d.empty:
        return None
    chart = (
        alt.Chart(d)
        .mark_bar()
        .encode(
            x=alt.X("channel:N", title=None),
            xOffset="model:N",
            y=alt.Y(f"{m}:Q", title=f"attributed {m}"),
            color=alt.Color("model:N", title="model"),
            tooltip=["channel", "model", alt.Tooltip(f"{m}:Q", format=",.1f")],
        )
    )
    return charts.svg(
        chart.properties(width=charts.WIDTH - 90, height=220, title="Attribution: each model side by side")
    )


# -------------------------------------------------------------------------------------- render


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(warehouse_path: str | Path, plan: Plan | None = None, data_docs: str | Path | None = None) -> str:
    """The report as an HTML string (see `write_report`)."""
    plan = plan or load_plan(default_plan_dir())
    warehouse_path = Path(warehouse_path)
    wh = _Warehouse(warehouse_path)
    token = CURRENCY.set(plan_currency(plan))
    try:
        docs = Path(data_docs) if data_docs else _find_data_docs(warehouse_path)
        tree = kpi_tree(wh, plan)
        sections = build_sections(wh, plan, docs)
        data = {
            "warehouse": str(warehouse_path),
            "plan_version": plan.version,
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "kpis": [
                {
                    k: _jsonable(v)
                    for k, v in kpi.items()
                    if k not in ("shown", "target_shown", "progress", "change_shown", "change_class")
                }
                for o in tree
                for kpi in o["kpis"]
            ],
            "tables": {name: table_records(df) for name, df in wh.cache.items() if df is not None},
            "missing": sorted(t for t in TABLES if t not in wh.present),
            "run": _shown_run(wh),
        }
        span = data_range(wh)
        data["data_range"] = list(span) if span else None
    finally:
        wh.close()
        CURRENCY.reset(token)
    for s in sections:
        for p in s.panels:
            p.charts = [Markup(c) for c in p.charts]
            p.html = Markup(p.html)
    island = json.dumps(data, default=str, separators=(",", ":")).replace("</", "<\\/")
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            plan=plan,
            tree=tree,
            sections=sections,
            data_json=Markup(island),
            meta=data,
            warehouse=warehouse_path.name,
            css=Markup(BASE_CSS.read_text()),
        )
    )


def _shown_run(wh: _Warehouse) -> dict | None:
    """The run the warehouse shows: the newest row of ingest.run_log (a run publishes the whole warehouse)."""
    if "ingest.run_log" not in wh.present:
        return None
    rows = wh.con.execute(
        "select run_id, status, first_day::varchar, last_day::varchar, "
        "strftime(finished_at, '%Y-%m-%d %H:%M UTC'), not_built from ingest.run_log "
        "order by finished_at desc limit 1"
    ).fetchall()
    return (
        dict(zip(("run_id", "status", "first_day", "last_day", "finished", "not_built"), rows[0], strict=True))
        if rows
        else None
    )


def write_report(
    warehouse_path: str | Path,
    out_html: str | Path,
    plan: Plan | str | Path | None = None,
    data_docs: str | Path | None = None,
) -> Path:
    """Write the self-contained KPI report for ``warehouse_path`` to ``out_html``.

    ``plan`` is a Plan or a plan directory (default: ``TRACKPLAN_PLAN`` or the sample plan); it gives
    the KPI tree. Missing tables render as "not built yet" panels."""
    if plan is not None and not isinstance(plan, Plan):
        plan = load_plan(plan)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(warehouse_path, plan, data_docs), encoding="utf-8")
    return out

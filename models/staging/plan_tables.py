"""staging.plan_*: the plan's metric definitions as tables, so SQL models join them instead of templating.

A product team edits metrics.yaml; the next run rewrites these tables and every mart follows. The
marketing spend of the plan's `costs_file` (month,channel,spend) lands in staging.marketing_costs.
"""

from pathlib import Path

from models.catalog import table_doc
from tracking_plan.model import Plan

# Defaults for settings the plan format does not carry (yet); each is overridable by a metrics.yaml
# field of the same name once the plan model has it.
DEFAULT_GROSS_MARGIN = 0.8  # typical SaaS gross margin; CLV is margin-adjusted revenue
DEFAULT_CHURN_EVENT = "Subscription Cancelled"
DEFAULT_RENEWAL_EVENT = "Subscription Renewed"

# table -> {column: duckdb type}; the types hold even when the plan leaves a table empty.
SCHEMAS: dict[str, dict[str, str]] = {
    "plan_settings": {
        "plan_name": "varchar",
        "plan_version": "varchar",
        "signup_event": "varchar",
        "activation_event": "varchar",
        "activation_window_days": "integer",
        "activation_min_count": "integer",
        "purchase_event": "varchar",
        "churn_event": "varchar",
        "renewal_event": "varchar",
        "gross_margin": "double",
        "session_timeout_minutes": "integer",
        "retention_type": "varchar",
        "retention_target_event": "varchar",
        "retention_returning_event": "varchar",
    },
    "plan_events": {
        "event_name": "varchar",
        "type": "varchar",
        "status": "varchar",
        "consent": "varchar",
        "owner": "varchar",
        "version": "varchar",
    },
    "plan_funnels": {"funnel": "varchar", "description": "varchar", "window_hours": "double", "step_count": "integer"},
    "plan_funnel_steps": {
        "funnel": "varchar",
        "step_index": "integer",
        "event_name": "varchar",
        "window_hours": "double",
    },
    "plan_funnel_exclusions": {
        "funnel": "varchar",
        "event_name": "varchar",
        "from_step": "integer",
        "to_step": "integer",
    },
    "plan_kpis": {
        "kpi": "varchar",
        "name": "varchar",
        "objective": "varchar",
        "owner": "varchar",
        "measure": "varchar",
        "event_name": "varchar",
        "property": "varchar",
        "period_days": "integer",
        "unit": "varchar",
        "target": "double",
        "direction": "varchar",
        "deadline": "date",
        "financial": "boolean",
    },
    "plan_experiments": {
        "experiment": "varchar",
        "hypothesis": "varchar",
        "exposure_event": "varchar",
        "variants": "varchar[]",
        "control": "varchar",
        "primary_metric": "varchar",
        "guardrail_metrics": "varchar[]",
        "mde": "double",
        "alpha": "double",
        "power": "double",
        "start": "date",
        "planned_days": "integer",
        "sequential": "boolean",
    },
    "plan_initiatives": {
        "initiative": "varchar",
        "name": "varchar",
        "owner": "varchar",
        "kpi": "varchar",
        "start": "date",
        "one_off_cost": "double",
        "recurring_monthly_cost": "double",
        "value_per_conversion": "double",
        "horizon_months": "integer",
        "discount_rate": "double",
        "method": "varchar",
        "experiment": "varchar",
        "segment_field": "varchar",
        "treated_segments": "varchar[]",
        "control_segments": "varchar[]",
        "window_days": "integer",
    },
    "marketing_costs": {"month": "date", "channel": "varchar", "spend": "double"},
}

DESCRIPTIONS = {name: table_doc(f"staging.{name}")["description"] for name in SCHEMAS}  # models/staging/<name>.yml


def settings_row(plan: Plan) -> dict:
    """The one row of staging.plan_settings for `plan` (defaults where metrics.yaml is silent)."""
    m = plan.metrics
    activation = m.activation
    retention = getattr(m, "retention", None)
    churn = getattr(m, "churn", None)
    signup = m.signup.event if m.signup else None
    return {
        "plan_name": plan.header.name,
        "plan_version": plan.header.version,
        "signup_event": signup,
        "activation_event": activation.event if activation else None,
        "activation_window_days": activation.window_days if activation else plan.header.defaults.activation_window_days,
        "activation_min_count": activation.min_count if activation else 1,
        "purchase_event": m.purchase.event if m.purchase else None,
        "churn_event": getattr(churn, "event", None) or DEFAULT_CHURN_EVENT,
        "renewal_event": DEFAULT_RENEWAL_EVENT,
        "gross_margin": getattr(m, "gross_margin", None) or DEFAULT_GROSS_MARGIN,
        "session_timeout_minutes": plan.header.defaults.session_timeout_minutes,
        # Amplitude's default: a cohort is each person's first signup; returning = any event
        "retention_type": getattr(retention, "type", None) or "first_time",
        "retention_target_event": getattr(retention, "target_event", None) or signup,
        "retention_returning_event": getattr(retention, "returning_event", None),
    }


def plan_rows(plan: Plan) -> dict[str, list[dict]]:
    """Every staging.plan_* table of `plan` as rows (marketing_costs excluded: it is a file)."""
    m = plan.metrics
    funnels = m.funnels
    return {
        "plan_settings": [settings_row(plan)],
        "plan_events": [
            {
                "event_name": e.name,
                "type": e.type,
                "status": e.status,
                "consent": e.consent,
                "owner": e.owner,
                "version": e.version,
            }
            for e in plan.events.values()
        ],
        "plan_funnels": [
            {"funnel": f.key, "description": f.description, "window_hours": f.window_hours, "step_count": len(f.steps)}
            for f in funnels
        ],
        "plan_funnel_steps": [
            {"funnel": f.key, "step_index": i, "event_name": s, "window_hours": f.window_hours}
            for f in funnels
            for i, s in enumerate(f.steps, start=1)
        ],
        # no `between`: the exclusion spans the whole funnel, first step to last
        "plan_funnel_exclusions": [
            {
                "funnel": f.key,
                "event_name": x.event,
                "from_step": x.between[0] if x.between else 1,
                "to_step": x.between[1] if x.between else len(f.steps),
            }
            for f in funnels
            for x in f.exclusions
        ],
        "plan_kpis": [
            {
                "kpi": k.key,
                "name": k.name,
                "objective": k.objective,
                "owner": k.owner,
                "measure": k.measure,
                "event_name": k.event,
                "property": k.property,
                "period_days": k.period_days,
                "unit": k.unit,
                "target": k.target,
                "direction": k.direction,
                "deadline": k.deadline,
                "financial": k.financial,
            }
            for k in m.kpis
        ],
        "plan_experiments": [
            {
                "experiment": x.key,
                "hypothesis": x.hypothesis,
                "exposure_event": x.exposure_event,
                "variants": list(x.variants),
                "control": x.control,
                "primary_metric": x.primary_metric,
                "guardrail_metrics": list(x.guardrail_metrics),
                "mde": x.mde,
                "alpha": x.alpha,
                "power": x.power,
                "start": x.start,
                "planned_days": x.planned_days,
                "sequential": x.sequential,
            }
            for x in m.experiments
        ],
        "plan_initiatives": [
            {
                "initiative": i.key,
                "name": i.name,
                "owner": i.owner,
                "kpi": i.kpi,
                "start": i.start,
                "one_off_cost": i.costs.one_off,
                "recurring_monthly_cost": i.costs.recurring_monthly,
                "value_per_conversion": i.value_per_conversion,
                "horizon_months": i.horizon_months,
                "discount_rate": i.discount_rate,
                "method": i.evaluation.method,
                "experiment": i.evaluation.experiment,
                "segment_field": i.evaluation.segment_field,
                "treated_segments": list(i.evaluation.treated),
                "control_segments": list(i.evaluation.control),
                "window_days": i.evaluation.window_days,
            }
            for i in m.initiatives
        ],
    }


def write_table(con, table: str, rows: list[dict]) -> int:
    """Replace staging.<table> with `rows` (typed by SCHEMAS, so an empty list still gives the columns)."""
    cols = SCHEMAS[table]
    ddl = ", ".join(f'"{c}" {t}' for c, t in cols.items())
    con.execute(f"create or replace table staging.{table} ({ddl})")
    if rows:
        marks = ", ".join("?" for _ in cols)
        con.executemany(f"insert into staging.{table} values ({marks})", [[r.get(c) for c in cols] for r in rows])
    return len(rows)


def costs_path(plan: Plan) -> Path | None:
    """The plan's costs_file, resolved against the plan directory (None when the plan names none)."""
    if not plan.metrics.costs_file:
        return None
    path = Path(plan.metrics.costs_file)
    return path if path.is_absolute() else Path(plan.root) / path


def write_costs(con, path: Path | None) -> int:
    """staging.marketing_costs from a month,channel,spend CSV; empty when the file is absent or header-only."""
    write_table(con, "marketing_costs", [])
    if path is None or not path.exists():
        return 0
    # month is YYYY-MM (or a full date); channel is matched to utm_source, lower-cased like the marts do
    con.execute(
        """insert into staging.marketing_costs
           select coalesce(try_strptime(month, '%Y-%m'), try_strptime(month, '%Y-%m-%d'))::date,
                  lower(trim(channel)), spend
           from read_csv(?, header = true, columns = {'month': 'varchar', 'channel': 'varchar', 'spend': 'double'})
           where month is not null""",
        [str(path)],
    )
    return con.execute("select count(*) from staging.marketing_costs").fetchall()[0][0]


def write_plan_tables(con, plan: Plan) -> dict[str, int]:
    """Write every staging.plan_* table and staging.marketing_costs; returns row counts per table."""
    counts = {name: write_table(con, name, rows) for name, rows in plan_rows(plan).items()}
    counts["marketing_costs"] = write_costs(con, costs_path(plan))
    return counts

"""quality layer: daily metrics of the event stream, the anomalies found in them, check history."""

import dagster as dg

from models.catalog import table_doc
from models.frames import frame
from pipelines.resources import TrackingPlan, Warehouse
from quality_checks.metrics import COLUMNS as METRIC_COLUMNS
from quality_checks.metrics import build_daily_metrics, last_seen
from quality_checks.store import WARN, CheckOutcome, append, ensure_tables
from tracking_plan.quality_settings import settings_for

DAILY_METRICS = dg.AssetKey(["quality", "daily_metrics"])
ANOMALIES = dg.AssetKey(["quality", "anomalies"])
CHECK_RESULTS = dg.AssetKey(["quality", "check_results"])
UPSTREAM = [dg.AssetKey(["ingest", "events"]), dg.AssetKey(["ingest", "quarantine"]), dg.AssetKey(["stitch", "events"])]

# column docs: models/quality/<table>.yml, the one description of each quality table
ANOMALY_DOCS = table_doc("quality.anomalies")["columns"]
RESULT_DOCS = table_doc("quality.check_results")["columns"]

FAMILIES = {  # asset check on quality/anomalies -> detectors it reports
    "volume_anomalies": ("volume", "persons", "freshness", "coverage"),
    "drift_anomalies": ("null_rate", "quarantine_share", "type_change", "enum_drift", "lag_p95_seconds"),
    "unknown_events": ("new_event", "sunset"),
}


def _schema(docs: dict) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=c, type="", description=d) for c, d in docs.items()])


def _run(context):
    run = getattr(context, "run", None)
    return run if run is not None else getattr(getattr(context, "op_execution_context", None), "run", None)


def run_id(context) -> str | None:
    run = _run(context)
    return run.run_id if run is not None else None


def run_range(context) -> tuple[str | None, str | None]:
    """The partition range this run covers (None, None when unpartitioned)."""
    run = _run(context)
    tags = run.tags if run is not None else {}
    start = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    return start, tags.get("dagster/asset_partition_range_end") or start


@dg.asset(
    key=DAILY_METRICS,
    deps=UPSTREAM,
    group_name="quality",
    kinds={"duckdb"},
    description="Day x event x metric of the event stream (volume, null rates, quarantine share, persons, "
    "lag, type and enum mix), from ingest.events, ingest.quarantine and stitch.events.",
    metadata={
        "grain": "day, event_name, metric, property, dimension",
        "dagster/column_schema": _schema(METRIC_COLUMNS),
    },
)
def daily_metrics(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
    with warehouse.get_connection() as con:
        # only the partitions the run changed are read again for the per-partition metrics
        rows = build_daily_metrics(con, tracking_plan.load(), by_partition=True, full_refresh=warehouse.full_refresh)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})


@dg.asset(
    key=ANOMALIES,
    deps=[DAILY_METRICS],
    group_name="quality",
    kinds={"duckdb"},
    description="Anomalies in quality.daily_metrics with their expected range: one row per anomaly.",
    metadata={
        "grain": "day, event_name, metric, property, dimension, detector",
        "dagster/column_schema": _schema(ANOMALY_DOCS),
    },
)
def anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
    plan = tracking_plan.load()
    scored: list = []
    with warehouse.get_connection() as con:
        found = build_anomalies(con, plan, scored)
        outcomes = anomaly_outcomes(found, *run_range(context))
        append(con, outcomes, run_id=run_id(context))
    return dg.MaterializeResult(metadata=anomalies_metadata(found, scored))


def anomalies_metadata(found, scored: list) -> dict:
    """The anomalies asset's materialization metadata (both engines): the anomalies by detector, and
    what the series detectors scored on the newest day and why not the rest: no anomaly means
    something only beside it."""
    from quality_checks.detectors import coverage_frame, last_day_coverage

    by = found.groupby("detector").size().to_dict() if len(found) else {}
    out = {
        "dagster/row_count": len(found),
        "by_detector": dg.MetadataValue.json({k: int(v) for k, v in by.items()}),
    }
    last = last_day_coverage(coverage_frame(scored))
    if last is not None:
        out["series_scored"] = dg.MetadataValue.json(last)
    return out


@dg.asset(
    key=CHECK_RESULTS,
    deps=[ANOMALIES],
    group_name="quality",
    kinds={"duckdb"},
    description="Every check run, appended: one row per check x run (check, asset, partition, passed, "
    "severity, observed, expected range, metadata).",
    metadata={"grain": "check_name, asset, run_at", "dagster/column_schema": _schema(RESULT_DOCS)},
)
def check_results(context: dg.AssetExecutionContext, warehouse: Warehouse):
    with warehouse.get_connection() as con:
        ensure_tables(con)
        n, failed = con.execute(
            "select count(*), count(*) filter (where not passed) from quality.check_results"
        ).fetchall()[0]
    return dg.MaterializeResult(metadata={"dagster/row_count": n, "failed_total": failed})


def build_anomalies(con, plan, scored: list | None = None):
    """Detect over the whole metrics table and replace quality.anomalies; returns the frame. With
    `scored` (a list): what the series detectors scored, and why not the rest, appended to it
    (quality_checks.detectors.scoring_coverage's rows)."""
    from quality_checks.detectors import COLUMNS as ANOMALY_COLUMNS  # pandas: loaded when detection runs
    from quality_checks.detectors import detect

    ensure_tables(con)
    m = frame(con, "select * from quality.daily_metrics")
    found = detect(m, plan, settings_for(plan), last_seen=last_seen(con), scored=scored)
    con.register("_found", found[ANOMALY_COLUMNS])
    con.execute("delete from quality.anomalies")
    con.execute(f"insert into quality.anomalies select {', '.join(ANOMALY_COLUMNS)} from _found")
    con.unregister("_found")
    return found


def anomaly_family_specs() -> list:
    """The asset checks on quality/anomalies, one per detector family (both engines declare these)."""
    return [
        dg.AssetCheckSpec(
            name, asset=ANOMALIES, blocking=False, description=f"No {name.replace('_', ' ')} in the run's days"
        )
        for name in FAMILIES
    ]


def anomaly_outcomes(found, start: str | None = None, end: str | None = None) -> list[CheckOutcome]:
    """One WARN outcome per detector family over the detection period (the run's range, else the last day)."""
    import datetime as dt

    if len(found) and start is None:
        start = end = str(max(found["day"]))
    out = []
    for check, detectors in FAMILIES.items():
        sel = found[found["detector"].isin(detectors)] if len(found) else found
        if start is not None and len(sel):
            lo, hi = dt.date.fromisoformat(start), dt.date.fromisoformat(end or start)
            sel = sel[(sel["day"] >= lo) & (sel["day"] <= hi)]
        rows = (
            sel.head(20)[
                [
                    "day",
                    "event_name",
                    "metric",
                    "property",
                    "observed",
                    "expected_low",
                    "expected_high",
                    "detector",
                    "message",
                ]
            ].to_dict("records")
            if len(sel)
            else []
        )
        out.append(
            CheckOutcome(
                check=check,
                asset="quality.anomalies",
                passed=len(sel) == 0,
                severity=WARN,
                observed=float(len(sel)),
                expected_low=0.0,
                expected_high=0.0,
                partition=f"{start}..{end}" if start else None,
                metadata={"anomalies": len(sel), "detectors": list(detectors), "samples": rows},
            )
        )
    return out


def quality_assets() -> list[dg.AssetsDefinition]:
    return [daily_metrics, anomalies, check_results]

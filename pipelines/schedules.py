"""A daily schedule and a sensor that starts a run when new landing files (or objects) appear."""

import hashlib
import os

import dagster as dg

ingest_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest a day of landing files, then rebuild everything downstream.",
)

daily_schedule = dg.build_schedule_from_partitioned_job(ingest_job, hour_of_day=1, minute_of_hour=15)


def changed_days(landing: str, warehouse: str, layout: str | None = None) -> dict[str, str]:
    """{partition: fingerprint} of the partitions whose objects (key, ETag, size) differ from the
    warehouse's manifest: new, rewritten or removed objects. The fingerprint names the listing, so a
    run is requested once per change."""
    from pathlib import Path

    from tracking_plan.landing import scan

    from .ingest.load import _stamp, changed_partitions
    from .warehouse import connect

    entries = scan(landing, layout)
    if Path(warehouse).exists():
        con = connect(warehouse, read_only=True)
        try:
            days = changed_partitions(con, entries)
        finally:
            con.close()
    else:  # no warehouse yet: every landed day is new
        days = sorted({e.partition for e in entries if e.partition})
    out = {}
    for day in days:
        listing = sorted(f"{e.path}\t{_stamp(e)}" for e in entries if e.partition == day)
        out[day] = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    return out


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs a day's partition when its landing files or bucket objects are new or rewritten "
    "(compared with ingest.landing_manifest: key, ETag, size).",
)
def landing_sensor(context: dg.SensorEvaluationContext):
    import duckdb

    from tracking_plan.landing import LandingError

    landing = os.environ.get("TRACKPLAN_LANDING", "landing")
    warehouse = os.environ.get("TRACKPLAN_WAREHOUSE", "warehouse.duckdb")
    try:
        changed = changed_days(landing, warehouse, os.environ.get("TRACKPLAN_LAYOUT") or None)
    except LandingError as exc:
        yield dg.SkipReason(str(exc))
        return
    except duckdb.IOException as exc:  # the warehouse is being written by a run: look again next tick
        yield dg.SkipReason(f"{warehouse}: busy ({str(exc).splitlines()[0]})")
        return
    for day, fingerprint in changed.items():
        yield dg.RunRequest(run_key=f"{day}:{fingerprint}", partition_key=day)
    if not changed:
        yield dg.SkipReason(f"nothing new under {landing}")

"""A daily schedule and a sensor that starts a run when new landing files appear."""


import json
import os
from pathlib import Path

import dagster as dg

from tracking_plan.reader import is_input_file

ingest_job = dg.define_asset_job("daily_pipeline", selection=dg.AssetSelection.all(),
                                 description="Ingest a day of landing files, then rebuild everything downstream.")

daily_schedule = dg.build_schedule_from_partitioned_job(ingest_job, hour_of_day=1, minute_of_hour=15)


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Runs a day's partition when files land in (or change under) landing/date=YYYY-MM-DD/.")
def landing_sensor(context: dg.SensorEvaluationContext):
    landing = Path(os.environ.get("TRACKPLAN_LANDING", "landing"))
    seen = json.loads(context.cursor) if context.cursor else {}
    changed = {}
    for day_dir in sorted(landing.glob("date=*")):
        files = [f for f in day_dir.iterdir() if f.is_file() and is_input_file(f)]
        if not files:
            continue
        stamp = max(f.stat().st_mtime for f in files) + len(files)
        day = day_dir.name[5:]
        if seen.get(day) != stamp:
            changed[day] = stamp
    for day, stamp in changed.items():
        yield dg.RunRequest(run_key=f"{day}:{stamp}", partition_key=day)
    if changed:
        context.update_cursor(json.dumps(seen | changed))

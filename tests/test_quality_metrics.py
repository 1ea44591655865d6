"""quality.daily_metrics' counts against a count of the same rows in pandas."""

import numpy as np
import pandas as pd

from pipelines.stitch.identity import create_events_view
from pipelines.warehouse import connect
from quality_checks.metrics import build_daily_metrics
from tracking_plan.loader import load_plan


def test_persons_and_events_per_day_and_event(tmp_path):
    """`persons` is each day's and event's distinct stitched persons (events without a person not
    counted), its denominator the events: as pandas counts them from the rows."""
    rng = np.random.default_rng(7)
    n = 400
    rows = pd.DataFrame(
        {
            "message_id": [f"m{i}" for i in range(n)],
            "event_name": rng.choice(["Page Viewed", "Task Created", "Order Completed"], n),
            "partition_date": pd.to_datetime("2026-10-01") + pd.to_timedelta(rng.integers(0, 3, n), unit="D"),
            # a few persons, and some events no stitch has given a person
            "person_id": [None if x < 5 else f"p{x}" for x in rng.integers(0, 40, n)],
        }
    )
    con = connect(tmp_path / "wh.duckdb")
    con.register("_rows", rows)
    con.execute(
        "insert into ingest.events (message_id, type, event_name, partition_date, person_id, plan_version, "
        "source_file, line_no, loaded_at, properties) select message_id, 'track', event_name, partition_date, "
        "person_id, '1.0.0', 'f.jsonl', row_number() over (), now(), '{}' from _rows"
    )
    create_events_view(con)
    build_daily_metrics(con, load_plan())
    got = con.execute(
        "select day, event_name, value, denominator from quality.daily_metrics where metric = 'persons'"
    ).df()
    want = rows.groupby(["partition_date", "event_name"]).agg(
        value=("person_id", "nunique"), denominator=("message_id", "size")
    )
    got = got.set_index(["day", "event_name"]).sort_index()
    got.index = got.index.set_levels(pd.to_datetime(got.index.levels[0]), level=0)
    assert rows["person_id"].isna().any() and len(got) == len(want) == 9
    assert got["value"].tolist() == want.sort_index()["value"].astype(float).tolist()
    assert got["denominator"].tolist() == want.sort_index()["denominator"].tolist()

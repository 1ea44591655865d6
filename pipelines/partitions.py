"""Daily partitions of the landing zone (the UTC date an event was received)."""

import os

import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date=os.environ.get("TRACKPLAN_START_DATE", "2024-01-01"), end_offset=1)

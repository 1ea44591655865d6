"""marts.channel_attribution: purchases credited to session UTM channels (logic: initiative_portfolio.py)."""

from __future__ import annotations

import pandas as pd

from tracking_plan.model import Plan

from .initiative_portfolio import compute_channel_attribution, purchases


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.channel_attribution from staging.sessions and the purchase events of stitch.events."""
    sessions = con.execute("select person_id, started_at, utm_source, utm_medium from staging.sessions").df()
    return compute_channel_attribution(sessions, purchases(con, plan))

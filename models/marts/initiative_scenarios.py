"""marts.initiative_scenarios: adoption scenarios, NPV tornado and Monte Carlo (logic: initiative_portfolio.py)."""

from __future__ import annotations

import pandas as pd

from tracking_plan.model import Plan

from .initiative_portfolio import compute_initiative_scenarios


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.initiative_scenarios from marts.initiative_roi."""
    return compute_initiative_scenarios(con.execute("select * from marts.initiative_roi").df(), plan)

"""marts layer assets written in Python (statistics); SQL marts come from models/marts/*.sql."""

from . import clv, evidence, plan_tables, uplift, value


def mart_assets() -> list:
    return [*plan_tables.assets(), *evidence.assets(), *value.assets(), *uplift.assets(), *clv.assets()]

"""marts layer assets written in Python (statistics); SQL marts come from models/marts/*.sql."""

import importlib

_MODULES = ("pipelines.marts.plan_tables", "pipelines.marts.evidence", "pipelines.marts.value",
            "pipelines.marts.uplift", "pipelines.marts.clv")


def mart_assets() -> list:
    out = []
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        out.extend(mod.assets())
    return out

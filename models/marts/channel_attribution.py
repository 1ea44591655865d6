"""marts.channel_attribution: purchases credited to session UTM channels, one row per channel × model.

``compute_channel_attribution`` is a pure function over sessions and conversions; the attribution
models (first/last touch, linear, time decay, position based, Markov) are ``models.value``'s. A
person's conversion paths depend on that person's sessions and purchases alone: a pipeline run
keeps them per person (``build``'s ``keep``) and builds again only those of the persons it changed.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import pandas as pd
import pyarrow as pa

from models.frames import frame
from models.value import attribute
from models.value_attribution import path_touches
from tracking_plan.model import Plan

__all__ = [
    "attribution",
    "build",
    "channel_of",
    "channels",
    "compute_channel_attribution",
    "marketing_touches",
    "person_paths",
    "purchases",
    "touch_counts",
    "touch_sessions",
]

DIRECT = "direct"
LOOKBACK_DAYS = 30  # Google Analytics' default acquisition lookback for conversions
HALF_LIFE_DAYS = 7.0  # Google Ads' time-decay default: a touch a week older gets half the credit


# -- attribution --------------------------------------------------------------------------------------------
def channel_of(source, medium) -> str:
    """``source/medium`` from a session's first UTM, ``direct`` without one."""
    if source is None or (isinstance(source, float) and np.isnan(source)) or source == "":
        return DIRECT
    medium = None if medium is None or (isinstance(medium, float) and np.isnan(medium)) else medium
    return f"{source}/{medium}" if medium else str(source)


def channels(source: pd.Series, medium: pd.Series) -> list[str]:
    """``channel_of`` over whole columns at once (one session per row)."""
    src = pd.Series(source, dtype=object)
    med = pd.Series(medium, dtype=object).reset_index(drop=True)
    src = src.reset_index(drop=True)
    has_src = src.notna() & (src != "")
    has_med = med.notna() & (med != "")
    out = np.full(len(src), DIRECT, dtype=object)
    both, only = (has_src & has_med).to_numpy(), (has_src & ~has_med).to_numpy()
    out[both] = (src[both].astype(str) + "/" + med[both].astype(str)).to_numpy()
    out[only] = src[only].astype(str).to_numpy()
    return out.tolist()


def marketing_touches(touches: pd.DataFrame) -> pd.DataFrame:
    """Campaign sessions plus each person's first session; later sessions without a campaign are dropped.

    A returning user opening the app is not a marketing touch: counting every such session as
    ``direct`` would hand last-touch credit to "direct" for nearly every purchase. This is Google
    Analytics' "last non-direct click" rule.
    """
    t = touches.sort_values(["person_id", "timestamp"], kind="stable")
    first = ~t["person_id"].duplicated()
    return t[(t["channel"] != DIRECT) | first].reset_index(drop=True)


def person_paths(sessions: pd.DataFrame, conversions: pd.DataFrame, lookback_days: float = LOOKBACK_DAYS):
    """(the marketing touches, their paths: ``models.value.build_paths``' as a table of
    ``PATH_COLUMNS``, numbered ``path_no`` within each person in the order build_paths gives them).
    A person's paths depend on that person's sessions and purchases alone. The path lists are cut
    from ``path_touches``' flat touches by offsets, never a Python list per path (1M events: 62k
    paths; a list per path, its Timestamps and their conversion to Arrow were most of this build)."""
    # the person ids as integers in their sorted order, factorized once: every sort, merge and grouping
    # below gives the same order and groups over them as over the text, which each factorized again
    # (1M events, 75k touches: this function 0.26-0.29 -> 0.18-0.21 CPU-s, the same paths and mart)
    codes, names = pd.factorize(
        pd.concat([pd.Series(sessions["person_id"]), pd.Series(conversions["person_id"])], ignore_index=True),
        sort=True,
    )
    coded = len(codes) and (codes >= 0).all()  # (a missing id keeps the text: groupby drops it, -1 would not)
    n = len(sessions)
    touches = pd.DataFrame(
        {
            "person_id": codes[:n] if coded else sessions["person_id"],
            "timestamp": pd.to_datetime(sessions["started_at"]),
            "channel": channels(sessions["utm_source"], sessions["utm_medium"]),
        }
    )
    touches = marketing_touches(touches)
    conv = conversions.assign(
        person_id=codes[n:] if coded else conversions["person_id"],
        timestamp=pd.to_datetime(conversions["timestamp"]),
        value=pd.to_numeric(conversions["value"], errors="coerce").fillna(0.0),
    )
    paths, flat = path_touches(touches, conv, lookback_days=lookback_days)
    paths.insert(1, "path_no", paths.groupby("person_id").cumcount())
    if coded:
        paths["person_id"] = names.take(paths["person_id"].to_numpy(np.int64))
        touches["person_id"] = names.take(touches["person_id"].to_numpy(np.int64))
    scalars = {c: t for c, t in PATH_COLUMNS.items() if not pa.types.is_list(t)}
    table = pa.Table.from_pandas(paths[list(scalars)], schema=pa.schema(scalars), preserve_index=False)
    offsets = pa.array(np.r_[0, np.cumsum(paths["length"].to_numpy(np.int64))], pa.int32())
    lists = {
        "channels": pa.ListArray.from_arrays(offsets, pa.array(flat["channel"], pa.string())),
        "touch_times": pa.ListArray.from_arrays(offsets, pa.array(flat["ts"], pa.timestamp("us"))),
    }
    for name, t in PATH_COLUMNS.items():
        if name in lists:
            table = table.append_column(pa.field(name, t), lists[name])
    return touches, table


def compute_channel_attribution(
    sessions: pd.DataFrame,
    conversions: pd.DataFrame,
    lookback_days: float = LOOKBACK_DAYS,
    half_life_days: float = HALF_LIFE_DAYS,
) -> pd.DataFrame:
    """One row per channel × model: conversions and value credited, and each channel's share.

    ``sessions`` has ``person_id, started_at, utm_source, utm_medium``; ``conversions`` has
    ``person_id, timestamp, value`` (one row per purchase).
    """
    touches, paths = person_paths(sessions, conversions, lookback_days)
    # (the frame a pipeline build reads back from its kept paths: PersonParts.read)
    return attribution(paths.to_pandas(), touches["channel"].value_counts(), lookback_days, half_life_days)


def attribution(
    paths: pd.DataFrame,
    touch_counts: pd.Series,
    lookback_days: float = LOOKBACK_DAYS,
    half_life_days: float = HALF_LIFE_DAYS,
) -> pd.DataFrame:
    """The mart from every path (``person_paths``) and the marketing touches per channel."""
    out = attribute(paths, "all", half_life_days=half_life_days)
    if "removal_effect" not in out:
        out["removal_effect"] = np.nan
    n_conv = int(paths["converted"].sum())
    totals = out.groupby("model")[["conversions", "value"]].transform("sum")
    out["share_conversions"] = out["conversions"] / totals["conversions"].replace(0, np.nan)
    out["share_value"] = out["value"] / totals["value"].replace(0, np.nan)
    touch_share = touch_counts / touch_counts.sum()
    out["share_of_touches"] = out["channel"].map(touch_share).fillna(0.0)
    out["paths"] = len(paths)
    out["converting_paths"] = n_conv
    out["lookback_days"] = float(lookback_days)
    out["half_life_days"] = float(half_life_days)
    return out.sort_values(["model", "conversions"], ascending=[True, False], ignore_index=True)


def purchases(con, plan: Plan, persons: str | None = None) -> pd.DataFrame:
    """One row per purchase event (of the persons the query ``persons`` selects, when given)."""
    ev = plan.metrics.purchase.event if plan.metrics.purchase else "Order Completed"
    only = f" and person_id in ({persons})" if persons else ""
    return frame(
        con,
        f"""select person_id, "timestamp",
        coalesce(try_cast(json_extract_string(properties, '$.revenue') as double), 0) as value
        from stitch.events where event_name = ? and person_id is not null{only}""",
        [ev],
    )


def build(con, plan: Plan, keep=None) -> pd.DataFrame:
    """marts.channel_attribution from staging.sessions and the purchase events of stitch.events.

    With ``keep`` (the pipeline's ``pipelines.stitch.person_parts.PersonParts``) the paths are kept
    per person: only the persons whose events changed have theirs built again; the mart is
    attributed over every kept path, read in the order a build over every person gives them (so
    the credits add up in the same order), and the touches counted per channel in SQL."""
    if keep is None:
        return compute_channel_attribution(touch_sessions(con), purchases(con, plan))
    table = keep.keep("paths", _paths_key(plan), lambda persons: _paths_arrow(con, plan, persons))
    paths = keep.read(table, "not converted, person_id, path_no")
    return attribution(paths, touch_counts(con))


# the kept paths' columns, typed (a frame of no rows, or of lists, has no types DuckDB could infer)
PATH_COLUMNS = {
    "person_id": pa.string(),
    "path_no": pa.int64(),
    "converted": pa.bool_(),
    "conversion_time": pa.timestamp("us"),
    "value": pa.float64(),
    "channels": pa.list_(pa.string()),
    "touch_times": pa.list_(pa.timestamp("us")),
}


def _paths_arrow(con, plan: Plan, persons: str | None) -> pa.Table:
    return person_paths(touch_sessions(con, persons), purchases(con, plan, persons))[1]


def _paths_key(plan: Plan) -> str:
    """What the kept paths are computed from besides the events: the purchase event, the lookback and
    the code of every function that makes a person's paths (an edit elsewhere, e.g. to the
    attribution models, keeps them)."""
    from models import value_attribution

    code = [
        inspect.getsource(f)
        for f in (
            person_paths,
            channels,
            marketing_touches,
            purchases,
            touch_sessions,
            _paths_arrow,
            value_attribution.path_touches,
            value_attribution._groups,
        )
    ]
    ev = plan.metrics.purchase.event if plan.metrics.purchase else "Order Completed"
    digest = hashlib.sha256("\0".join([TOUCH_SESSIONS, repr(PATH_COLUMNS), *code]).encode()).hexdigest()
    return f"paths|{ev}|{LOOKBACK_DAYS}|{digest}"


TOUCH_SESSIONS = """select person_id, started_at, utm_source, utm_medium from staging.sessions{where}
        qualify coalesce(utm_source, '') <> ''
            or row_number() over (partition by person_id order by started_at, coalesce(utm_source, '') = '') = 1"""


def touch_sessions(con, persons: str | None = None) -> pd.DataFrame:
    """The sessions of staging.sessions that ``marketing_touches`` keeps (those with a campaign, and
    each person's first), selected in SQL: the other sessions (most of a long history: a returning
    user's) never reach pandas. (1M events: 218k sessions, 70k of them touches.) ``persons``: a query
    selecting the persons whose sessions to read (all when None)."""
    where = f" where person_id in ({persons})" if persons else ""
    return frame(con, TOUCH_SESSIONS.format(where=where))


def touch_counts(con) -> pd.Series:
    """The marketing touches per channel (``channels`` of each source and medium), counted in SQL."""
    got = frame(
        con, f"select utm_source, utm_medium, count(*) as n from ({TOUCH_SESSIONS.format(where='')}) group by all"
    )
    return got["n"].groupby(pd.Series(channels(got["utm_source"], got["utm_medium"]), dtype=object)).sum()

"""Planted incidents for measuring the anomaly detectors (benchmarks/detector_bench.py and tests).

An incident is planted by transforming the loaded tables the daily metrics are built from
(ingest.events, ingest.quarantine, stitch.events), so the detectors see what the pipeline would
build after the same breakage, without generating, validating and stitching the traffic again.
Every incident starts on `day` and lasts to the end of the data. Row choices are a hash of the
message id with a salt: deterministic, independent of row order, and different per incident.

Kinds and their magnitude (`size`):
  volume_drop    share of the event's rows removed
  volume_spike   extra rows as a share of the event's volume (duplicates with new message ids)
  silence        (none) every row of the event removed
  null_drift     share of the rows whose (optional) property is removed
  type_change    share of the property's values sent as strings: those rows are quarantined, as the
                 validator would; their raw JSON keeps the string
  enum_shift     share of the enum property's values replaced by one other value of its enum
  new_event      rows of an event not in the plan, as a share of the host event's rows (quarantined)
  late_data      hours the event's rows arrive late (received_at and its partition move; rows that
                 would arrive after the newest event of the data are not there yet)
  sunset         share of the event's rows still sent after the sunset set on `day` (plan copy)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

TABLES = {"ingest.events": "events", "ingest.quarantine": "quarantine", "stitch.events": "stitched"}
BASE = "planted_base"  # schema holding the untouched copies

# the detectors that speak for each kind: an alert from one of them on the planted event (and
# property) on or after the planted day is a detection
DETECTORS = {
    "volume_drop": ("volume", "persons"),
    "volume_spike": ("volume", "persons"),
    "silence": ("volume", "persons", "freshness", "coverage"),
    "null_drift": ("null_rate",),
    "type_change": ("type_change",),
    "enum_shift": ("enum_drift",),
    "new_event": ("new_event",),
    "late_data": ("lag_p95_seconds", "freshness"),
    "sunset": ("sunset",),
}


# magnitude of each kind per level (see quality_checks.planted for what the number means)
LEVELS = {
    "small": {
        "volume_drop": 0.2,
        "volume_spike": 0.5,
        "silence": 1,
        "null_drift": 0.1,
        "type_change": 0.05,
        "enum_shift": 0.1,
        "new_event": 0.01,
        "late_data": 0.25,
        "sunset": 0.01,
    },
    "medium": {
        "volume_drop": 0.5,
        "volume_spike": 1.0,
        "silence": 1,
        "null_drift": 0.3,
        "type_change": 0.2,
        "enum_shift": 0.25,
        "new_event": 0.05,
        "late_data": 2.0,
        "sunset": 0.1,
    },
    "large": {
        "volume_drop": 0.8,
        "volume_spike": 3.0,
        "silence": 1,
        "null_drift": 0.6,
        "type_change": 1.0,
        "enum_shift": 0.5,
        "new_event": 0.3,
        "late_data": 8.0,
        "sunset": 1.0,
    },
}


@dataclass
class Planted:
    kind: str
    event: str
    day: date
    size: float = 1.0
    property: str | None = None
    name: str | None = None  # new_event: the unknown name; enum_shift: the value moved to
    facts: dict = field(default_factory=dict)  # e.g. the event's usual daily volume before `day`

    def salt(self) -> str:
        return f"{self.kind}|{self.event}|{self.property}|{self.day}"


def _stored(con) -> dict[str, str]:
    """TABLES that hold their own rows: stitch.events is a view of ingest.events in a DuckDB warehouse
    (a change to ingest.events is already a change to it), a table where a test or engine made one."""
    base = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_catalog = current_database()"
        ).fetchall()
    }
    return {t: c for t, c in TABLES.items() if t in base}


def snapshot(con) -> None:
    """Keep untouched copies of the source tables (once per loaded warehouse)."""
    con.execute(f"create schema if not exists {BASE}")
    for table, copy in _stored(con).items():
        con.execute(f"create or replace table {BASE}.{copy} as select * from {table}")


def restore(con) -> None:
    """Put the untouched rows back (the tables keep their definitions and constraints)."""
    for table, copy in _stored(con).items():
        con.execute(f"delete from {table}")
        con.execute(f"insert into {table} select * from {BASE}.{copy}")


def _pick(salt: str, share: float) -> str:
    """SQL predicate: this row is among a `share` of rows (hash of message_id and salt)."""
    return f"(hash(message_id || '{salt}') % 1000000) < {round(min(max(share, 0.0), 1.0) * 1_000_000)}"


def _both(con, sql: str, params=()) -> None:
    """`sql` on each event table that holds its own rows (see _stored)."""
    for table in ("ingest.events", "stitch.events"):
        if table in _stored(con):
            con.execute(sql.format(t=table), list(params))


def plant(con, inc: Planted, plan=None) -> None:
    """Apply one incident to the current tables (call `restore` first for a fresh variant)."""
    ev, d, salt = inc.event, inc.day, inc.salt()
    own = "event_name = ? and partition_date >= ?"
    if inc.kind in ("volume_drop", "silence"):
        share = 1.0 if inc.kind == "silence" else inc.size
        _both(con, f"delete from {{t}} where {own} and {_pick(salt, share)}", (ev, d))
    elif inc.kind == "sunset":
        _both(con, f"delete from {{t}} where {own} and not {_pick(salt, inc.size)}", (ev, d))
    elif inc.kind == "volume_spike":
        whole, rest = divmod(inc.size, 1.0)
        for k in range(int(whole) + (1 if rest > 1e-9 else 0)):
            share = 1.0 if k < whole else rest
            _both(
                con,
                f"insert into {{t}} select * replace (message_id || '#dup{k}' as message_id) from {{t}} "
                f"where {own} and {_pick(salt + str(k), share)} and message_id not like '%#dup%'",
                (ev, d),
            )
    elif inc.kind == "null_drift":
        _both(
            con,
            f"update {{t}} set properties = json_merge_patch(properties, json_object(?, null)) "
            f"where {own} and {_pick(salt, inc.size)}",
            (inc.property, ev, d),
        )
    elif inc.kind == "enum_shift":
        _both(
            con,
            f"update {{t}} set properties = json_merge_patch(properties, json_object(?, ?::varchar)) "
            f"where {own} and json_extract(properties, '$.\"{inc.property}\"') is not null "
            f"and json_type(json_extract(properties, '$.\"{inc.property}\"')) <> 'NULL' "
            f"and {_pick(salt, inc.size)}",
            (inc.property, inc.name, ev, d),
        )
    elif inc.kind == "type_change":
        p = inc.property
        sel = (
            f"event_name = ? and partition_date >= ? and json_type(json_extract(properties, '$.\"{p}\"')) "
            f"not in ('NULL', 'VARCHAR') and {_pick(salt, inc.size)}"
        )
        con.execute(
            f"""insert into ingest.quarantine (partition_date, source_file, line_no, raw, message_id,
                        event_name, received_at, plan_version, rules, quarantined_at)
            select partition_date, source_file, line_no,
                   json_object('type', type, 'event', event, 'messageId', message_id,
                               case when type in ('identify', 'group') then 'traits' else 'properties' end,
                               json_merge_patch(properties, json_object(?, json_extract_string(properties, '$."{p}"'))))::varchar,
                   message_id, event_name, received_at, plan_version, ['type'], received_at
            from ingest.events where {sel}""",
            [p, ev, d],
        )
        _both(con, f"delete from {{t}} where {sel}", (ev, d))
    elif inc.kind == "new_event":
        con.execute(
            f"""insert into ingest.quarantine (partition_date, source_file, line_no, raw, message_id,
                        event_name, received_at, plan_version, rules, quarantined_at)
            select partition_date, source_file, line_no,
                   json_object('type', 'track', 'event', ?, 'messageId', message_id || '#new',
                               'properties', properties)::varchar,
                   message_id || '#new', ?, received_at, plan_version, ['unknown_event'], received_at
            from ingest.events where {own} and {_pick(salt, inc.size)}""",
            [inc.name, inc.name, ev, d],
        )
    elif inc.kind == "late_data":
        clock = con.execute(f"select max(received_at) from {BASE}.events").fetchall()[0][0]
        shift = f"interval {round(inc.size * 3600)} second"
        _both(
            con,
            f"update {{t}} set received_at = received_at + {shift}, "
            f"partition_date = (received_at + {shift})::date where {own}",
            (ev, d),
        )
        _both(con, "delete from {t} where received_at > ?", (clock,))
    else:
        raise ValueError(f"unknown incident kind {inc.kind!r}")


def sunset_plan(plan, incidents: list[Planted]):
    """A copy of the plan whose sunset incidents' events were sunset the day before they start."""
    from datetime import timedelta

    sun = [i for i in incidents if i.kind == "sunset"]
    if not sun:
        return plan
    plan = plan.model_copy(deep=True)
    for i in sun:
        plan.events[i.event].sunset = (i.day - timedelta(days=1)).isoformat()
    return plan


def caught(found, inc: Planted) -> tuple[bool, int | None, list[str]]:
    """(detected, delay in days from the planted day, detectors that fired) for one incident."""
    import pandas as pd

    if len(found) == 0:
        return False, None, []
    name = inc.name if inc.kind == "new_event" else inc.event
    sel = found[
        (found["event_name"] == name)
        & found["detector"].isin(DETECTORS[inc.kind])
        & (pd.to_datetime(found["day"]) >= pd.Timestamp(inc.day))
    ]
    if inc.property and inc.kind in ("null_drift", "type_change", "enum_shift"):
        sel = sel[sel["property"] == inc.property]
    if sel.empty:
        return False, None, []
    first = pd.to_datetime(sel["day"]).min()
    return True, int((first - pd.Timestamp(inc.day)).days), sorted(set(sel["detector"]))


def choose(m, plan, level: str, start, rng) -> list[Planted]:
    """One incident of each kind, on distinct events drawn at random among those that can carry it.

    m: the clean quality.daily_metrics; start: the day the incidents start; rng: numpy Generator.
    Volume kinds go to one event of >= 100 a day and one of 10 to 100 where there are such events.
    """
    import pandas as pd

    pre = m[pd.to_datetime(m["day"]) < pd.Timestamp(start)]

    def med(metric, col="value"):
        x = pre[pre["metric"] == metric]
        return x.groupby(["event_name", "property", "dimension"])[col].median()

    vol = med("volume").droplevel([1, 2])
    vol = vol[vol.index.isin(list(plan.events))]
    # an event carries one incident, except that a property's null or enum drift may share it with a
    # volume spike or a delay (those add or move whole rows: no share changes, the detectors differ;
    # not a drop, which leaves too few values a day to judge a share)
    whole: set[str] = set()  # events whose rows a kind removes, adds or moves
    taken: set[str] = set()  # events no other kind may use
    out: list[Planted] = []
    mag = LEVELS[level]

    def take(kind, cands, **kw):
        blocked = taken if kind in ("null_drift", "enum_shift") else taken | whole
        cands = [c for c in cands if (c[0] if isinstance(c, tuple) else c) not in blocked]
        if not cands:
            return
        c = cands[int(rng.integers(len(cands)))]
        ev = c[0] if isinstance(c, tuple) else c
        (whole if kind in ("volume_spike", "late_data") else taken).add(ev)
        out.append(
            Planted(
                kind,
                ev,
                start,
                mag[kind],
                property=c[1] if isinstance(c, tuple) else None,
                facts={"daily_volume": float(vol.get(ev, 0.0))},
                **kw,
            )
        )

    # the enum first: few events carry enough enum values a day to judge their mix
    es, eden = med("enum_share"), med("enum_share", "denominator")
    # enough values on most days, weekends included, for the enum detector to judge (psi_min_count 50)
    enum_props = sorted({(e, p) for (e, p, _), n in eden.items() if n >= 80})
    before = len(out)
    take("enum_shift", enum_props)
    if len(out) > before:  # move values to the least used value of its enum (not always observed)
        inc = out[-1]
        shares = es.loc[(inc.event, inc.property)]
        values = [str(v) for v in plan.events[inc.event].properties[inc.property].enum]
        inc.name = min(values, key=lambda v: float(shares.get(v, 0.0)))
    busy = list(vol[vol >= 100].index)
    some = list(vol[(vol >= 10) & (vol < 100)].index)
    for kind in ("volume_drop", "volume_spike", "silence"):  # one busy event and one quieter one each
        take(kind, busy)
        take(kind, some)
    take("late_data", list(vol[vol >= 20].index))
    take("sunset", list(vol[vol >= 10].index))
    nulls, nden = med("null_rate"), med("null_rate", "denominator")
    optional = {(e.name, k) for e in plan.events.values() for k, p in e.properties.items() if not p.required}
    take(
        "null_drift",
        [(e, p) for (e, p, _), v in nulls.items() if v <= 0.05 and nden[(e, p, "")] >= 20 and (e, p) in optional],
    )
    ts, tden = med("type_share"), med("type_share", "denominator")
    typed = {
        (e.name, k)
        for e in plan.events.values()
        for k, p in e.properties.items()
        if p.type in ("number", "integer", "boolean") and not p.enum
    }
    take(
        "type_change",
        [
            (e, p)
            for (e, p, t), v in ts.items()
            if t in ("number", "boolean") and v >= 0.99 and tden[(e, p, t)] >= 20 and (e, p) in typed
        ],
    )
    host = [e for e in vol[vol >= 20].index if e not in taken]  # a host still sending as usual
    if host:
        ev = host[int(rng.integers(len(host)))]
        out.append(
            Planted("new_event", ev, start, mag["new_event"], name=f"{ev} V2", facts={"daily_volume": float(vol[ev])})
        )
    return out

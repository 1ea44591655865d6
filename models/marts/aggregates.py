"""The aggregates the Python marts read: SQL over the narrow events, never one row per event in pandas.

The statistical marts (experiments, uplift, initiatives, KPIs) need per-person, per-day or
per-window numbers, which DuckDB computes from ``stitch.events`` in a streaming aggregate, so a
mart's memory grows with persons and days, not with raw events. Every query here is DuckDB SQL
text built by a plain function (``*_sql``) over one relation of narrow events (``ev``): the
warehouse's ``stitch.events`` with its JSON unpacked (``narrow_events_sql``), or a hand-built
event frame registered in an in-memory DuckDB (tests, ``benchmarks/calibration.py``), so both go
through the same SQL. The text can be handed to ``models.dialects`` for another engine.

DuckDB's ``arg_min``/``arg_max`` skip a null value (pandas' first/last non-null); ``arg_min_null``
keeps the value at the first row, null or not (a first exposure's variant, a first signup's segment).

Grains, each stated at its function: first exposure per person (``first_exposures_sql``), metric
after/before exposure per exposed person (``exposure_outcomes_sql``), latest company size per person,
signup and first KPI event per person (``signup_outcomes_sql``), per-person matching inputs
(``matching_inputs_sql``), daily event counts (``daily_counts_sql``), active person-days
(``person_days_sql``), one row per windowed KPI value (``kpi_windows_sql``).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime

import pandas as pd

from models.frames import frame
from tracking_plan.model import Plan
from tracking_plan.validate import ident, json_path

from .events_frame import (
    normalize,
    prop_column,
    property_names,
    segment_fields,
    where_column,
    where_keys,
)

# -- SQL text helpers ---------------------------------------------------------------------------------------


def lit(value) -> str:
    """A SQL literal: strings quoted, timestamps typed, None as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"no SQL literal for {value}")
        return repr(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return f"timestamp '{pd.Timestamp(value).isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"timestamp '{value.isoformat()} 00:00:00'"
    return "'" + str(value).replace("'", "''") + "'"


def days(n: float) -> str:
    """An interval of ``n`` days (``to_days``; ``to_seconds`` for a fraction), as the SQL models write it."""
    if float(n).is_integer():
        return f"to_days({int(n)})"
    return f"to_seconds({float(n) * 86_400!r})"


def in_list(values: Iterable) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


# -- the narrow events -----------------------------------------------------------------------------------------


def _field_sql(path: str) -> str:
    """SQL for an event field path: a typed column when ingest already has one, else JSON."""
    if path in ("context.location.region", "region"):
        return "region"
    head, _, rest = path.partition(".")
    if head in ("context", "properties", "traits") and rest:
        return f"json_extract_string({head}, '$.{rest}')"
    return f"json_extract_string(properties, '$.{path}')"


_JSON_FIELD = re.compile(r"json_extract_string\((properties|traits|context), '(\$\.[^']*)'\)")


def _one_parse(cols: list[str]) -> list[str]:
    """The columns with each JSON document's fields read as one list of its paths, indexed: every
    ``json_extract_string(doc, [p1, p2, ...])[i]`` of a document is the same expression, which DuckDB
    computes once per row (common subexpressions), so a payload is parsed once rather than once per
    field (10M events, the matching inputs' query 6.6 -> 5.1 CPU-s; the same rows). Other engines
    read ``[i]`` of it back as the one path (models.dialects)."""
    paths: dict[str, list[str]] = {}
    for c in cols:
        for doc, path in _JSON_FIELD.findall(c):
            if path not in paths.setdefault(doc, []):
                paths[doc].append(path)

    def one(m: re.Match) -> str:
        doc, path = m.group(1), m.group(2)
        listed = ", ".join(f"'{p}'" for p in paths[doc])
        return f"json_extract_string({doc}, [{listed}])[{paths[doc].index(path) + 1}]"

    return [_JSON_FIELD.sub(one, c) for c in cols]


def narrow_events_sql(plan: Plan, persons: str | None = None, reads: str | None = None) -> str:
    """One row per stitched event with a person (grain: event), JSON unpacked to the fields the marts use.

    ``persons``: a query of person_id; only their events (a kept per-person part computing the
    persons a run changed, ``EventSource.per_person``). Their rows are selected first, in a
    subquery with ``offset 0``, which no filter can be pushed below: a filter of the query on an
    unpacked field (``company_size is not null``) would otherwise run before the person filter and
    parse every event's payload (1M events, 13% of them the day's persons': latest company size
    0.15 CPU-s instead of 0.08).

    ``reads``: the text of the query that reads these events; only the unpacked fields it names are
    unpacked (``unpacked_reads``), the others left out (None: all). A document's fields are
    extracted as one list of paths (``_one_parse``), which the optimizer cannot shorten to the
    fields a query uses: 10M events, the latest company size per person 2.3-2.6 CPU-s with every
    field's path, 1.5 with its own two.

    Columns: ``person_id, event_name, timestamp, region, has_user, experiment_id, variant,
    company_size, seats, plan`` plus ``prop:<name>`` per KPI property and one column per initiative
    segment field and ``treatment_where`` key (``events_frame`` names them). Only ever read inside an
    aggregate query, so the optimizer extracts just the columns that query uses.
    """
    cols = [
        "person_id",
        "event_name",
        '"timestamp"',
        "region",
        "user_id is not null as has_user",
    ]
    unpacked = _unpacked(plan)
    if reads is not None:
        unpacked = {n: e for n, e in unpacked.items() if unpacked_reads(reads, n)}
    cols += [f"{e} as {ident(n)}" for n, e in unpacked.items()]
    select = "select " + ", ".join(_one_parse(cols))
    where = 'where person_id is not null and "timestamp" is not null'
    if persons is None:
        return f"{select} from stitch.events {where}"
    return f"{select} from (select * from stitch.events where person_id in ({persons}) offset 0) as e {where}"


def _unpacked(plan: Plan) -> dict[str, str]:
    """The narrow events' fields unpacked from JSON: name -> SQL over a stitch.events row."""
    out = {
        "experiment_id": "json_extract_string(properties, '$.experiment_id')",
        "variant": "coalesce(json_extract_string(properties, '$.variation_id'), json_extract_string(properties, '$.variant'))",
        "company_size": "coalesce(json_extract_string(traits, '$.company_size'), json_extract_string(properties, '$.company_size'))",
        "seats": "coalesce(try_cast(json_extract_string(properties, '$.seats') as double), try_cast(json_extract_string(traits, '$.seats') as double))",
        "plan": "json_extract_string(traits, '$.plan')",
    }
    out |= {
        prop_column(p): f"try_cast(json_extract_string(properties, {lit(json_path(p))}) as double)"
        for p in property_names(plan)
    }
    out |= {f: _field_sql(f) for f in segment_fields(plan)}
    out |= {where_column(k): f"json_extract_string(properties, {lit(json_path(k))})" for k in where_keys(plan)}
    return out


def unpacked_reads(sql: str, name: str) -> bool:
    """Whether query text ``sql`` names the narrow events' column ``name``: quoted anywhere, or bare
    as a word of its own. (Naming it in a string or a comment counts too: the field is then
    unpacked for nothing, never left out of a query that reads it.)"""
    if ident(name) in sql:
        return True
    return re.search(rf'(?<![\w"]){re.escape(name)}(?![\w"])', sql) is not None


def frame_events_sql(plan: Plan, table: str) -> str:
    """The same columns and types from a registered event frame (``events_frame.normalize``d)."""
    cols = [
        "cast(person_id as varchar) as person_id",
        "cast(event_name as varchar) as event_name",
        'cast("timestamp" as timestamp) as "timestamp"',
        "cast(region as varchar) as region",
        "cast(has_user as boolean) as has_user",
        "cast(experiment_id as varchar) as experiment_id",
        "cast(variant as varchar) as variant",
        "cast(company_size as varchar) as company_size",
        "try_cast(seats as double) as seats",
        "cast(plan as varchar) as plan",
    ]
    cols += [f"try_cast({ident(prop_column(p))} as double) as {ident(prop_column(p))}" for p in property_names(plan)]
    cols += [f"cast({ident(f)} as varchar) as {ident(f)}" for f in segment_fields(plan)]
    cols += [f"cast({ident(where_column(k))} as varchar) as {ident(where_column(k))}" for k in where_keys(plan)]
    return "select " + ", ".join(cols) + f' from {table} where person_id is not null and "timestamp" is not null'


class EventSource:
    """Where the aggregate queries read the narrow events: a warehouse, or a hand-built frame.

    ``ev`` is the relation to put after ``from`` (a parenthesized select); ``df(sql)`` runs a query;
    ``per_person`` runs one whose rows each depend on one person's events only, which a warehouse's
    ``keep`` (the pipeline's ``pipelines.stitch.person_parts.PersonParts`` of the mart) keeps.
    """

    _frames = itertools.count()

    def __init__(self, con, ev: str, plan: Plan, keep=None):
        self.con, self.ev, self.plan, self.keep = con, ev, plan, keep
        self._span: tuple | None = None

    @classmethod
    def warehouse(cls, con, plan: Plan, keep=None) -> EventSource:
        return cls(con, f"({narrow_events_sql(plan)})", plan, keep)

    def _narrowed(self, sql: str, persons: str | None = None) -> str:
        """``sql`` with the warehouse's narrow events in it (``narrow_events_sql(plan)``) unpacking
        only the fields the rest of ``sql`` reads (its ``reads``), of the events of ``persons`` when
        given. A query over a frame's events is returned as it is."""
        if self._every not in sql:
            return sql
        reads = sql.replace(self._every, "")
        return sql.replace(self._every, f"({narrow_events_sql(self.plan, persons, reads=reads)})")

    @functools.cached_property
    def _every(self) -> str:
        """The warehouse's narrow events with every field (the relation ``warehouse`` reads)."""
        return f"({narrow_events_sql(self.plan)})"

    @classmethod
    def frame(cls, events: pd.DataFrame, plan: Plan) -> EventSource:
        import duckdb

        con = duckdb.connect()
        name = f"events_frame_{next(cls._frames)}"
        con.register(name, normalize(events, plan))
        return cls(con, f"({frame_events_sql(plan, name)})", plan)

    def df(self, sql: str) -> pd.DataFrame:
        return frame(self.con, self._narrowed(sql))

    def per_person(self, name: str, sql_of: Callable[[str], str]) -> pd.DataFrame:
        """``sql_of(ev)`` (a ``*_sql`` query of this module over the events ``ev``) whose every row
        belongs to one person and depends on that person's events alone. Kept (``keep``, named
        ``name``): its rows are computed again only for the persons whose events changed since the
        last run, over their events (``narrow_events_sql(plan, persons)``), the others' read back;
        the same rows in the same order as running it."""
        if self.keep is None:
            return self.df(sql_of(self.ev))
        return self.keep.query(name, lambda persons: self._narrowed(sql_of(self._every), persons))

    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None, int]:
        """(first event time, last event time, number of events)."""
        if self._span is None:
            first, last, n = self.con.execute(span_sql(self.ev)).fetchall()[0]  # (fetchone leaves the result open)
            self._span = (
                pd.Timestamp(first) if first is not None else None,
                pd.Timestamp(last) if last is not None else None,
                int(n),
            )
        return self._span

    def data_end(self) -> pd.Timestamp | None:
        return self.span()[1]

    def why_empty(self) -> str:
        """What the ingest did with what it read, when no event came through (ingest.ingestion_log):
        "3 lines read, none loaded (2 quarantined, 1 consent-dropped)"; '' for a frame."""
        import duckdb

        cols = ("quarantined", "duplicates", "consent_dropped", "suppressed")
        try:
            row = self.con.execute(
                "select coalesce(sum(lines), 0), coalesce(sum(loaded), 0), "
                + ", ".join(f"coalesce(sum({c}), 0)" for c in cols)
                + ", count(*) filter (where status = 'skipped') from ingest.ingestion_log"
            ).fetchall()[0]
        except duckdb.CatalogException:  # (a frame's connection, or no ingest yet)
            return ""
        lines, loaded, *counts, skipped = row
        gone = ", ".join(f"{n:,} {c.replace('_', '-')}" for c, n in zip(cols, counts, strict=True) if n)
        files = f"; {skipped:,} file{'s' if skipped > 1 else ''} skipped" if skipped else ""
        if not lines:
            return f"no lines read{files}"
        return f"{lines:,} lines read, {loaded:,} loaded" + (f" ({gone})" if gone else "") + files


def source_of(events, plan: Plan) -> EventSource:
    """An ``EventSource`` as is; an event frame registered for the same SQL (its columns named by ``plan``)."""
    if isinstance(events, EventSource):
        return events
    if plan is None:
        raise TypeError("an event frame needs the plan that names its columns: pass plan=")
    return EventSource.frame(events, plan)


def times(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Timestamp columns as pandas datetimes (DuckDB returns them so; an empty result may not)."""
    for c in cols:
        df[c] = pd.to_datetime(df[c])
    return df


# -- queries ----------------------------------------------------------------------------------------------------


def span_sql(ev: str) -> str:
    """Grain: one row. First and last event time and the number of events."""
    return f'select min("timestamp"), max("timestamp"), count(*) from {ev} as e'


def first_exposures_sql(ev: str, exposure_event: str, experiment: str, start=None) -> str:
    """Grain: exposed person. The first exposure (time and its variant), ordered by time then person."""
    since = f' and "timestamp" >= {lit(pd.Timestamp(start))}' if start else ""
    return f"""
select person_id, arg_min_null(variant, "timestamp") as variant, min("timestamp") as exposed_at
from {ev} as e
where event_name = {lit(exposure_event)} and experiment_id = {lit(experiment)}{since}
group by person_id
order by exposed_at, person_id"""


def exposure_outcomes_sql(
    ev: str,
    exposures: str,
    event: str,
    prop: str | None,
    window_days: float,
    lookback_days: float,
) -> str:
    """Grain: exposed person. The metric event after the first exposure and in the lookback before it.

    ``exposures`` is a query of ``person_id, variant, exposed_at``. Columns: ``n_window`` events in
    (exposed_at, exposed_at + window], ``n_after`` events after exposure, ``v_sum`` / ``v_mean`` the
    property after exposure (null when none), ``pre`` events in [exposed_at - lookback, exposed_at).
    """
    value = ident(prop) if prop else "null::double"
    return f"""
with x as ({exposures}),
m as (select person_id, "timestamp", {value} as v from {ev} as e where event_name = {lit(event)})
select x.person_id, any_value(x.variant) as variant, any_value(x.exposed_at) as exposed_at,
       count(m."timestamp") filter (where m."timestamp" > x.exposed_at
                                    and m."timestamp" <= x.exposed_at + {days(window_days)}) as n_window,
       count(m."timestamp") filter (where m."timestamp" > x.exposed_at) as n_after,
       sum(m.v) filter (where m."timestamp" > x.exposed_at) as v_sum,
       avg(m.v) filter (where m."timestamp" > x.exposed_at) as v_mean,
       count(m."timestamp") filter (where m."timestamp" < x.exposed_at
                                    and m."timestamp" >= x.exposed_at - {days(lookback_days)}) as pre
from x left join m on m.person_id = x.person_id
group by x.person_id
order by exposed_at, x.person_id"""


def latest_value_sql(ev: str, column: str) -> str:
    """Grain: person with a value. The person's latest non-null ``column``."""
    c = ident(column)
    return f"""
select person_id, arg_max({c}, "timestamp") as {c}
from {ev} as e where {c} is not null
group by person_id"""


def signup_outcomes_sql(ev: str, signup_event: str, segment_column: str, event: str) -> str:
    """Grain: person who signed up. Their first signup (time, ``segment_column`` at it) and the
    first ``event`` strictly after it (``first_after``, null if none), ordered by person."""
    return f"""
with s as (
    select person_id, min("timestamp") as signup_at, arg_min_null({ident(segment_column)}, "timestamp") as segment
    from {ev} as e where event_name = {lit(signup_event)} group by person_id
), k as (select person_id, "timestamp" from {ev} as k where event_name = {lit(event)})
select s.person_id, any_value(s.signup_at) as signup_at, any_value(s.segment) as segment,
       min(k."timestamp") filter (where k."timestamp" > s.signup_at) as first_after
from s left join k on k.person_id = s.person_id
group by s.person_id
order by s.person_id"""


def matching_inputs_sql(
    ev: str,
    *,
    signup_event: str,
    outcome_event: str,
    treatment_event: str,
    start,
    window_days: float,
    where: dict,
    free_plans: Iterable[str],
) -> str:
    """Grain: person. What ``initiatives.matching_frame`` needs of each person, ordered by person:
    identified at all, first signup, first outcome event, first billed (revenue) event, first event
    with a paid ``plan`` trait, events before ``start``, treated (the treatment event, with its
    ``where`` properties, in [start, start + window)), latest company size, most seats before start."""
    t0 = lit(pd.Timestamp(start))
    conds = [
        f"event_name = {lit(treatment_event)}",
        f'"timestamp" >= {t0}',
        f'"timestamp" < {t0} + {days(window_days)}',
    ]
    conds += [f"cast({ident(where_column(k))} as varchar) = {lit(str(v))}" for k, v in where.items()]
    revenue = ident(prop_column("revenue"))
    return f"""
select person_id,
       bool_or(has_user) as has_user,
       min("timestamp") filter (where event_name = {lit(signup_event)}) as signup_at,
       min("timestamp") filter (where event_name = {lit(outcome_event)}) as first_outcome,
       min("timestamp") filter (where {revenue} is not null) as first_revenue,
       min("timestamp") filter (where plan is not null and lower(plan) not in {in_list(free_plans)}) as first_paid,
       count(*) filter (where "timestamp" < {t0}) as pre_events,
       coalesce(bool_or({" and ".join(conds)}), false) as treated,
       arg_max(company_size, "timestamp") filter (where company_size is not null) as company_size,
       max(seats) filter (where "timestamp" < {t0}) as pre_seats
from {ev} as e
group by person_id
order by person_id"""


def daily_counts_sql(ev: str, event: str) -> str:
    """Grain: UTC day with the event. How many ``event`` events that day."""
    return f"""
select cast("timestamp" as date) as day, count(*) as n
from {ev} as e where event_name = {lit(event)}
group by 1 order by 1"""


def person_days_sql(ev: str, event: str | None, segment_column: str = "region") -> str:
    """Grain: person × UTC day with any event (an active person-day). ``y`` the day's ``event``
    count, ``segment`` the day's first non-null ``segment_column``; ordered by person, day."""
    hit = f"event_name = {lit(event)}" if event is not None else "false"
    seg = ident(segment_column)
    return f"""
select person_id, cast("timestamp" as date) as day,
       arg_min({seg}, "timestamp") filter (where {seg} is not null) as segment,
       count(*) filter (where {hit}) as y
from {ev} as e
group by person_id, cast("timestamp" as date)
order by person_id, day"""


def property_rows_sql(ev: str, event: str, prop: str, segment_column: str = "region") -> str:
    """Grain: event carrying the property (the one per-event read left: an average-property KPI's
    own events, e.g. survey responses). ``y`` the property, its person, day and segment."""
    p = ident(prop_column(prop))
    return f"""
select person_id, "timestamp", cast("timestamp" as date) as day, {ident(segment_column)} as segment, {p} as y
from {ev} as e where event_name = {lit(event)} and {p} is not null
order by person_id, "timestamp" """


def kpi_windows_sql(ev: str, measure: str, event: str | None, prop: str | None, windows: list[tuple]) -> str:
    """Grain: one row per window ``(i, lo, hi)``: the KPI over events with lo < timestamp <= hi.

    ``active_persons`` distinct persons; ``event_count`` the event's count; ``revenue`` the sum and
    ``average_property`` the mean of its property (null when no event carries it)."""
    values = ", ".join(f"({i}, {lit(lo)}, {lit(hi)})" for i, lo, hi in windows)
    hit = f"e.event_name = {lit(event)}" if event is not None else "false"
    p = f"e.{ident(prop_column(prop))}" if prop else "null::double"
    agg = {
        "active_persons": "count(distinct e.person_id)",
        "event_count": f"count(e.person_id) filter (where {hit})",
        "revenue": f"coalesce(sum({p}) filter (where {hit}), 0)",
        "average_property": f"avg({p}) filter (where {hit})",
    }[measure]
    # a measure of one event reads only that event's rows (the join then pairs each window with those
    # alone; a window without any still gets its row: count 0, sum 0, mean null): 5x less CPU at 1M
    # events. (A sum of doubles may differ in its last digit, as it does between two runs of either:
    # the threads add in the order they finish.)
    rows = ev if measure == "active_persons" else f"(select * from {ev} as e where {hit})"
    return f"""
with w(i, lo, hi) as (values {values})
select w.i, {agg} as value
from w left join {rows} as e on e."timestamp" > w.lo and e."timestamp" <= w.hi
group by w.i order by w.i"""


def cohort_hits_sql(ev: str, signup_event: str, event: str | None, window_days: float) -> str:
    """Grain: person who signed up. First signup time and the ``event`` count in (signup, signup + window]."""
    hit = f"event_name = {lit(event)}" if event is not None else "false"
    return f"""
with s as (select person_id, min("timestamp") as signup_at from {ev} as e
           where event_name = {lit(signup_event)} group by person_id),
k as (select person_id, "timestamp" from {ev} as k where {hit})
select s.person_id, any_value(s.signup_at) as signup_at,
       count(k."timestamp") filter (where k."timestamp" > s.signup_at
                                    and k."timestamp" <= s.signup_at + {days(window_days)}) as hits
from s left join k on k.person_id = s.person_id
group by s.person_id
order by s.person_id"""

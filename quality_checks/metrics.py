"""quality.daily_metrics: one row per day x event x metric (x property x dimension), built in SQL.

Metrics (column `metric`):
  volume            loaded events (every calendar day, 0 when none arrived)
  quarantined       rejected lines, for every event name seen there (also names not in the plan)
  quarantine_share  quarantined / (loaded + quarantined)
  persons           distinct stitched persons
  lag_p50_seconds, lag_p95_seconds   received_at - timestamp
  null_rate         per plan property: share of the event's lines (loaded or quarantined) where it is
                    absent or null; measured as sent, so a bug that gets events quarantined still shows
  type_share        per property and JSON type (`dimension`): share of its non-null values
  enum_share        per enum property and value (`dimension`): share of its non-null values
`property` and `dimension` are '' where they do not apply; `denominator` is the count a share is of.
`day` is the partition date (UTC date of receipt), the same day the landing zone is organized by.
"""

from __future__ import annotations

from models.frames import frame

TABLE = "quality.daily_metrics"

COLUMNS = {
    "day": "Partition date (UTC date the events were received).",
    "event_name": "The plan's event name (or the unknown name as sent, for quarantined lines).",
    "metric": "volume, quarantined, quarantine_share, persons, lag_p50_seconds, lag_p95_seconds, "
    "null_rate, type_share or enum_share.",
    "property": "The property a per-property metric is about ('' otherwise).",
    "dimension": "The JSON type (type_share) or enum value (enum_share) ('' otherwise).",
    "value": "The metric's value that day.",
    "denominator": "What a share is a share of (lines, or non-null values); the count itself for counts.",
}

_JSON_TYPE = (
    "case {t} when 'BIGINT' then 'number' when 'UBIGINT' then 'number' when 'DOUBLE' then 'number' "
    "when 'HUGEINT' then 'number' when 'VARCHAR' then 'string' when 'BOOLEAN' then 'boolean' "
    "when 'ARRAY' then 'array' when 'OBJECT' then 'object' when 'NULL' then 'null' else lower({t}) end"
)


def _exists(con, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchall()[0][0]
    )


def plan_properties(plan) -> list[tuple[str, str, bool]]:
    """(event, property, is_enum) of every top-level plan property."""
    return [(e.name, k, bool(p.enum)) for e in plan.events.values() for k, p in e.properties.items()]


def planned_events(plan) -> list[str]:
    """The plan's active event names (volume is reported for each, every day, 0 when none arrived)."""
    return [e.name for e in plan.events.values() if e.status == "active"]


# the metrics of one partition's rows alone (its payloads, its lag): kept per partition by a daily run
LOCAL = ("lag_p50_seconds", "lag_p95_seconds", "null_rate", "type_share", "enum_share")


def daily_metrics_sql(has_stitch: bool, object_keys: bool = True, part: str = "all", days: str = "true") -> str:
    """The select of quality.daily_metrics (DuckDB dialect), over ingest.events, ingest.quarantine,
    stitch.events (when `has_stitch`) and two small tables of the plan: `_q_props` (event_name,
    property, is_enum: plan_properties) and `_q_planned` (event_name: planned_events). The one SQL of
    the metrics: the Spark engine runs it through models.dialects (pipelines/spark/quality.py).

    `object_keys` (DuckDB): an object payload's entries as `json_keys` zipped with its values' JSON
    types and texts, vector functions; `json_each` over every payload made DuckDB join each payload back to its entries
    by value, 2x the CPU (2.4 -> 1.3 CPU-s at 1M events, identical rows). The same (key, value) pairs
    as `json_each`, duplicate keys included; Spark (False) has only the `json_each` form, which
    models.dialects translates. tests/test_spark_quality.py holds the two engines' rows equal.

    `part`: "all" the metrics, "local" those of LOCAL (each day's from that partition's rows alone)
    over the partitions where `days` (SQL over partition_date) holds, "global" the others (counts
    over every partition: the calendar, the names seen, persons as stitched now)."""
    if object_keys:
        # (each value's JSON type and text as lists of the payload's, one parse each, rather than a
        # `json_type` and a `->>` parsing every value again; the texts only of the events with an
        # enum property, the only ones read: 1M events, the build 1.33 -> 1.22 CPU-s, identical rows)
        # (an array's entries from the same scan: json_each of the payloads that are no object, a
        # second union branch, read every payload twice more for the few that are arrays; 10M events,
        # the local part 0.7 CPU-s less)
        entries = """, entries as (
    -- every (key, value) of each payload, as json_each gives them (duplicate keys too): its JSON type, its
    -- text. An object's keys, an array's positions ('0', '1', ...); a scalar's one entry has no key (NULL),
    -- which names no property
    select day, event_name,
           unnest(case when _obj then json_keys(payload)
                       else list_transform(range(json_array_length(payload)::bigint), lambda i: i::varchar) end) as key,
           unnest(case when _obj then json_type(payload, '$.*') else json_type(payload, '$[*]') end) as t,
           unnest(case when event_name in (select event_name from _q_props where is_enum)
                       then case when _obj then json_extract_string(payload, '$.*')
                                 else json_extract_string(payload, '$[*]') end end) as x
    from (select *, starts_with(payload::varchar, '{') as _obj from sent)
    where _obj or starts_with(payload::varchar, '[')
)"""
        source = "from entries e join _q_props p on p.event_name = e.event_name and p.property = e.key"
        day, key, t, x = "e.day, e.event_name", "e.key", "e.t", "e.x"
    else:
        entries = ""
        source = "from sent s, json_each(s.payload) j\n    join _q_props p on p.event_name = s.event_name and p.property = j.key"
        day, key, t, x = "s.day, s.event_name", "j.key", "json_type(j.value)", "j.value ->> '$'"
    jt = _JSON_TYPE.format(t=t)
    ctes = f"""
with loaded as (
    select partition_date as day, event_name, count(*) as n from ingest.events group by all
), rejected as (
    select partition_date as day, coalesce(event_name, '(unknown)') as event_name, count(*) as n
    from ingest.quarantine group by all
), calendar as (
    select g::date as day from (
        select unnest(generate_series(min(day), max(day), interval 1 day)) as g
        from (select day from loaded union all select day from rejected)
    )
), names as (
    select event_name from _q_planned union select distinct event_name from loaded
), volume as (
    select c.day, n.event_name, coalesce(l.n, 0) as v
    from calendar c cross join names n left join loaded l on l.day = c.day and l.event_name = n.event_name
), sent as not materialized (
    -- (inlined: materialized, every event's payload was written once and read three times, spilling at
    -- 10M events; the kv rows are counted as they are made, not kept one per property of every event:
    -- 10M events, the local part 13.2 -> 10.0 CPU-s, 1M 1.27 -> 1.11, identical rows)
    -- properties as sent: loaded rows and quarantined rows that were at least JSON
    -- (consent-stripped rows lose their PII by design: not a null the sender made)
    select partition_date as day, event_name, properties as payload from ingest.events
    where not coalesce(consent_stripped, false) and {days}
    union all
    select partition_date, event_name,
           case when raw::json ->> '$.type' in ('identify', 'group') then raw::json -> '$.traits'
                else raw::json -> '$.properties' end
    from ingest.quarantine where event_name is not null and json_valid(raw) and {days}
), lags as materialized (
    select partition_date as day, event_name,
           quantile_cont(epoch(received_at) - epoch("timestamp"), [0.5, 0.95]) as q, count(*) as n
    from ingest.events where received_at is not null and "timestamp" is not null and {days} group by all
), sent_rows as (
    select day, event_name, count(*) as n from sent group by all
){entries}, kv as (
    select {day}, {key} as property, {jt} as jtype,
           case when p.is_enum and {t} <> 'NULL' then {x} end as enum_value, count(*) as n
    {source}
    group by all
), typed as (
    select day, event_name, property, jtype, sum(n)::bigint as n from kv where jtype <> 'null' group by all
), present as (
    select day, event_name, property, sum(n)::bigint as n from typed group by all
), enum_counts as (
    select day, event_name, property, enum_value, sum(n)::bigint as n from kv where enum_value is not null group by all
)
@BODY@
"""
    globals_ = [
        """select day, event_name, 'volume' as metric, '' as property, '' as dimension, v::double as value,
       v::bigint as denominator
from volume""",
        "select day, event_name, 'quarantined', '', '', n, n from rejected",
        """select coalesce(l.day, r.day), coalesce(l.event_name, r.event_name), 'quarantine_share', '', '',
       coalesce(r.n, 0) / (coalesce(l.n, 0) + coalesce(r.n, 0)), coalesce(l.n, 0) + coalesce(r.n, 0)
from loaded l full join rejected r on l.day = r.day and l.event_name = r.event_name
where coalesce(l.event_name, r.event_name) in (select event_name from _q_props union select event_name from _q_planned)""",
    ]
    if has_stitch:
        # (each person's rows grouped first, then the persons counted: 10M events 1.65 CPU-s, where a
        # count(distinct person_id) beside count(*) in one grouping took 2.4-2.6; the same counts)
        globals_.append(
            """select partition_date, event_name, 'persons', '', '', count(person_id), sum(n)::bigint
from (select partition_date, event_name, person_id, count(*) as n from stitch.events group by all) group by all"""
        )
    # both lag quantiles from one aggregate over the lags (two took twice the scan and the sort:
    # 10M events, 0.64-0.75 -> 0.36 CPU-s, the same values)
    locals_ = [
        f"""select day, event_name, '{m}' as metric, '' as property, '' as dimension, q[{i}] as value, n as denominator
from lags"""
        for i, m in ((1, "lag_p50_seconds"), (2, "lag_p95_seconds"))
    ] + [
        """select r.day, r.event_name, 'null_rate', p.property, '', 1 - coalesce(pr.n, 0) / r.n, r.n
from sent_rows r join _q_props p on p.event_name = r.event_name
left join present pr on pr.day = r.day and pr.event_name = r.event_name and pr.property = p.property""",
        """select t.day, t.event_name, 'type_share', t.property, t.jtype, t.n / pr.n, pr.n
from typed t join present pr using (day, event_name, property)""",
        """select e.day, e.event_name, 'enum_share', e.property, e.enum_value, e.n / pr.n, pr.n
from enum_counts e join present pr using (day, event_name, property)""",
    ]
    chosen = {"all": globals_ + locals_, "global": globals_, "local": locals_}[part]
    return ctes.replace("@BODY@", "\nunion all\n".join(chosen))


def build_daily_metrics(con, plan, by_partition: bool = False, full_refresh: bool = False) -> int:
    """Create or replace quality.daily_metrics from ingest.events, ingest.quarantine and stitch.events.

    `by_partition` (a daily run): the LOCAL metrics are computed anew only for the partitions whose
    rows (loaded or quarantined) changed since the last build, the others kept
    (quality_checks/partition_state.py; every partition on `full_refresh`); the counts over every
    partition (volume, quarantine, persons) are computed whole. The same rows as a full build."""
    con.execute("create schema if not exists quality")
    con.execute("create or replace temp table _q_props (event_name varchar, property varchar, is_enum boolean)")
    props = plan_properties(plan)
    if props:
        con.executemany("insert into _q_props values (?, ?, ?)", props)
    con.execute(
        "create or replace temp table _q_planned as select unnest(?::varchar[]) as event_name", [planned_events(plan)]
    )
    has_stitch = _exists(con, "stitch.events")
    if not by_partition:
        con.execute(f"create or replace table {TABLE} as {daily_metrics_sql(has_stitch)}").fetchall()
        return con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    from . import partition_state as ps

    fp = ps.digest(daily_metrics_sql(has_stitch, part="local", days="@DAYS@"), repr(props))
    e, q = ps.signature_sql("ingest.events", "loaded_at"), ps.signature_sql("ingest.quarantine", "quarantined_at")
    current = f"""select coalesce(e.partition_date, q.partition_date) as partition_date,
        concat_ws('#', coalesce(e.signature, ''), coalesce(q.signature, '')) as signature
        from ({e}) e full join ({q}) q on e.partition_date is not distinct from q.partition_date"""
    local = ", ".join(f"'{m}'" for m in LOCAL)
    con.execute("begin transaction")
    try:
        had = _exists(con, TABLE)
        todo = ps.stale(con, TABLE, current, fp, full_refresh or not had)
        days = ps.where(todo)
        # kept: the LOCAL rows of the partitions that did not change (and still are there)
        if had:
            con.execute(
                f"""create or replace temp table _q_kept as select * from {TABLE} k
                where metric in ({local}) and not {ps.where(todo, "k.day")}
                and exists (select 1 from _ps_now n where n.partition_date is not distinct from k.day)"""
            ).fetchall()
        con.execute(
            f"create or replace temp table _q_local as {daily_metrics_sql(has_stitch, part='local', days=days)}"
        ).fetchall()
        con.execute(
            f"""create or replace table {TABLE} as
            {daily_metrics_sql(has_stitch, part="global")}
            union all by name select * from _q_local"""
            + ("\nunion all by name select * from _q_kept" if had else "")
        ).fetchall()
        con.execute("drop table if exists _q_kept").fetchall()
        ps.keep(con, TABLE, fp, todo)
        con.execute("commit").fetchall()
    except BaseException:
        con.execute("rollback")
        raise
    return con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]


def last_seen(con):
    """event_name, last_received_at of every loaded event name (for the freshness detector)."""
    return frame(con, "select event_name, max(received_at) as last_received_at from ingest.events group by all")

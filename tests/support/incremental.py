"""Daily (incremental) runs and a full build of the same landing zone, and their comparison: the
helpers of tests/test_incremental.py (one hand-made scenario) and tests/test_incremental_random.py
(random ones). The runs use the assets' own functions (ingest, stitch, sessions, every SQL and Python
mart, the daily metrics and the plan gates) without Dagster's per-asset overhead."""

from __future__ import annotations

import math

from models.catalog import load_models, load_python_models, set_plan_variables
from models.staging.plan_tables import write_plan_tables
from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.model_assets import python_model_frame, write_frame
from pipelines.quality.checks import gates
from pipelines.stitch import person_marts
from pipelines.stitch.identity import build_identity
from pipelines.stitch.incremental import stitch
from pipelines.stitch.person_marts import COHORT_PARTS, PERSON_PARTS, cache_table, cohort_table, kept_tables
from pipelines.stitch.sessions import build_sessions
from pipelines.stitch.state import STATE_TABLES
from pipelines.warehouse import connect
from quality_checks.metrics import build_daily_metrics

SQL = {m.table: m for m in load_models()}
SESSIONS = SQL["staging.sessions"].sql
MARTS = [m for m in load_models() if m.schema == "marts"]


def marts(con, plan, plan_dir=None) -> tuple[list[str], dict[str, str]]:
    """Every mart: the SQL marts as their asset builds them (plan_dir given: a kept per-person part
    where there is one), or straight from their SQL (the full run); the Python marts as their asset
    builds them (their kept per-person parts: pipelines/stitch/person_parts.py). (The SQL marts'
    modes, {Python mart's kept part: mode}.)"""
    set_plan_variables(con, plan)
    modes, kept = [], {}
    for m in MARTS:
        if plan_dir and m.table in PERSON_PARTS:
            modes.append(person_marts.build(con, m.table, m.sql, str(m.path), plan_dir)["mode"])
        else:
            con.execute(f"create or replace table {m.table} as {m.sql}").fetchall()
    todo = load_python_models()
    while todo:  # in the order of their depends_on
        ready = [m for m in todo if all(f"{s}.{t}" not in {x.table for x in todo} for s, t in m.upstream())]
        assert ready, [m.table for m in todo]
        for m in ready:
            _, df, parts = python_model_frame(con, m, plan, plan_dir)
            write_frame(con, m.table, df)
            kept.update(parts or {})
        todo = [m for m in todo if m not in ready]
    return modes, kept


def daily_run(con, plan, plan_dir, landing, day: str | None) -> dict:
    """One scheduled run as the assets do it: `day`'s partition ingested (none: nothing new landed),
    then the stitch, the sessions, every mart, the daily metrics and the gates, each over what
    changed. {layer: mode} (the kept Python parts' modes under "python", and under "again" the days
    the ingest ran again with its reason)."""
    ingested = ingest_partitions(con, plan, landing, [day]) if day else []
    s = stitch(con, plan, plan_dir)
    set_plan_variables(con, plan)
    sessions = build_sessions(con, SESSIONS, plan_dir)["mode"]
    sql, python = marts(con, plan, plan_dir)
    build_daily_metrics(con, plan, by_partition=True)  # the partitions that changed, as the asset does
    gates(con, plan, "ingest.events", by_partition=True)
    gates(con, plan, "stitch.events", by_partition=True)
    again = {r.partition: r.because for r in ingested if r.because}
    return {"stitch": s["mode"], "sessions": sessions, "sql": sql, "python": python, "again": again}


def full_build(path, plan, landing, after_ingest=None, register_of=None):
    """A warehouse built at once from every partition of `landing` (`after_ingest(con)`: what
    another writer did to ingest.events before the rest was built; `register_of`: a warehouse whose
    erasure register the build starts with, so it never loads the persons erased there)."""
    con = connect(path)
    register = register_of.execute("select * from ingest.suppression").fetchall() if register_of else []
    if register:
        con.executemany("insert into ingest.suppression values (?, ?, ?, ?)", [list(r) for r in register])
    write_plan_tables(con, plan)
    ingest_partitions(con, plan, landing, landed_partitions(landing))
    if after_ingest:
        after_ingest(con)
    build_identity(con, plan)
    set_plan_variables(con, plan)
    con.execute(f"create or replace table staging.sessions as {SESSIONS}").fetchall()
    marts(con, plan)
    build_daily_metrics(con, plan)
    return con


def compared_tables(con) -> list[str]:
    """The stitch, staging and mart tables (and stitch.events), upstream first, without the run
    state and the kept per-person caches."""
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        # (stitch.events is a view: ingest.events with the person the stitch wrote on each row)
        "where table_schema in ('stitch', 'staging', 'marts') and table_type in ('BASE TABLE', 'VIEW') order by 1"
    ).fetchall()
    caches = set(kept_tables())
    layer = {"stitch": 0, "staging": 1, "marts": 2}
    kept = [r[0] for r in rows if r[0] not in STATE_TABLES and r[0] not in caches]
    return sorted(kept, key=lambda t: (layer[t.split(".")[0]], t))


def rows(con, table: str) -> list[tuple]:
    cols = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] != "loaded_at"]
    return con.execute(
        f"select {', '.join(map(repr, cols)).replace(chr(39), chr(34))} from {table} order by all"
    ).fetchall()


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def difference(inc, full, table: str) -> str | None:
    """How `table` differs between the two warehouses (None: the same rows)."""
    got, want = rows(inc, table), rows(full, table)
    if len(got) != len(want):
        return f"{table}: {len(got)} rows incrementally, {len(want)} in a full run"
    for g, w in zip(got, want, strict=True):
        if not all(same(x, y) for x, y in zip(g, w, strict=True)):
            return f"{table}:\n  incremental {g}\n  full        {w}"
    return None


def assert_equal(inc, full, table: str) -> None:
    diff = difference(inc, full, table)
    assert diff is None, diff


def kept_parts_difference(inc, full) -> str | None:
    """The kept per-person (and per-cohort) parts of the daily runs against a full build's."""
    for table in PERSON_PARTS:
        sqls = person_marts.parts(table, SQL[table].sql, table)
        full.execute(f"create or replace table {cache_table(table)} as {sqls['persons']}").fetchall()
        if diff := difference(inc, full, cache_table(table)):
            return diff
        if table in COHORT_PARTS:
            cohorts = sqls["cohorts"].replace("{cache}", cache_table(table))
            full.execute(f"create or replace table {cohort_table(table)} as {cohorts}").fetchall()
            if diff := difference(inc, full, cohort_table(table)):
                return diff
    return None


def gate_counts(con, plan, table: str = "ingest.events", **kw) -> list[tuple]:
    return sorted(
        (o.check, o.passed, o.metadata["rows"], o.metadata["failing_count"], str(o.metadata["failed_rules"]))
        for o in gates(con, plan, table, **kw)
    )

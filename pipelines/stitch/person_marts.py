"""SQL marts whose heavy part is per person: kept per person (and per cohort), re-aggregated.

Everything up to one CTE of these marts depends on one person's events only; that CTE's rows are
kept in `<mart>__persons` (PERSON_PARTS). A run recomputes them for the persons in stitch.changes
(all of each one's events: a person's result is over their whole history, and a person whose
identity merged appears there with every event, so they leave the cohorts they were in):
  - marts.funnel_conversion: `person_steps` (attempts, steps, exclusions, the best attempt);
  - marts.retention: `member_periods` (the cohorts a person is in, and the periods they came back);
  - marts.activation_cohorts: `persons` (signup, the cohort week, activation);
  - marts.customer_value: `customer_facts` (channel, plan, revenue, first purchase, churn).
Where the mart's grain is a cohort, a second CTE is kept per cohort in `<mart>__cohorts`
(COHORT_PARTS): only the cohorts the changed persons were in before the run or are in after it are
recomputed, from the kept per-person rows of those cohorts (a late event or a merge that moves a
person from one cohort to another touches both). What depends on the whole data (the observed
window: retention's last period, activation's window_complete, months at risk) is computed after
the kept parts, on every run, from them and one scan of the events' timestamps.

The models' SQL is not rewritten: the same file is cut at those CTEs, so a full build and an
incremental one run the same text. A kept part is rebuilt whole under the same rules as
staging.sessions (pipelines/stitch/state.py `follow`), and when a session variable the SQL reads
(getvariable: retention_from / retention_to) has a value other than in its last build.
"""

from __future__ import annotations

import re

import duckdb

from ..warehouse import transaction
from .state import exists, follow, over, set_state

# mart → its per-person CTE
PERSON_PARTS = {
    "marts.funnel_conversion": "person_steps",
    "marts.retention": "member_periods",
    "marts.activation_cohorts": "persons",
    "marts.customer_value": "customer_facts",
}
# mart → (its per-cohort CTE, reading the per-person one; the cohort's key columns)
COHORT_PARTS = {
    "marts.retention": ("cohort_counts", ("period_type", "cohort_start")),
    "marts.activation_cohorts": ("cohorts", ("cohort_week",)),
}


def cache_table(table: str) -> str:
    return f"{table}__persons"


def cohort_table(table: str) -> str:
    return f"{table}__cohorts"


def kept_tables() -> list[str]:
    """Every kept part (not a mart itself: what a full build and an incremental one agree on through the marts)."""
    return [cache_table(t) for t in PERSON_PARTS] + [cohort_table(t) for t in COHORT_PARTS]


def split(sql: str, cte: str, path: str, placeholder: str = "cache") -> tuple[str, str]:
    """(the SQL of the CTE's rows; the rest of the SQL reading them from `{placeholder}`)."""
    m = re.search(rf"^{cte} as \(", sql, flags=re.MULTILINE)
    if not m:
        raise RuntimeError(f"{path}: no CTE '{cte} as (' at the start of a line")
    depth, end = 0, None
    for i in range(m.end() - 1, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            end = i
            break
    if end is None:
        raise RuntimeError(f"{path}: CTE '{cte}' is not closed")
    part = sql[: end + 1] + f"\nselect * from {cte}"
    rest = sql[: m.start()] + f"{cte} as (select * from {{{placeholder}}})" + sql[end + 1 :]
    return part, rest


def parts(table: str, sql: str, path: str) -> dict[str, str]:
    """The SQL of each part of a mart of PERSON_PARTS: `persons` (its per-person rows), `cohorts`
    (its per-cohort rows from `{cache}`, when it has a COHORT_PARTS entry) and `mart` (the mart from
    `{cache}`, or from `{cohorts}`)."""
    person_sql, rest = split(sql, PERSON_PARTS[table], path)
    out = {"persons": person_sql, "mart": rest}
    if table in COHORT_PARTS:
        out["cohorts"], out["mart"] = split(rest, COHORT_PARTS[table][0], path, "cohorts")
    return out


def _variables(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The session variables the SQL reads, with their values now (a kept part is only valid for them)."""
    names = sorted(set(re.findall(r"getvariable\('(\w+)'\)", sql)))
    return "".join(f"{n}={con.execute(f'select getvariable({n!r})::varchar').fetchall()[0][0]};" for n in names)


def build(con: duckdb.DuckDBPyConnection, table: str, sql: str, path: str, plan_dir=None, full_refresh=False) -> dict:
    """Materialize `table` (a mart of PERSON_PARTS) through its kept parts; {mode, why}."""
    cache = cache_table(table)
    sqls = parts(table, sql, path)
    cohort = COHORT_PARTS.get(table)
    cohorts = cohort_table(table) if cohort else None
    why, seq, fp = follow(con, cache, plan_dir, full_refresh, extra=_variables(con, sql))
    if why is None and cohorts and not exists(con, cohorts):
        why = "no earlier state"
    mode = "unchanged"
    if why:
        with transaction(con):  # the kept parts and their state together
            con.execute(f"create or replace table {cache} as {sqls['persons']}").fetchall()
            if cohorts:
                con.execute(f"create or replace table {cohorts} as {sqls['cohorts'].replace('{cache}', cache)}")
            set_state(con, cache, fp, seq, "full")
        mode = "full"
    elif why is None:
        changed = "(select person_id from stitch.changes where seq = ?)"
        events = f"(select * from stitch.events where person_id in {changed}) as changed_events"
        with transaction(con):
            if cohorts:  # the cohorts the changed persons were in
                keys = ", ".join(cohort[1])
                con.execute(
                    f"create or replace temp table _touched as select distinct {keys} from {cache} "
                    f"where person_id in {changed}",
                    [seq],
                ).fetchall()
            con.execute(f"delete from {cache} where person_id in {changed}", [seq]).fetchall()
            con.execute(f"insert into {cache} {over(sqls['persons'], events, path)}", [seq]).fetchall()
            if cohorts:  # ... and those they are in now: each recomputed from all its kept members
                con.execute(
                    f"insert into _touched select distinct {keys} from {cache} where person_id in {changed}", [seq]
                ).fetchall()
                on = " and ".join(f"k.{c} is not distinct from t.{c}" for c in cohort[1])
                con.execute(f"delete from {cohorts} k where exists (select 1 from _touched t where {on})").fetchall()
                members = f"(select * from {cache} k where exists (select 1 from _touched t where {on}))"
                con.execute(f"insert into {cohorts} {sqls['cohorts'].replace('{cache}', members)}").fetchall()
            set_state(con, cache, fp, seq, "incremental")
        mode = "incremental"
    mart = sqls["mart"].replace("{cache}", cache).replace("{cohorts}", cohorts or "")
    con.execute(f"create or replace table {table} as {mart}").fetchall()
    return {"mode": mode, "why": why or "up to date"}


def cohorts_of(con: duckdb.DuckDBPyConnection, whose: dict[str, str]) -> dict[str, str]:
    """Before an erasure deletes kept per-person rows: for each mart of COHORT_PARTS whose kept part
    exists, the cohorts the erased rows are in, as a temp table ({mart: temp table}); `whose` gives,
    per kept per-person table, the SQL condition of the erased person's rows."""
    out = {}
    for k, (table, (_, keys)) in enumerate(sorted(COHORT_PARTS.items())):
        cache = cache_table(table)
        if cache not in whose or not exists(con, cohort_table(table)):
            continue
        out[table] = f"_erased_cohorts_{k}"
        con.execute(
            f"create or replace temp table {out[table]} as select distinct {', '.join(keys)} from {cache} "
            f"where {whose[cache]}"
        ).fetchall()
    return out


def after_erasure(con: duckdb.DuckDBPyConnection, touched: dict[str, str], models: dict) -> None:
    """After an erasure deleted kept per-person rows: the cohorts they were in (`touched`, from
    cohorts_of) recomputed from their remaining members, and every mart of PERSON_PARTS built again
    from its kept parts (plan variables already set; `models`: table → models.catalog model), so no
    aggregate still counts the person, neither now nor after the next incremental run (which
    recomputes only the cohorts of persons whose events changed)."""
    for table, (_, keys) in COHORT_PARTS.items():
        if table not in touched:
            continue
        sqls = parts(table, models[table].sql, str(models[table].path))
        cohorts, cache = cohort_table(table), cache_table(table)
        on = " and ".join(f"k.{c} is not distinct from t.{c}" for c in keys)
        con.execute(f"delete from {cohorts} k where exists (select 1 from {touched[table]} t where {on})").fetchall()
        members = f"(select * from {cache} k where exists (select 1 from {touched[table]} t where {on}))"
        con.execute(f"insert into {cohorts} {sqls['cohorts'].replace('{cache}', members)}").fetchall()
        con.execute(f"drop table {touched[table]}").fetchall()
    for table in PERSON_PARTS:
        cache = cache_table(table)
        cohorts = cohort_table(table) if table in COHORT_PARTS else None
        if not exists(con, cache) or (cohorts and not exists(con, cohorts)) or not exists(con, table):
            continue
        mart = parts(table, models[table].sql, str(models[table].path))["mart"]
        con.execute(
            f"create or replace table {table} as {mart.replace('{cache}', cache).replace('{cohorts}', cohorts or '')}"
        ).fetchall()

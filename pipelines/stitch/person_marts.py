"""SQL marts whose heavy part is per person: kept per person, re-aggregated whole.

marts.funnel_conversion's grain is global (funnel × step: counts and medians over every person),
but everything up to its `person_steps` CTE depends on one person's events only (attempts, steps,
exclusions, the best attempt). That CTE's rows are kept in `marts.funnel_conversion__persons`:
a run recomputes them for the persons in stitch.changes (all of each one's events: the best
attempt is over a person's whole history), and the mart is then aggregated from the kept rows,
which are one row per person and step reached, not one per event. The model's SQL is not
rewritten: the same file is cut at that CTE, so a full build and an incremental one run the same
text. Rebuilt whole under the same rules as staging.sessions (pipelines/stitch/state.py `follow`).

The other SQL marts are recomputed whole on every run, each for a reason of its grain:
marts.retention's window (first to last bucket of all events) moves with each new day, so every
cohort gains a period and every unbounded count can change; marts.activation_cohorts and
marts.customer_value read only a few event names (signup, activation; purchase, renewal, churn)
and hold a global "observed until" (window_complete, months at risk) that every day moves. The SQL marts
together (the funnel's kept part included) are about a quarter of a day's CPU on a 30-day history
(benchmarks/incremental.py prints their share): retention, the largest of them, is the next
candidate for a kept part (one row per person, event and day gives it the same rows).
"""

from __future__ import annotations

import re

import duckdb

from ..warehouse import transaction
from .state import follow, over, set_state

# mart → its per-person CTE
PERSON_PARTS = {"marts.funnel_conversion": "person_steps"}


def cache_table(table: str) -> str:
    return f"{table}__persons"


def split(sql: str, cte: str, path: str) -> tuple[str, str]:
    """(the SQL of the per-person CTE's rows; the mart's SQL reading them from `{cache}`)."""
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
    person = sql[: end + 1] + f"\nselect * from {cte}"
    final = sql[: m.start()] + f"{cte} as (select * from {{cache}})" + sql[end + 1 :]
    return person, final


def build(con: duckdb.DuckDBPyConnection, table: str, sql: str, path: str, plan_dir=None, full_refresh=False) -> dict:
    """Materialize `table` (a mart of PERSON_PARTS) through its per-person cache; {mode, why}."""
    cache = cache_table(table)
    person_sql, final_sql = split(sql, PERSON_PARTS[table], path)
    why, seq, fp = follow(con, cache, plan_dir, full_refresh)
    mode = "unchanged"
    if why:
        with transaction(con):  # the table and its state together
            con.execute(f"create or replace table {cache} as {person_sql}").fetchall()
            set_state(con, cache, fp, seq, "full")
        mode = "full"
    elif why is None:
        changed = "(select person_id from stitch.changes where seq = ?)"
        events = f"(select * from stitch.events where person_id in {changed}) as changed_events"
        with transaction(con):
            con.execute(f"delete from {cache} where person_id in {changed}", [seq]).fetchall()
            con.execute(f"insert into {cache} {over(person_sql, events, path)}", [seq]).fetchall()
            set_state(con, cache, fp, seq, "incremental")
        mode = "incremental"
    con.execute(f"create or replace table {table} as {final_sql.format(cache=cache)}").fetchall()
    return {"mode": mode, "why": why or "up to date"}

"""Which partitions a per-partition quality result was computed from (quality.partition_state).

A daily run adds one partition to a history of many. The quality results that depend on each
partition's rows alone (the plan's property gates on ingest.events, the per-day metrics of the
payloads and the lag) are kept per partition and recomputed only for the partitions whose rows
changed since. A partition's rows are told apart as the stitch tells them
(pipelines/stitch/incremental.py `changed_partitions`): its row count and its earliest and latest
load time. The ingest replaces a partition whole and stamps every row with the time of that load,
and `forget` deletes rows, so a re-ingested, new or erased partition shows as changed, whoever wrote
it. A kept result also carries the fingerprint of what computed it (the rules' or the metrics' SQL,
which holds the plan's part of it): another fingerprint recomputes every partition.

Light on purpose (no pandas): the gates and the metrics read it when they run.
"""

from __future__ import annotations

import hashlib

TABLE = "quality.partition_state"
DDL = f"""
create schema if not exists quality;
create table if not exists {TABLE} (
    layer varchar not null, partition_date date, signature varchar not null, fingerprint varchar not null,
    counts bigint[]
);
"""


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()


def signature_sql(table: str, stamp: str, where: str = "") -> str:
    """partition_date, its signature (rows, earliest and latest `stamp`) of every partition of `table`
    (of those where SQL `where` holds)."""
    return (
        f"select partition_date, concat_ws('|', count(*), min({stamp}), max({stamp})) as signature "
        f"from {table} {f'where {where} ' if where else ''}group by all"
    )


def stale(con, layer: str, current: str, fp: str, full_refresh: bool = False) -> list:
    """The partitions of `current` (a select of partition_date, signature) whose kept results are
    missing, of another signature or of another fingerprint; the kept rows of every partition that is
    no longer current (or of another fingerprint) are dropped. Every partition on `full_refresh`."""
    con.execute(DDL)
    con.execute(f"create or replace temp table _ps_now as {current}").fetchall()
    if full_refresh:
        con.execute(f"delete from {TABLE} where layer = ?", [layer]).fetchall()
    con.execute(
        f"""delete from {TABLE} k where layer = ? and (fingerprint <> ? or not exists (
            select 1 from _ps_now n where n.partition_date is not distinct from k.partition_date
            and n.signature = k.signature))""",
        [layer, fp],
    ).fetchall()
    rows = con.execute(
        f"""select partition_date from _ps_now n where not exists (
            select 1 from {TABLE} k where k.layer = ? and k.partition_date is not distinct from n.partition_date)
            order by 1""",
        [layer],
    ).fetchall()
    return [r[0] for r in rows]


def keep(con, layer: str, fp: str, partitions: list, counts: dict | None = None) -> None:
    """Record `partitions` as computed now (signatures from the `stale` call before; with their counts)."""
    if not partitions:
        return
    con.register("_ps_done", _frame(partitions, counts))
    try:
        con.execute(
            f"""insert into {TABLE}
            select ?, n.partition_date, n.signature, ?, d.counts from _ps_now n
            join _ps_done d on d.partition_date is not distinct from n.partition_date""",
            [layer, fp],
        ).fetchall()
    finally:
        con.unregister("_ps_done")


def record(con, layer: str, fp: str, table: str, partitions: list, counts: list[int]) -> None:
    """Keep `counts` as `layer`'s result of each of `partitions` of `table` (partition_date,
    loaded_at), under fingerprint `fp` and the partitions' signatures as they stand, replacing any
    kept before (`keep`): a result known without computing it (see
    quality_checks.rules.loaded_partitions_pass). A partition without rows has no signature and
    nothing is kept of it."""
    if not partitions:
        return
    con.execute(DDL)
    mine = where(partitions)
    con.execute(f"create or replace temp table _ps_now as {signature_sql(table, 'loaded_at', mine)}").fetchall()
    con.execute(f"delete from {TABLE} where layer = ? and {mine}", [layer]).fetchall()
    keep(con, layer, fp, partitions, {p: counts for p in partitions})


def _frame(partitions: list, counts: dict | None):
    import pyarrow as pa

    return pa.table(
        {
            "partition_date": pa.array(partitions, pa.date32()),
            "counts": pa.array([(counts or {}).get(p) for p in partitions], pa.list_(pa.int64())),
        }
    )


def where(partitions: list, column: str = "partition_date") -> str:
    """SQL: `column` is one of `partitions` (NULL, the rows outside any date folder, included).
    Consecutive days are one range: DuckDB plans an IN list of many dates as a join on every row
    (10M events, the daily metrics of 30 partitions: 11.9 CPU-s with the list, 9.1 with a range)."""
    import datetime as dt

    from tracking_plan.validate import lit

    days = sorted({dt.date.fromisoformat(str(d)) for d in partitions if d is not None})
    runs: list[list[dt.date]] = []
    for d in days:
        if runs and d - runs[-1][1] == dt.timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    day = lambda d: lit(d.isoformat()) + "::date"
    parts = [f"{column} = {day(a)}" if a == b else f"{column} between {day(a)} and {day(b)}" for a, b in runs]
    if any(d is None for d in partitions):
        parts.append(f"{column} is null")
    return "(" + (" or ".join(parts) or "false") + ")"


def slices(con, partitions: list, rows: int) -> list[list]:
    """`partitions` (of the last `stale` call) in consecutive slices of at most `rows` rows each (a
    partition with more is a slice of its own), as few as that allows and about equal
    (`partition_runs`), by the row counts their signatures begin with (signature_sql)."""
    counts = dict(con.execute("select partition_date, split_part(signature, '|', 1)::bigint from _ps_now").fetchall())
    return [[partitions[i] for i in run] for run in partition_runs([counts.get(p, 0) for p in partitions], rows)]


def partition_runs(sizes: list[int], cap: int) -> list[list[int]]:
    """Partitions (their sizes, in order) as runs of consecutive indexes: as few runs as filling each
    up to `cap` gives (a partition larger than `cap` alone), with the largest run as small as that
    many runs allow, so the runs are about equal. The ingest's groups (bytes of landing files) and
    the gates' slices (rows: `slices`).

    Filled greedily instead, the last run held what was left: the ingest at 1M events (30 days, 3
    groups) had 121k rows in its last group against 440k in the others. DuckDB writes an insert of
    at least a row group (122,880 rows) straight into the database file, but a smaller one into the
    write-ahead log, which the next checkpoint writes again: 99 MB of WAL and 0.3 CPU-s of checkpoint
    for that group alone."""

    def runs(limit: int) -> list[list[int]]:
        out: list[list[int]] = []
        size = 0
        for i, n in enumerate(sizes):
            if out and size + n <= limit:
                out[-1].append(i)
                size += n
            else:
                out.append([i])
                size = n
        return out

    count = len(runs(cap))
    lo, hi = 1, max(cap, 1)
    while lo < hi:  # the smallest limit that still needs no more runs
        mid = (lo + hi) // 2
        if len(runs(mid)) <= count:
            hi = mid
        else:
            lo = mid + 1
    return runs(lo)

"""The per-person parts of the Python marts, kept between runs: only the changed persons' rows recomputed.

A Python mart reads some aggregates whose every row belongs to one person and depends on that
person's events alone (`models.marts.aggregates.EventSource.per_person`: matching inputs, active
person-days, latest values; marts.channel_attribution's conversion paths). Over a 30-day history
most of their cost is the persons the day did not touch. `PersonParts` keeps each such part in a
table `<mart>__<name>_<hash of its key>` (its key: the query's text, or what the rows are computed
from) and brings it up to the stitch the way pipelines/stitch/person_marts.py does its SQL marts'
parts: the rows of the persons in stitch.changes are deleted and computed again from their events
(all of each one's events: a person merged into another appears there with every event), the rest
are kept. A part is rebuilt whole under the same rules as staging.sessions (`state.follow`: no
earlier state, --full-refresh, a changed plan or stitching code, a stitch rebuilt whole, a missed
stitch run). The mart then reads every kept row, in the order the query asks (its ORDER BY), so a
full build and an incremental one hand it the same rows (tests/test_incremental.py).

A part the mart's build did not use this time (a plan edit changed its query, so its key) is
dropped with its state when the build ends (`finish`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import duckdb
import pandas as pd
import pyarrow as pa

from ..warehouse import transaction
from .state import follow, set_state

# a kept part's rows: given the SQL selecting the persons to compute (None: every person), a query's
# text or a frame; each row with its person_id
Rows = Callable[[str | None], "str | pd.DataFrame"]


def _order(sql: str) -> tuple[str, str | None]:
    """(the query without its final ORDER BY, that ORDER BY's columns without table qualifiers)."""
    m = re.search(r"\norder by ([\w\", .]+?)\s*$", sql)
    if not m:
        return sql, None
    return sql[: m.start()], re.sub(r"\b\w+\.", "", m.group(1))


class PersonParts:
    """The kept per-person parts of one Python mart (`mart`, e.g. marts.initiative_roi) in `con`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, mart: str, plan_dir=None, full_refresh: bool = False):
        self.con, self.mart, self.plan_dir, self.full_refresh = con, mart, plan_dir, full_refresh
        self.modes: dict[str, str] = {}  # table -> full / incremental / unchanged, this build
        self._read: dict[str, pd.DataFrame] = {}  # a query asked again in the same build (two KPIs' one event)

    def table(self, name: str, key: str) -> str:
        return f"{self.mart}__{name}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def query(self, name: str, sql_of: Callable[[str | None], str]) -> pd.DataFrame:
        """The rows of a per-person query, `sql_of(persons)` (None: over every person), in its order."""
        sql, order = _order(sql_of(None))
        table = self.keep(name, sql, lambda persons: _order(sql_of(persons))[0] if persons else sql)
        if table not in self._read:
            self._read[table] = self.read(table, order)
        return self._read[table].copy()  # (callers convert columns in place)

    def read(self, table: str, order: str | None = None) -> pd.DataFrame:
        """Every kept row, in `order`: the frame DuckDB's `.df()` gives, through Arrow (a kept part is
        read whole: 1M events, 200k person-days 0.06 -> 0.02 CPU-s), its dates as `.df()` types them."""
        t = self.con.sql(f"select * from {table}" + (f" order by {order}" if order else "")).to_arrow_table()
        df = t.to_pandas(date_as_object=False)
        for f in t.schema:
            if pa.types.is_date(f.type):
                df[f.name] = df[f.name].astype("datetime64[us]")
        return df

    def keep(self, name: str, key: str, rows: Rows) -> str:
        """Bring the part `name` (its rows `rows`, identified by `key`) up to the stitch; its table."""
        con, table = self.con, self.table(name, key)
        if table in self.modes:  # brought up to date earlier in this build
            return table
        why, seq, fp = follow(con, table, self.plan_dir, self.full_refresh, extra=key)
        if why:
            with transaction(con):  # the part and its state together
                self._write(f"create or replace table {table} as", rows(None))
                set_state(con, table, fp, seq, "full")
            self.modes[table] = "full"
        elif why is None:
            changed = f"select person_id from stitch.changes where seq = {int(seq)}"
            with transaction(con):
                con.execute(f"delete from {table} where person_id in ({changed})").fetchall()
                self._write(f"insert into {table}", rows(changed))
                set_state(con, table, fp, seq, "incremental")
            self.modes[table] = "incremental"
        else:
            self.modes[table] = "unchanged"
        return table

    def _write(self, head: str, got) -> None:
        if isinstance(got, str):
            self.con.execute(f"{head} {got}").fetchall()
            return
        self.con.register("_person_part", got)
        try:
            self.con.execute(f"{head} select * from _person_part").fetchall()
        finally:
            self.con.unregister("_person_part")

    def finish(self) -> None:
        """Drop this mart's parts the build did not use (and their state): a changed query's old rows."""
        schema, name = self.mart.split(".")
        part = re.compile(rf"{re.escape(name)}__\w+_[0-9a-f]{{10}}")  # (the names `table` gives, no other)
        old = [
            f"{schema}.{t}"
            for (t,) in self.con.execute(
                "select table_name from duckdb_tables() where schema_name = ?", [schema]
            ).fetchall()
            if part.fullmatch(t) and f"{schema}.{t}" not in self.modes
        ]
        for t in old:
            with transaction(self.con):
                self.con.execute(f"drop table {t}")
                self.con.execute("delete from stitch.build_state where layer = ?", [t])

"""pipelines/warehouse.py: a checkpoint leaves row groups as they are (DuckDB's merging of adjacent row
groups is off on every connection the pipeline opens), and `compact_row_groups` merges them once more
than DELETED_LIMIT of the rows the tables store are deleted ones; part-filled row groups alone (what
every insert leaves) are never rewritten."""

from __future__ import annotations

import pytest

from pipelines.warehouse import DELETED_LIMIT, compact_row_groups, open_file, stored_rows

ROWS = 122_880  # rows per row group (DuckDB's storage default)


def _held(con, table: str) -> int:
    return con.execute(f"select count(distinct row_group_id) from pragma_storage_info('{table}')").fetchall()[0][0]


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "w.duckdb"
    con = open_file(path)
    con.execute("set threads = 1")  # (one writer: the row groups an insert leaves do not depend on scheduling)
    yield path, con
    con.close()


def _appends(con, n: int, rows: int) -> None:
    """`n` inserts of `rows` rows each into table t (each leaves a part-filled row group behind)."""
    con.execute("create table t (i bigint, s varchar)")
    for k in range(n):
        con.execute(f"insert into t select {k * rows} + range, 'row ' || range from range({rows})")


def test_a_checkpoint_merges_no_row_group(db):
    path, con = db
    _appends(con, 4, ROWS + 7_000)  # a full row group and a part-filled one each time
    assert _held(con, "t") == 8  # (DuckDB's merging would make 6 of them)
    con.execute("checkpoint")
    assert _held(con, "t") == 8
    con.close()
    con = open_file(path)  # (the close checkpoints too)
    assert _held(con, "t") == 8
    con.close()


def test_part_filled_row_groups_alone_are_kept(db):
    _, con = db
    _appends(con, 4, ROWS + 7_000)
    assert stored_rows(con) == (4 * (ROWS + 7_000),) * 2
    assert not compact_row_groups(con)
    assert _held(con, "t") == 8


def test_deleted_rows_past_the_limit_are_merged_away(db):
    _, con = db
    con.execute(f"create table t as select range as i from range({4 * ROWS})")
    con.execute("create table other as select range as i from range(1000)")
    con.execute("checkpoint")
    con.execute("delete from t where i % 4 <> 0")  # three rows in four, in every row group
    stored, live = stored_rows(con)
    assert (stored, live) == (4 * ROWS + 1000, ROWS + 1000)
    assert stored - live > DELETED_LIMIT * stored
    assert compact_row_groups(con)
    assert _held(con, "t") == 1
    assert stored_rows(con) == (ROWS + 1000, ROWS + 1000)
    assert con.execute("select count(*), min(i % 4), max(i % 4) from t").fetchall() == [(ROWS, 0, 0)]
    # the merging is off again afterwards
    assert con.execute("select current_setting('max_vacuum_tasks')").fetchall()[0][0] == 0


def test_within_the_limit_nothing_is_rewritten(db):
    _, con = db
    con.execute(f"create table t as select range as i from range({4 * ROWS})")
    con.execute("create table empty (i bigint)")  # (stores nothing)
    con.execute("checkpoint")
    con.execute("delete from t where i % 5 = 0")  # a fifth of the rows
    assert stored_rows(con) == (4 * ROWS, 4 * ROWS - len(range(0, 4 * ROWS, 5)))
    assert not compact_row_groups(con)
    con.execute("checkpoint")
    assert _held(con, "t") == 4
    assert stored_rows(con)[0] == 4 * ROWS  # (the deleted rows still stored)

"""pipelines/warehouse.py: a checkpoint leaves row groups as they are (DuckDB's merging of adjacent row
groups is off on every connection the pipeline opens), and `compact_row_groups` merges them once the
tables hold more than FRAGMENTATION_LIMIT more row groups than their live rows need: part-filled row
groups left by appends, or rows deleted in place."""

from __future__ import annotations

import pytest

from pipelines.warehouse import FRAGMENTATION_LIMIT, ROW_GROUP_ROWS, compact_row_groups, open_file, row_groups


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
    _appends(con, 4, ROW_GROUP_ROWS + 7_000)  # a full row group and a part-filled one each time
    before = _held(con, "t")
    assert before == 8
    con.execute("checkpoint")
    assert _held(con, "t") == before
    con.close()
    con = open_file(path)  # (the close checkpoints too)
    assert _held(con, "t") == before
    con.close()


def test_appends_past_the_limit_are_merged(db):
    _, con = db
    _appends(con, 4, ROW_GROUP_ROWS + 7_000)
    held, needed = row_groups(con)
    assert (held, needed) == (8, 5)  # 4 x 129,880 rows fit in 5 row groups
    assert held - needed > FRAGMENTATION_LIMIT * needed
    assert compact_row_groups(con)
    after = _held(con, "t")
    assert needed <= after < held
    assert con.execute("select count(*), sum(i) from t").fetchall() == [(4 * 129_880, sum(range(4 * 129_880)))]
    # the merging is off again afterwards
    assert con.execute("select current_setting('max_vacuum_tasks')").fetchall()[0][0] == 0


def test_deleted_rows_count_as_row_groups_to_merge(db):
    _, con = db
    con.execute(f"create table t as select range as i from range({4 * ROW_GROUP_ROWS})")
    con.execute("checkpoint")
    assert row_groups(con) == (4, 4)
    assert not compact_row_groups(con)  # full row groups: nothing to merge
    con.execute("delete from t where i % 4 <> 0")  # three rows in four, in every row group
    assert row_groups(con) == (4, 1)
    assert compact_row_groups(con)
    assert _held(con, "t") == 1
    assert con.execute("select count(*), min(i % 4), max(i % 4) from t").fetchall() == [(ROW_GROUP_ROWS, 0, 0)]


def test_within_the_limit_nothing_is_rewritten(db):
    _, con = db
    con.execute("create table t (i bigint, s varchar)")
    for rows in (5 * ROW_GROUP_ROWS + 100, 4 * ROW_GROUP_ROWS + 100):  # each ends in a part-filled row group
        con.execute(f"insert into t select range, 'x' from range({rows})")
    con.execute("create table empty (i bigint)")  # (an empty table needs no row group and holds none)
    assert row_groups(con) == (11, 10)  # one more than the rows need: within the limit
    assert not compact_row_groups(con)
    assert _held(con, "t") == 11

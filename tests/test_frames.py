"""models.frames.frame against DuckDB's own `.df()` of the same query: equal frames (values, dtypes,
column order and names), over every type the marts and the stitch read, with and without NULLs."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from models.frames import frame

ROWS = """select * from (values
 (1, 1::integer, 2::bigint, 1.5::double, 1.5::float, 'a', true, date '2024-01-02',
  timestamp '2024-01-02 03:04:05.123456', 1.25::decimal(10, 2), 17::hugeint, [1, 2], ['x', null], {'a': 1},
  '{"x": 1}'::json, interval 3 day, 5::ubigint, 7::smallint, timestamptz '2024-01-02 03:04:05+00', 'x'::blob,
  '0d1e80fa-7e23-4665-849b-9e4483b5b461'::uuid, 'é ✓ \\n'),
 (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, '')
) t(k, i, b, d, f, s, bo, dt, ts, dec, h, l, ls, st, j, iv, ub, sm, tz, bl, u, s2)"""


@pytest.mark.parametrize(
    "sql",
    [
        ROWS,
        f"select * from ({ROWS}) where k = 1",  # no NULLs: plain numpy dtypes from .df()
        f"select * from ({ROWS}) where k = 3",  # no rows
        f"select s, s2, k from ({ROWS}) order by k",  # text only but one column
        "select 'a' as x, 1 as x, 'b' as x",  # a repeated name
        "select i::varchar as s from range(100000) t(i)",  # more than one Arrow batch
        f"select k, i, b, d, f, s, bo, dt, ts, dec, h, sm, tz, s2 from ({ROWS})",  # scalars: the Arrow path
        f"select k, i, b, d, f, s, bo, dt, ts, dec, h, sm, tz, s2 from ({ROWS}) where k = 1",
        f"select k, s, s2 from ({ROWS}) where k = 3",  # no rows, through Arrow
    ],
)
def test_frame_is_what_df_gives(sql):
    con = duckdb.connect()
    pd.testing.assert_frame_equal(frame(con, sql), con.execute(sql).df(), check_exact=True)


def test_parameters():
    con = duckdb.connect()
    got = frame(con, "select ?::varchar as a, ?::bigint as b", ["x", 2])
    pd.testing.assert_frame_equal(got, con.execute("select ?::varchar as a, ?::bigint as b", ["x", 2]).df())


def test_a_connection_without_relations_gets_its_own_df():
    """The Spark engine's SparkConnection has execute(...).df() only (pipelines/spark/python_marts.py)."""

    class Only:
        def __init__(self):
            self.con = duckdb.connect()

        def execute(self, sql, params=None):
            return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    sql = "select 'a' as s, ?::bigint as n"
    pd.testing.assert_frame_equal(frame(Only(), sql, [3]), duckdb.connect().execute(sql, [3]).df())

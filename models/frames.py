"""A query's result as a pandas DataFrame, its text columns by way of Arrow.

DuckDB's `.df()` makes a Python `str` of every VARCHAR value, which pandas 3 then copies into its
Arrow-backed string column: 1.2M identity links (four text columns) took 1.4 CPU-s that way, and
0.3 through an Arrow table, whose strings pandas keeps as they are. `frame` fetches the result once
as Arrow, hands its VARCHAR columns to pandas from there, and every other column through DuckDB's own
`.df()` of the same Arrow table, so the frame is what `.df()` gives, column for column and dtype for
dtype (nullable integers, booleans, dates as datetime64, decimals as floats...; tests/test_frames.py
holds the two equal over every type the marts read)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads with the first frame, not with this module
    import pandas as pd


# the other column types `.df()` converts the same from the Arrow table as from the result itself
# (a UUID would come back as text, a list or a struct is not checked: such a result takes `.df()`)
_SCALARS = re.compile(
    r"BOOLEAN|U?(TINY|SMALL|BIG)?INT(EGER)?|HUGEINT|FLOAT|DOUBLE|DATE|TIMESTAMP( WITH TIME ZONE)?|DECIMAL\(\d+,\d+\)"
)


def frame(con, sql: str, params: list | dict | None = None) -> pd.DataFrame:
    """`con.execute(sql, params).df()` of a query, its text columns converted through Arrow."""
    import pandas as pd

    if not hasattr(con, "sql"):  # a connection without DuckDB's relations (the Spark engine's): its own .df()
        return (con.execute(sql, params) if params is not None else con.execute(sql)).df()
    rel = con.sql(sql, params=params) if params is not None else con.sql(sql)
    names, types = rel.columns, [str(t) for t in rel.types]
    text = [i for i, t in enumerate(types) if t == "VARCHAR"]
    plain = all(t == "VARCHAR" or _SCALARS.fullmatch(t) for t in types) and len(set(names)) == len(names)
    if not text or not plain:
        return rel.df()
    table = rel.to_arrow_table().rename_columns([f"c{i}" for i in range(len(names))])
    parts = [table.select(text).to_pandas()]
    if not table.num_rows:  # (.df() types an empty text column as object)
        parts[0] = parts[0].astype(object)
    others = sorted(set(range(len(names))) - set(text))
    if others:  # (scanned by DuckDB in place: the frame its `.df()` makes of them)
        parts.append(con.from_arrow(table.select(others)).df())
    out = pd.concat(parts, axis=1)[[f"c{i}" for i in range(len(names))]] if others else parts[0]
    out.columns = names
    return out

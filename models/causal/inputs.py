"""What the estimators of ``models.stats`` accept from an analyst's frame, checked in one place.

A misspelt column, a text outcome or a treatment coded 0/1/2 is refused in one line that names the
function, the argument and what was found, rather than a pandas KeyError, numpy's "could not convert
string to float", or, for 0/1/2, an estimate computed as if 2 were a dose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHOWN = 8  # columns or values a message lists


class ColumnNotFound(KeyError, ValueError):
    """A named column that is not in the frame (a KeyError, as pandas raises, and a ValueError, as
    every other refusal of the estimators is)."""

    def __str__(self) -> str:  # (KeyError's own quotes its message)
        return str(self.args[0])


def _plain(v):
    """A value as Python writes it (numpy 2 writes a scalar as np.int64(2))."""
    return v.item() if isinstance(v, np.generic) else v


def listed(values) -> str:
    """Values (or column names) as a message shows them: the first SHOWN, then how many in all."""
    values = [_plain(v) for v in values]
    more = f", ... ({len(values)} in all)" if len(values) > SHOWN else ""
    return ", ".join(repr(v) for v in values[:SHOWN]) + more


def require_columns(df: pd.DataFrame, fn: str, **columns: str | list[str] | None) -> None:
    """Each argument's column (or list of columns) is in ``df``; None is an argument not given."""
    for arg, named in columns.items():
        for col in [] if named is None else named if isinstance(named, list) else [named]:
            if col not in df.columns:
                raise ColumnNotFound(
                    f"{fn}: {arg}={col!r} is not a column of the frame (its columns: {listed(df.columns)})"
                )


def numeric(s: pd.Series, fn: str, arg: str) -> np.ndarray:
    """``s`` as floats, or ValueError naming the first value that is no number (NaN stays NaN)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(float, na_value=np.nan)
    parsed = pd.to_numeric(s, errors="coerce")
    bad = s[parsed.isna() & s.notna()]
    if len(bad):
        raise ValueError(f"{fn}: {arg}={s.name!r} must be numeric; found {_plain(bad.iloc[0])!r}")
    return parsed.to_numpy(float, na_value=np.nan)


def indicator(s: pd.Series, fn: str, arg: str) -> np.ndarray:
    """``s`` (0/1 or boolean, no missing value) as integers 0 and 1, or ValueError naming what else it holds."""
    values = numeric(s, fn, arg)
    other = pd.unique(s[~np.isin(values, (0.0, 1.0))])
    if len(other):
        raise ValueError(f"{fn}: {arg}={s.name!r} must be 0/1 or boolean; found {listed(other)}")
    return values.astype(int)

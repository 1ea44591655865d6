"""One formatter per column type, for every table trackplan shows (report, review).

A column's type is decided once, from its name (what the mart says the column is), never from one
cell's value: `roi` is a percentage in every row, `npv` is money in every row, `signups` is a count
in every row. A cell with no value says why where the row knows it (``not evaluable: …``), else an
en dash; never ``<NA>``, ``nan`` or a made-up grade.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime

# The order matters: the first pattern that matches a column's name decides its type.
_RULES: list[tuple[str, str]] = [
    (r"(^|_)irr($|_)", "irr"),
    (r"(^|_)p_value($|_)|^srm_p", "p_value"),
    (r"(^|_)(hours)($|_)", "hours"),
    (r"(^|_)(months|days)($|_)", "duration"),
    (r"(^|_)ratio($|_)", "number"),  # clv_cac_ratio: a multiple, not money
    (
        (
            r"(^|_)(rate|share|churn|prob|roi|lift_rel|rel_change|coverage|power|retention|pct|percent|"
            r"conversion_rate|overall_conversion|step_conversion|confidence|margin)($|_)|^roi|^prob_"
        ),
        "percent",
    ),
    (
        (
            r"(^|_)(npv|cost|costs|clv|cac|revenue|arpu|price|amount|mrr|ltv|value_to_date|value_per_conversion|"
            r"value|budget|spend)($|_)"
        ),
        "currency",
    ),
    (
        (
            r"(^|_)(n|count|persons|signups|activated|retained|cohort_size|size|lines|loaded|quarantined|duplicates|"
            r"sessions|events|exposures|conversions|entered|analysed|population|rank|users|customers|orders|"
            r"suppressed|consent_dropped|files|rows|anomalies|observed|renewals|churned)($|_)"
        ),
        "count",
    ),
]
CAP_IRR = 10.0  # an IRR above 1,000% a year says "the costs are negligible", not a rate anyone plans with


def column_kind(name: str) -> str:
    """count | currency | percent | irr | p_value | hours | duration | number | text | date | bool."""
    n = name.lower()
    for pattern, kind in _RULES:
        if re.search(pattern, n):
            if kind == "percent" and re.search(r"(^|_)per(_|$)", n):
                continue  # "conversions_per_month" is a count, not a rate
            return kind
    if n.endswith(("_at", "_date", "_day", "_week", "_start", "_end")) or n in (
        "day",
        "date",
        "week",
        "start",
        "as_of",
    ):
        return "date"
    return "number"


def missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return True
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return False


@dataclass(frozen=True)
class ColumnFormat:
    """How every cell of one column is written: one kind and one number of decimals."""

    kind: str
    decimals: int = 0
    unit: str | None = None  # shown once, in the header (e.g. "npv (USD)")

    def header(self, name: str) -> str:
        suffix = {"currency": self.unit, "hours": "h", "duration": None}.get(self.kind)
        return f"{name} ({suffix})" if suffix else name

    def __call__(self, v) -> str:
        if missing(v):
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "no"
        k = self.kind
        if k == "date" or isinstance(v, datetime | date):
            return _date(v)
        if not isinstance(v, int | float) or isinstance(v, bool):
            if hasattr(v, "item"):  # numpy scalar
                return self(v.item())
            return str(v)
        if isinstance(v, float) and math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if k == "irr":
            if v > CAP_IRR:
                return f"> {CAP_IRR:,.0%}"
            return _minus(f"{v:,.{self.decimals}%}")
        if k == "percent":
            return _minus(f"{v:,.{self.decimals}%}")
        if k == "p_value":
            return "< 0.001" if v < 0.001 else f"{v:.3f}"
        return _minus(f"{v:,.{self.decimals}f}")


def _minus(s: str) -> str:
    return s.replace("-", "−", 1) if s.startswith("-") else s


def _date(v) -> str:
    if isinstance(v, datetime):  # pd.Timestamp is a datetime
        midnight = (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0)
        return v.strftime("%Y-%m-%d") if midnight else v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)[:16]


def _decimals(kind: str, values: list[float]) -> int:
    """Decimals for the whole column: enough that its typical value keeps about three significant
    digits, and whole numbers stay whole."""
    finite = [
        abs(float(x))
        for x in values
        if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))
    ]
    if not finite:
        return 0
    integral = all(float(x).is_integer() for x in finite)
    scale = sorted(finite)[len(finite) // 2] or max(finite)  # the median's magnitude
    if kind in ("percent", "irr"):
        return 0 if scale * 100 >= 100 else 1
    if kind == "currency":
        return 0 if scale >= 100 or integral else 2
    if kind == "count":
        return 0 if integral or scale >= 100 else 1
    if kind in ("hours", "duration"):
        return 0 if scale >= 100 else 1
    if integral:
        return 0
    if scale >= 100:
        return 0
    if scale >= 1:
        return 2
    return 3 if scale >= 0.01 else 4


def column_format(name: str, values, currency: str | None = None, kind: str | None = None) -> ColumnFormat:
    kind = kind or column_kind(name)
    vals = list(values)
    if kind not in ("date",) and vals and all(isinstance(v, str) or missing(v) for v in vals):
        kind = "text"
    if kind == "number" and vals and all(isinstance(v, bool) or missing(v) for v in vals):
        kind = "bool"
    return ColumnFormat(kind, _decimals(kind, vals), currency if kind == "currency" else None)


def format_frame(
    df, columns: list[str] | None = None, currency: str | None = None, kinds: dict[str, str] | None = None
) -> tuple[list[str], list[str], list[list[str]]]:
    """(headers, kinds, rows of text) for a DataFrame, each column with its one formatter."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    fmts = {c: column_format(c, df[c].tolist(), currency, (kinds or {}).get(c)) for c in cols}
    rows = [[fmts[c](v) for c, v in zip(cols, row, strict=True)] for row in df[cols].itertuples(index=False, name=None)]
    return [fmts[c].header(c) for c in cols], [fmts[c].kind for c in cols], rows

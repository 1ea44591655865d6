r"""The SQL models in another warehouse's dialect: sqlglot's transpiler plus the rewrite rules it lacks.

The models are DuckDB SQL (one source of truth). sqlglot carries most of it over, but passes DuckDB
functions it does not know through unchanged and keeps some DuckDB semantics it should not. The
rules below run on the DuckDB syntax tree before the target's SQL is generated:

- `getvariable('name')` → the variable's value inlined as a literal (NULL when unset), as DuckDB
  would read it from `set variable` (models.catalog.plan_variables gives the plan's values);
- `ts ± to_minutes(n)` / `to_days` / `to_hours` → TIMESTAMPADD(unit, n, ts); `to_seconds(n)` →
  TIMESTAMPADD(MICROSECOND, round(n × 10⁶), ts) (DuckDB takes fractional seconds to the microsecond);
- `date_diff(unit, a, b)` on timestamps counts unit *boundaries* in DuckDB (as Snowflake's DATEDIFF
  does) but elapsed whole units in Spark and BigQuery: both sides are truncated to the unit first,
  which makes the two the same everywhere;
- decimal literals (`3600.0`) → DOUBLE: DuckDB divides to a DOUBLE, Spark would keep a DECIMAL
  (rounded to its scale, and a different column type);
- `row_number()` is a BIGINT in DuckDB, an INT in Spark: cast on Spark;
- `regexp_full_match(s, 'pattern')` (RE2) → `s RLIKE '^(?:pattern)\z'` on Spark (Java regex: anchored
  to the very end, and `\s` spelled as RE2's class, since Java's also matches a vertical tab);
- `list[i]` is 1-based in DuckDB: TRY_ELEMENT_AT(list, i) on Spark, list[SAFE_ORDINAL(i)] on
  BigQuery, list[i - 1] on Snowflake (all three NULL out of range, as DuckDB);
- `arg_min(v, t)` / `arg_max` skip a row whose `v` is null in DuckDB, Spark's MIN_BY / MAX_BY keep
  the value at the extreme `t`, null or not: on Spark `MIN_BY(v, t) FILTER (WHERE v IS NOT NULL)`
  (ANDed with the aggregate's own FILTER); DuckDB's `arg_min_null` / `arg_max_null` keep it, as
  MIN_BY / MAX_BY do: written as those, unfiltered (both skip a null `t`). On Snowflake and BigQuery
  `arg_min_null` stays untranslated (refused).

Whatever is still a function sqlglot does not know after that (it would pass through verbatim) is
refused: `UntranslatableSQL` names the model and the function, and `trackplan sql` prints that line.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

DIALECTS = ("snowflake", "bigquery", "spark")

_INTERVAL_UNITS = {"to_days": "DAY", "to_hours": "HOUR", "to_minutes": "MINUTE"}
_TRUNCATED_UNITS = {"SECOND", "MILLISECOND", "MICROSECOND", "MINUTE", "HOUR"}

# functions the rules themselves write that sqlglot does not model (it keeps them verbatim)
NATIVE = {"spark": {"TRY_ELEMENT_AT", "MIN_BY", "MAX_BY"}, "snowflake": set(), "bigquery": set()}

# functions sqlglot models but the target has no equivalent of, with why (checked after generation)
MISSING = {
    "bigquery": {"MEDIAN": "BigQuery has no exact median aggregate (only APPROX_QUANTILES)"},
    "snowflake": {},
    "spark": {},
}


class UntranslatableSQL(ValueError):
    """A model uses something the target dialect cannot express: one line, naming model and function."""

    def __init__(self, table: str, dialect: str, function: str, why: str = ""):
        self.table, self.dialect, self.function = table, dialect, function
        tail = f": {why}" if why else ""
        super().__init__(f"{table}: {function}() has no {dialect} translation{tail}")


def _literal(value) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _fname(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def _interval_of(node: exp.Expression) -> tuple[str, exp.Expression] | None:
    """(DuckDB function name, its argument) if `node` is to_days/to_hours/to_minutes/to_seconds(n)."""
    if isinstance(node, exp.ToDays):
        return "to_days", node.this
    if isinstance(node, exp.Anonymous) and len(node.expressions) == 1:
        name = str(node.this).lower()
        if name in (*_INTERVAL_UNITS, "to_seconds"):
            return name, node.expressions[0]
    return None


def _interval_add(node: exp.Expression) -> exp.Expression | None:
    """`ts + to_X(n)` (either order) or `ts - to_X(n)` as a TIMESTAMPADD; None if not that shape."""
    if not isinstance(node, (exp.Add, exp.Sub)):
        return None
    left, right = node.this, node.expression
    if isinstance(node, exp.Add) and _interval_of(left) and not _interval_of(right):
        left, right = right, left
    found = _interval_of(right)
    if found is None:
        return None
    name, amount = found[0], found[1].copy()
    if name == "to_seconds":
        unit = "MICROSECOND"
        micros = exp.Mul(this=exp.paren(amount), expression=exp.Literal.number(1000000))
        amount = exp.cast(exp.func("round", micros), "bigint")
    else:
        unit = _INTERVAL_UNITS[name]
    if isinstance(node, exp.Sub):
        amount = exp.Neg(this=exp.paren(amount))
    return exp.TimestampAdd(this=left.copy(), expression=amount, unit=exp.var(unit))


def _is_date(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.this in (exp.DataType.Type.DATE,)


def _java_regex(pattern: str) -> str:
    """An RE2 pattern as Java's regex reads it the same: `\\s` is [\\t\\n\\f\\r ] (Java adds \\x0B)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(r"[\t\n\f\r ]" if pattern[i + 1] == "s" else pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


_NULL_KEEPING = {"arg_min_null": "MIN_BY", "arg_max_null": "MAX_BY"}


def _spark_arg_by(node: exp.Expression) -> exp.Expression | None:
    """DuckDB's arg_min/arg_max (a null value skipped) and arg_min_null/arg_max_null (kept) as Spark's
    MIN_BY/MAX_BY, which keep it; None if `node` is neither. The result is written as an unmodelled
    call (listed in NATIVE) so that a second pass of the rules leaves it alone."""
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in _NULL_KEEPING and len(node.expressions) == 2:
        name = _NULL_KEEPING[str(node.this).lower()]
        return exp.Anonymous(this=name, expressions=[e.copy() for e in node.expressions])
    agg, cond = node, None
    if isinstance(node, exp.Filter) and isinstance(node.this, (exp.ArgMin, exp.ArgMax)):
        agg, cond = node.this, node.expression.this
    if not isinstance(agg, (exp.ArgMin, exp.ArgMax)) or agg.args.get("count") is not None:
        return None
    if isinstance(node.parent, exp.Window):  # no FILTER on a window aggregate: not rewritten (refused)
        return None
    value, order = agg.this, agg.expression
    not_null = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
    cond = not_null if cond is None else exp.and_(exp.paren(cond.copy()), not_null)
    name = "MIN_BY" if isinstance(agg, exp.ArgMin) else "MAX_BY"
    call = exp.Anonymous(this=name, expressions=[value.copy(), order.copy()])
    return exp.Filter(this=call, expression=exp.Where(this=cond))


def rewrite(tree: exp.Expression, dialect: str, variables: dict | None = None) -> exp.Expression:
    """The DuckDB tree `tree` with the rules above applied for `dialect` (a new tree)."""
    variables = variables or {}

    def rule(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "getvariable":
            arg = node.expressions[0] if node.expressions else None
            name = arg.name if isinstance(arg, exp.Literal) else None
            return _literal(variables.get(name))
        added = _interval_add(node)
        if added is not None:
            return added
        if dialect == "spark":
            by = _spark_arg_by(node)
            if by is not None:
                return by
        if isinstance(node, exp.DateDiff):
            unit = node.unit.name.upper() if node.unit else "DAY"
            if unit in _TRUNCATED_UNITS:
                a, b = node.this, node.expression
                done = isinstance(a, exp.TimestampTrunc) and isinstance(b, exp.TimestampTrunc)
                if not done and not _is_date(a) and not _is_date(b):
                    node = node.copy()
                    node.set("this", exp.TimestampTrunc(this=a.copy(), unit=exp.var(unit)))
                    node.set("expression", exp.TimestampTrunc(this=b.copy(), unit=exp.var(unit)))
                    return node
        decimal = isinstance(node, exp.Literal) and node.is_number and ("." in node.this or "e" in node.this.lower())
        if decimal and not (isinstance(node.parent, exp.Cast) and node.parent.to.this == exp.DataType.Type.DOUBLE):
            return exp.cast(node.copy(), "double")
        # Spark's row_number() is an INT, DuckDB's a BIGINT
        row_number = isinstance(node, exp.Window) and isinstance(node.this, exp.RowNumber)
        if dialect == "spark" and row_number and not isinstance(node.parent, exp.Cast):
            return exp.cast(node.copy(), "bigint")
        if dialect == "spark" and isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
            full = "^(?:" + _java_regex(node.expression.this) + r")\z"
            return exp.RegexpLike(this=node.this.copy(), expression=exp.Literal.string(full))
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            arr, index = node.this.copy(), node.expressions[0].copy()
            if dialect == "spark":
                return exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[arr, index])
            if dialect == "bigquery":
                return exp.Bracket(this=arr, expressions=[exp.func("SAFE_ORDINAL", index)], offset=0)
            if dialect == "snowflake":
                return exp.Bracket(
                    this=arr, expressions=[exp.Sub(this=exp.paren(index), expression=exp.Literal.number(1))], offset=0
                )
        return node

    # the getvariable() inside a cast is replaced first, then the enclosing nodes (transform is top-down,
    # so a second pass sees the Add whose operand was rewritten)
    out = tree.copy().transform(rule)
    return out.transform(rule)


def check(table: str, dialect: str, tree: exp.Expression) -> None:
    """Refuse (UntranslatableSQL) a function sqlglot would write verbatim or that `dialect` lacks."""
    for node in tree.find_all(exp.Func):
        if dialect == "spark" and isinstance(node, (exp.ArgMin, exp.ArgMax)):  # not rewritten (in a window)
            name = "arg_min" if isinstance(node, exp.ArgMin) else "arg_max"
            raise UntranslatableSQL(table, dialect, name, "Spark's MIN_BY/MAX_BY do not skip a null value here")
        found = _interval_of(node)
        if found is not None:  # not in `ts ± to_X(n)`: no portable interval value to write
            raise UntranslatableSQL(table, dialect, found[0], "only `timestamp ± interval` is translated")
        if isinstance(node, exp.Anonymous):
            name = str(node.this)
            if name.upper() not in NATIVE.get(dialect, set()):
                raise UntranslatableSQL(
                    table, dialect, name.lower(), "a DuckDB function sqlglot passes through unchanged"
                )
    generated = tree.sql(dialect=dialect)
    try:
        reparsed = sqlglot.parse(generated, read=dialect)
    except sqlglot.errors.ParseError as exc:  # sqlglot wrote something its own target parser rejects
        raise UntranslatableSQL(table, dialect, "?", str(exc).splitlines()[0]) from None
    for stmt in reparsed:
        for node in stmt.find_all(exp.Func):
            name = str(node.this).upper() if isinstance(node, exp.Anonymous) else None
            if (
                name is not None
                and name not in NATIVE.get(dialect, set())
                and name not in _ROUNDTRIP_OK.get(dialect, set())
            ):
                raise UntranslatableSQL(table, dialect, name.lower(), "not a function of the target")
    for name, why in MISSING.get(dialect, {}).items():
        if f"{name}(" in generated.upper():
            raise UntranslatableSQL(table, dialect, name.lower(), why)


# functions sqlglot writes for the target and does not model when reading that target back
_ROUNDTRIP_OK: dict[str, set[str]] = {"spark": set(), "snowflake": set(), "bigquery": set()}


def transpile(sql: str, dialect: str, table: str = "?", variables: dict | None = None, pretty: bool = True) -> str:
    """The DuckDB model `sql` in `dialect`, rewritten and checked; raises UntranslatableSQL."""
    if dialect not in DIALECTS and sqlglot.Dialect.get(dialect) is None:
        raise ValueError(f"unknown dialect {dialect!r}; e.g. {', '.join(DIALECTS)}")
    out = []
    for tree in sqlglot.parse(sql, read="duckdb"):
        tree = rewrite(tree, dialect, variables)
        check(table, dialect, tree)
        out.append(tree.sql(dialect=dialect, pretty=pretty, unsupported_level=sqlglot.ErrorLevel.RAISE))
    return ";\n".join(out)


def function_names(sql: str, dialect: str) -> set[str]:
    """Every function name a `dialect` statement calls, lowercased, as the target will read it."""
    names = set()
    for stmt in sqlglot.parse(sql, read=dialect):
        for node in stmt.find_all(exp.Func):
            if isinstance(node, exp.Anonymous):
                names.add(str(node.this).lower())
    return names

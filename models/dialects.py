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

- JSON on Spark (quality_checks/metrics.py's SQL): the layers keep JSON as text, so `x::json` → `x`;
  `json_valid(x)` → `GET_JSON_OBJECT(x, '$') IS NOT NULL` (Jackson accepts an object with a key twice,
  as DuckDB does; it also accepts trailing text after the first value, which DuckDB does not);
  `FROM t, json_each(x) j` → `LATERAL VARIANT_EXPLODE(TRY_PARSE_JSON(x)) AS j` (same `key`, `value`;
  an object or array yields its members as DuckDB does, a scalar none; an object with a key twice is
  refused by Spark's variant and yields no pairs, where DuckDB yields both: the validator quarantines
  such a payload as `duplicate_key`); on such a `j.value` only `json_type(j.value)` (DuckDB's type
  name from SCHEMA_OF_VARIANT: an integer as BIGINT, any other number as DOUBLE, since DuckDB's
  UBIGINT/HUGEINT are numbers too) and `j.value ->> '$'` (its text: a string unquoted, a
  non-integral number through DOUBLE as DuckDB writes it, `1.0` not `1`) are translated, anything else
  fails in Spark's analyzer (a variant is not text);
- `quantile_cont(x, q)` → `PERCENTILE(x, q)` on Spark (exact, interpolated as DuckDB; sqlglot's
  PERCENTILE_CONT(x, q) is not a Spark call);
- `epoch(ts)` (seconds as a DOUBLE, to the microsecond) → `UNIX_MICROS(ts) / 1e6` on Spark (sqlglot's
  UNIX_TIMESTAMP drops the fraction).

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
NATIVE = {
    "spark": {
        "TRY_ELEMENT_AT",
        "MIN_BY",
        "MAX_BY",
        "VARIANT_EXPLODE",
        "TRY_PARSE_JSON",
        "SCHEMA_OF_VARIANT",
        "TRY_VARIANT_GET",
        "UNIX_MICROS",
        "PERCENTILE",
    },
    "snowflake": set(),
    "bigquery": set(),
}

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
        what = f"{function}() has no" if function else "no"  # (no function: a construct, named in `why`)
        super().__init__(f"{table}: {what} {dialect} translation{tail}")


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


def _json_each_aliases(tree: exp.Expression) -> set[str]:
    """The aliases of the `json_each(x)` tables in `tree` (their `value` is a variant on Spark)."""
    return {
        t.alias
        for t in tree.find_all(exp.Table)
        if isinstance(t.this, exp.Anonymous) and str(t.this.this).lower() == "json_each" and t.alias
    }


def _variant_of(node: exp.Expression, aliases: set[str]) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == "value" and node.table in aliases


def _spark_json(node: exp.Expression, aliases: set[str]) -> exp.Expression | None:
    """The Spark JSON rules of the module doc; None if `node` is none of their shapes."""
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.JSON:
        return node.this.copy()
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "json_valid" and len(node.expressions) == 1:
        arg = node.expressions[0].copy()
        return sqlglot.parse_one("get_json_object(x, '$') is not null", read="spark").transform(
            lambda n: arg.copy() if isinstance(n, exp.Column) and n.name == "x" else n
        )
    call = node.this if isinstance(node, exp.Table) else None
    if isinstance(call, exp.Anonymous) and str(call.this).lower() == "json_each" and len(call.expressions) == 1:
        parsed = exp.Anonymous(this="TRY_PARSE_JSON", expressions=[call.expressions[0].copy()])
        explode = exp.Anonymous(this="VARIANT_EXPLODE", expressions=[parsed])
        return exp.Lateral(this=explode, alias=node.args["alias"].copy() if node.args.get("alias") else None)
    if isinstance(node, exp.JSONType) and _variant_of(node.this, aliases):
        schema = exp.Anonymous(this="SCHEMA_OF_VARIANT", expressions=[node.this.copy()])
        return sqlglot.parse_one(
            "case when s = 'VOID' then 'NULL' when s = 'STRING' then 'VARCHAR' when s = 'BOOLEAN' then 'BOOLEAN' "
            "when s = 'BIGINT' then 'BIGINT' when s like 'ARRAY%' then 'ARRAY' when s like 'OBJECT%' then 'OBJECT' "
            "else 'DOUBLE' end",
            read="spark",
        ).transform(lambda n: schema.copy() if isinstance(n, exp.Column) and n.name == "s" else n)
    if isinstance(node, exp.JSONExtractScalar) and _variant_of(node.this, aliases):
        path = node.expression
        if not (isinstance(path, exp.JSONPath) and len(path.expressions) == 1):
            return None  # only the value itself ($): refused by Spark's analyzer
        value = node.this.copy()
        schema = exp.Anonymous(this="SCHEMA_OF_VARIANT", expressions=[value.copy()])
        number = exp.Or(
            this=exp.Like(this=schema.copy(), expression=exp.Literal.string("DECIMAL%")),
            expression=exp.EQ(this=schema, expression=exp.Literal.string("DOUBLE")),
        )
        double = exp.Anonymous(
            this="TRY_VARIANT_GET", expressions=[value.copy(), exp.Literal.string("$"), exp.Literal.string("double")]
        )
        as_double = exp.cast(double, "string")  # TRY_: Spark may evaluate a CASE branch it does not take
        return exp.Case(ifs=[exp.If(this=number, true=as_double)], default=exp.cast(value, "string"))
    if (
        isinstance(node, exp.PercentileCont)
        and node.expression is not None
        and not isinstance(node.parent, exp.WithinGroup)
    ):
        # DuckDB's quantile_cont(x, q); sqlglot writes PERCENTILE_CONT(x, q), which Spark refuses
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this.copy(), node.expression.copy()])
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this.copy()])
        return exp.Div(this=micros, expression=exp.cast(exp.Literal.number(1000000), "double"))
    return None


def _one_json_path(node: exp.Expression) -> exp.Expression | None:
    """``json_extract_string(doc, [p1, p2, ...])[i]`` (DuckDB parses the document once for every field
    read so: models.marts.aggregates.narrow_events_sql) as the one path's extraction."""
    if not (isinstance(node, exp.Bracket) and len(node.expressions) == 1):
        return None
    call, index = node.this, node.expressions[0]
    paths = call.expression if isinstance(call, exp.JSONExtractScalar) else None
    if not isinstance(paths, exp.Array) or not (isinstance(index, exp.Literal) and index.is_int):
        return None
    i = int(index.this)  # (sqlglot reads DuckDB's 1-based index as 0-based)
    if not 0 <= i < len(paths.expressions):
        return None
    # the path parsed as DuckDB's parser parses a single one (Snowflake writes it without the '$.')
    path = sqlglot.Dialect.get_or_raise("duckdb").to_json_path(paths.expressions[i].copy())
    return exp.JSONExtractScalar(this=call.this.copy(), expression=path)


def rewrite(tree: exp.Expression, dialect: str, variables: dict | None = None) -> exp.Expression:
    """The DuckDB tree `tree` with the rules above applied for `dialect` (a new tree)."""
    variables = variables or {}
    json_each = _json_each_aliases(tree) if dialect == "spark" else set()

    def rule(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
            # DuckDB's planner hint (`as [not] materialized`): sqlglot writes it verbatim, Spark,
            # BigQuery and Snowflake refuse the syntax, and each plans its CTEs itself. (Changed in
            # place: the tree is a copy, and a new node's children would not be rewritten.)
            node.set("materialized", None)
            return node
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
            json = _spark_json(node, json_each)
            if json is not None:
                return json
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
        one = _one_json_path(node)
        if one is not None:
            return one
        bracket = isinstance(node, exp.Bracket) and len(node.expressions) == 1 and not node.meta.get("translated")
        if bracket and dialect in ("spark", "bigquery", "snowflake"):
            # DuckDB's list[k] counts from 1 and is NULL out of range. sqlglot keeps a constant k
            # counted from 0 (it shifts literals as it reads DuckDB) and any other k as written: k is
            # made DuckDB's position again, then written in each target's NULL-safe form. (The rules
            # run twice: a Bracket written here is marked, not shifted a second time.)
            arr, index = node.this.copy(), node.expressions[0].copy()
            if index.is_int:  # (a literal, or a negated one)
                index = exp.Literal.number(int(index.to_py()) + 1)
            if dialect == "spark":
                return exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[arr, index])
            if dialect == "bigquery":  # arr[SAFE_ORDINAL(k)]
                out = exp.Bracket(this=arr, expressions=[index], offset=1, safe=True)
                out.meta["translated"] = True
                return out
            # Snowflake: GET(arr, k - 1), counted from 0, NULL out of range
            return exp.GetExtract(this=arr, expression=exp.Sub(this=exp.paren(index), expression=exp.Literal.number(1)))
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
    try:
        # (RAISE: what sqlglot cannot write for the target is refused in one line, never logged as a
        # warning on stderr and written anyway: LATERAL for T-SQL, a recursive CTE for Hive...)
        generated = tree.sql(dialect=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise UntranslatableSQL(table, dialect, "", " ".join(str(exc).split("\n")[0].split())) from None
    try:
        reparsed = sqlglot.parse(generated, read=dialect)
    except sqlglot.errors.ParseError as exc:  # sqlglot wrote something its own target parser rejects
        why = " ".join(str(exc).splitlines()[0].split())
        raise UntranslatableSQL(table, dialect, "", f"sqlglot's {dialect} output does not parse back ({why})") from None
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


def require_dialect(dialect: str, unchecked: bool = False) -> None:
    """Refuse (ValueError) an unknown dialect, and unless `unchecked` one whose translation is not
    checked: only DIALECTS have the rules and the list of functions each target lacks (MISSING) that
    make a refusal certain. sqlglot writes more (Oracle, Postgres, ...), but it writes DuckDB's ARG_MIN
    or GENERATE_SERIES for them unchanged, where `trackplan sql` promises to fail on what it cannot
    translate rather than print it. `unchecked` still refuses what sqlglot itself cannot write."""
    if dialect in DIALECTS:
        return
    if sqlglot.Dialect.get(dialect) is None:
        raise ValueError(f"unknown dialect {dialect!r}; e.g. {', '.join(DIALECTS)}")
    if not unchecked:
        raise ValueError(
            f"{dialect!r} is a dialect sqlglot writes but trackplan does not check (functions the target "
            f"lacks would pass through unnoticed; --unchecked prints it anyway); checked: {', '.join(DIALECTS)}"
        )


def transpile(
    sql: str,
    dialect: str,
    table: str = "?",
    variables: dict | None = None,
    pretty: bool = True,
    unchecked: bool = False,
) -> str:
    """The DuckDB model `sql` in `dialect`, rewritten and checked; raises UntranslatableSQL (and
    ValueError for a dialect outside DIALECTS unless `unchecked`: see require_dialect)."""
    require_dialect(dialect, unchecked)
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

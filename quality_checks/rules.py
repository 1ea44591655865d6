"""Row-level gates compiled from the plan and the models' YAML, evaluated in one SQL pass per table.

Kinds: not_null, enum, range, regex, grain_unique, referential_integrity. Each rule counts its
failing rows; it passes when the failing share is at most 1 - `mostly`. Regex rules test each
distinct value once, weighted by its row count (about 20x cheaper than a regex on every row);
patterns are searched, not fully matched, as JSON Schema `pattern` is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracking_plan.validate import json_path, lit, loadable_event_names, validated_events

from .store import ERROR, CheckOutcome

KINDS = ("not_null", "enum", "range", "regex", "grain_unique", "referential_integrity")
SEGMENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
SEMVER = r"^\d+\.\d+\.\d+$"
SAMPLE_ROWS = 10


@dataclass
class Rule:
    name: str
    kind: str
    fails: str  # SQL boolean over the table's row: true when the row breaks the rule
    mostly: float = 1.0
    regex: tuple[str, str] | None = None  # (value expression, pattern) for regex rules
    where: str = "true"  # regex rules: rows the value expression applies to


PROP = re.compile(r"«([^»]+)»")


def _json(col: str, prop: str) -> str:
    """A placeholder for a top-level property: compile_sql parses each row's JSON once for all of them."""
    return f"«{prop}»"


def plan_rules(plan, mostly: float = 1.0) -> list[Rule]:
    """Rules for ingest.events from the plan: envelope contract and every property constraint.

    They are the validator's own rules restated over the loaded rows, so a line the validator accepts
    cannot fail them: the same events (`validated_events`: every track event, the first event of each
    other call type), the same event names (an alias call with no plan event is "Alias"), the same
    property values (a property named `a.b` is one key, not a path; identify/group traits are stored
    in `properties` as the validator reads them). PII rules are left out: the stored value is hashed,
    or stripped by consent, by design."""
    names = ", ".join(lit(n) for n in loadable_event_names(plan))
    out = [
        Rule("message_id not null", "not_null", "message_id is null", mostly),
        Rule("partition_date not null", "not_null", "partition_date is null", mostly),
        Rule("received_at not null", "not_null", "received_at is null", mostly),
        Rule("type in segment types", "enum", f"type not in ({', '.join(lit(t) for t in SEGMENT_TYPES)})", mostly),
        Rule("event_name in plan", "enum", f"event_name is null or event_name not in ({names})", mostly),
        Rule("plan_version is semver", "regex", "", mostly, regex=("plan_version", SEMVER)),
    ]
    for ev in validated_events(plan):
        this = f"event_name = {lit(ev.name)}"
        for key, p in ev.properties.items():
            v = _json("properties", key)
            label = f"{ev.name}.{key}"
            if p.required and not p.nullable and not p.pii:  # consent can strip PII to null by design
                out.append(Rule(f"{label} not null", "not_null", f"{this} and {v} is null", mostly))
            if p.enum and not p.pii:
                vals = ", ".join(lit(str(x).lower() if isinstance(x, bool) else str(x)) for x in p.enum)
                fails = f"{this} and {v} is not null and {v} not in ({vals})"
                nums = [x for x in p.enum if isinstance(x, int | float) and not isinstance(x, bool)]
                if nums:  # as the validator: 1.0 and 1e0 are the enum's 1
                    fails += f" and coalesce(try_cast({v} as double) not in ({', '.join(repr(float(x)) for x in nums)}), true)"
                out.append(Rule(f"{label} in enum", "enum", fails, mostly))
            if p.type in ("integer", "number") and (p.minimum is not None or p.maximum is not None) and not p.pii:
                num = f"try_cast({v} as double)"
                cond = " or ".join(
                    c
                    for c in (
                        f"{num} < {p.minimum}" if p.minimum is not None else "",
                        f"{num} > {p.maximum}" if p.maximum is not None else "",
                    )
                    if c
                )
                out.append(Rule(f"{label} in range", "range", f"{this} and ({cond})", mostly))
            if p.pattern and p.type == "string" and not p.pii:  # PII is stored hashed
                out.append(Rule(f"{label} matches pattern", "regex", "", mostly, regex=(v, p.pattern), where=this))
    return out


def table_rules(
    table: str,
    grain: list[str],
    not_null: list[str] = (),
    mostly: float = 1.0,
    references: tuple[str, str, str] | None = None,
) -> list[Rule]:
    """Grain-key uniqueness and not-null, plus referential integrity (column, other table, column)."""
    out = [Rule(f"{c} not null", "not_null", f"{c} is null", mostly) for c in dict.fromkeys([*grain, *not_null])]
    if grain:
        out.append(Rule(f"unique ({', '.join(grain)})", "grain_unique", "", mostly))
    if references:
        col, other, other_col = references
        out.append(
            Rule(
                f"{col} in {other}.{other_col}", "referential_integrity", f"{col} is not null and _ref_missing", mostly
            )
        )
    return out


def compile_sql(
    table: str, rules: list[Rule], grain: list[str] = (), references: tuple[str, str, str] | None = None
) -> str:
    """One SELECT that returns the row count and each rule's failing count."""
    ctes, cols, join = [], ["count(*) as _rows"], ""
    props = sorted({m for r in rules for m in PROP.findall(r.fails + (r.regex[0] if r.regex else ""))})
    if props:
        # one JSON parse per row for every property any rule reads (not one per rule)
        paths = ", ".join(lit(json_path(p)) for p in props)
        ctes.append(f"_t as (select *, json_extract_string(properties, [{paths}]) as _p from {table})")
        index = {p: i + 1 for i, p in enumerate(props)}
        sub = lambda x: PROP.sub(lambda m: f"_p[{index[m.group(1)]}]", x)
        rules = [
            Rule(r.name, r.kind, sub(r.fails), r.mostly, (sub(r.regex[0]), r.regex[1]) if r.regex else None, r.where)
            for r in rules
        ]
        table = "_t"
    if references:
        col, other, other_col = references
        ctes.append(f"_ref as (select distinct {other_col} as _k from {other})")
        join = f" left join _ref on _ref._k = t.{col}"
    for i, r in enumerate(rules):
        if r.kind == "grain_unique":
            key = grain[0] if len(grain) == 1 else f"[{', '.join(f'{g}::varchar' for g in grain)}]"
            cols.append(f"count(*) - count(distinct {key}) as r{i}")
        elif r.kind == "regex":
            expr, pattern = r.regex
            # each distinct value is matched once and carries its row count: no regex per row, no join
            ctes.append(
                f"_vals{i} as (select {expr} as v, count(*) as n from {table} where {r.where} "
                f"and {expr} is not null group by all)"
            )
            cols.append(
                f"(select coalesce(sum(n), 0) from _vals{i} where not regexp_matches(v, {lit(pattern)})) as r{i}"
            )
        else:
            cond = r.fails.replace("_ref_missing", "_ref._k is null")
            cols.append(f"count(*) filter (where {cond}) as r{i}")
    with_ = f"with {', '.join(ctes)} " if ctes else ""
    return f"{with_}select {', '.join(cols)} from {table} t{join}"


def evaluate(
    con,
    table: str,
    rules: list[Rule],
    grain: list[str] = (),
    references: tuple[str, str, str] | None = None,
    severity: str = ERROR,
) -> list[CheckOutcome]:
    """Run every rule in one pass; one outcome per kind present (check name = kind)."""
    if not rules:
        return []
    sql = compile_sql(table, rules, grain, references)
    row = con.execute(sql).fetchall()[0]
    n = row[0]
    per_rule = []
    for r, failing in zip(rules, row[1:]):
        share = failing / n if n else 0.0
        per_rule.append(
            {
                "rule": r.name,
                "failing": int(failing),
                "share": share,
                "mostly": r.mostly,
                "passed": share <= 1 - r.mostly + 1e-12,
            }
        )
    out = []
    for kind in KINDS:
        mine = [(r, pr) for r, pr in zip(rules, per_rule) if r.kind == kind]
        if not mine:
            continue
        failed = [(r, pr) for r, pr in mine if not pr["passed"]]
        worst = max((pr["share"] for _, pr in mine), default=0.0)
        meta = {
            "rows": n,
            "rules": len(mine),
            "failing_count": sum(pr["failing"] for _, pr in mine),
            "failing_share": worst,
            "threshold": min(r.mostly for r, _ in mine),
            "failed_rules": [pr for _, pr in failed] or [],
            "sql": sql,
        }
        if failed:
            meta["samples"] = _samples(con, table, failed[0][0], grain, references)
        out.append(
            CheckOutcome(
                check=kind,
                asset=table,
                passed=not failed,
                severity=severity,
                observed=worst,
                expected_low=0.0,
                expected_high=1 - min(r.mostly for r, _ in mine),
                metadata=meta,
            )
        )
    return out


def _samples(con, table: str, r: Rule, grain, references) -> list[dict]:
    """Up to SAMPLE_ROWS failing rows of one rule (a second, bounded query only when it failed)."""
    prop = lambda x: PROP.sub(lambda m: f"(properties ->> {lit(json_path(m.group(1)))})", x)
    r = Rule(r.name, r.kind, prop(r.fails), r.mostly, (prop(r.regex[0]), r.regex[1]) if r.regex else None, r.where)
    if r.kind == "grain_unique":
        key = ", ".join(grain)
        sql = f"select {key}, count(*) as n from {table} group by all having count(*) > 1 limit {SAMPLE_ROWS}"
    elif r.kind == "regex":
        expr, pattern = r.regex
        sql = (
            f"select * from {table} where {r.where} and {expr} is not null "
            f"and not regexp_matches({expr}, {lit(pattern)}) limit {SAMPLE_ROWS}"
        )
    elif r.kind == "referential_integrity":
        col, other, other_col = references
        sql = (
            f"select * from {table} where {col} is not null and {col} not in "
            f"(select {other_col} from {other} where {other_col} is not null) limit {SAMPLE_ROWS}"
        )
    else:
        sql = f"select * from {table} where {r.fails} limit {SAMPLE_ROWS}"
    df = con.execute(sql).df()
    return [{k: (None if _isna(v) else str(v)) for k, v in rec.items()} for rec in df.to_dict("records")]


def _isna(v) -> bool:
    import math

    return v is None or (isinstance(v, float) and math.isnan(v))

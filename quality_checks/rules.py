"""Row-level gates compiled from the plan and the models' YAML, evaluated in one SQL pass per table.

Kinds: not_null, enum, range, regex, grain_unique, referential_integrity. Each rule counts its
failing rows; it passes when the failing share is at most 1 - `mostly`. A rule on a column of the
table (plan_version is semver) tests each distinct value once, weighted by its row count; patterns
are searched, not fully matched, as JSON Schema `pattern` is.

The plan's rules on ingest.events are not restated here: they are the validator's own Checks
(tracking_plan.validate.Validator.event_checks), the same SQL conditions over the same property
columns, grouped into gate rules by kind. One definition per rule: a line the validator accepts
cannot fail them, and editing a rule changes both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.frames import frame
from tracking_plan.validate import (
    ENVELOPE_TYPES,
    Validator,
    hashed_keys,
    lit,
    loadable_event_names,
    property_columns,
    validated_events,
)

from .store import ERROR, CheckOutcome

KINDS = ("not_null", "enum", "range", "regex", "grain_unique", "referential_integrity")
SEMVER = r"^\d+\.\d+\.\d+$"
SAMPLE_ROWS = 10
# rows of ingest.events per statement of its property gates (partition_counts): measured at 10M events
# under the run's memory_limit of 1.6 GB, the gates of ingest.events took 14.5 CPU-s over every partition
# at once, 13.4 in slices of ~4M rows, 13.8 of 2.5M, 15.6 of 1.25M (each slice is a statement of its own)
SLICE_ROWS = 4_000_000
# the validator's property rules the gates carry: rule code -> (gate kind, the gate rule's name suffix).
# A non-nullable value given null (a `type` Check with null=True) is "not null"; JSON types, unexpected
# and duplicate keys are the validator's alone (the Pandera schema checks the columns' types).
GATED = {
    "required": ("not_null", "present"),
    "enum": ("enum", "in enum"),
    "minimum": ("range", "in range"),
    "maximum": ("range", "in range"),
    "min_length": ("range", "length in range"),
    "max_length": ("range", "length in range"),
    "pattern": ("regex", "matches pattern"),
    "format": ("regex", "matches format"),
}


@dataclass
class Rule:
    name: str
    kind: str
    fails: str  # SQL boolean over the table's row: true when the row breaks the rule
    mostly: float = 1.0
    where: str = "true"  # the rows the rule applies to (its plan event)
    # `fails` reads only these columns of the table: it is evaluated once per distinct value
    distinct: tuple[str, ...] = ()
    # the plan properties `fails` reads, with their column numbers (see validate.property_columns)
    props: dict[str, int] = field(default_factory=dict)
    # (column, SQL) `fails` reads, computed once per row of its event for all the event's rules: an
    # array's item bits (one parse of the array for every rule on its items, as the validator does)
    hoist: tuple[tuple[str, str], ...] = ()
    # a rule on plan properties: (event_name, type) of its plan event, which `where` states in SQL
    event: tuple[str, str] | None = None


def plan_rules(plan, mostly: float = 1.0) -> list[Rule]:
    """Rules for ingest.events from the plan: the envelope contract and every property constraint.

    The property rules are the validator's Checks of the same events (`validated_events`: every track
    event, the first event of each other call type), evaluated over the stored `properties` (which
    hold identify/group traits as the validator reads them) with the validator's own property
    columns. Each gate rule is the OR of one property's Checks of one kind. PII properties are left
    out, and the identifiers identity.yaml hashes on every call of a kind: the stored value is
    hashed, or stripped by consent, by design."""
    names = ", ".join(lit(n) for n in loadable_event_names(plan))
    out = [
        Rule("message_id not null", "not_null", "message_id is null", mostly),
        Rule("partition_date not null", "not_null", "partition_date is null", mostly),
        Rule("received_at not null", "not_null", "received_at is null", mostly),
        Rule(
            "type in segment types",
            "enum",
            f"type not in ({', '.join(lit(t) for t in ENVELOPE_TYPES)})",
            mostly,
            distinct=("type",),
        ),
        Rule(
            "event_name in plan",
            "enum",
            f"event_name is null or event_name not in ({names})",
            mostly,
            distinct=("event_name",),
        ),
        Rule(
            "plan_version is semver",
            "regex",
            f"plan_version is not null and not regexp_matches(plan_version, {lit(SEMVER)})",
            mostly,
            distinct=("plan_version",),
        ),
    ]
    validator = Validator(plan, verdicts_only=True)
    cols: dict[str, int] = {}
    for ev in validated_events(plan):
        for name in ev.properties:
            cols.setdefault(name, len(cols))
    for ev in validated_events(plan):
        this = f"event_name = {lit(ev.name)} and type = {lit(ev.type)}"  # (the SQL of `event`)
        base = "$.traits" if ev.type in ("identify", "group") else "$.properties"
        # the array item masks as columns of the event's rows (validate.Validator._event_pass does
        # the same): inlined, each of an array's item rules parsed the array again (3x the CPU)
        validator._hoist = []
        try:
            errors, _ = validator.event_checks(ev, cols)
            hoisted = tuple(validator._hoist)
        finally:
            validator._hoist = None
        # one gate rule per value and kind: the OR of the validator's Checks of that kind on that value
        groups: dict[tuple[str, str, str], list] = {}
        # the keys the ingest hashes on every call of its kind, pii or not in the event: stored as a hash
        stored_hashed = hashed_keys(plan, "properties", ev.type)
        for c in errors:
            if c.prop is None or ev.properties[c.prop].pii or c.prop in stored_hashed:
                continue
            kind, suffix = ("not_null", "not null") if c.rule == "type" and c.null else GATED.get(c.rule, (None, ""))
            if kind is not None:
                # a value's presence and its not being null are one rule ("not null"); bounds and
                # lengths, patterns and formats are rules of their own
                groups.setdefault((c.path, kind, "" if kind == "not_null" else suffix), []).append((suffix, c))
        for (path, kind, _), checks in groups.items():
            suffixes = {s for s, _ in checks}
            suffix = "not null" if "not null" in suffixes else suffixes.pop()
            fails = " or ".join(f"({c.fails})" for _, c in checks)
            prop = checks[0][1].prop  # (a gate rule is about one value of one property)
            label = f"{ev.name}.{path.removeprefix(base + '.')} {suffix}"
            hoist = tuple((n, e) for n, e in hoisted if re.search(rf"\b{n}\b", fails))
            out.append(
                Rule(
                    label,
                    kind,
                    fails,
                    mostly,
                    where=this,
                    props={prop: cols[prop]},
                    hoist=hoist,
                    event=(ev.name, ev.type),
                )
            )
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


def _source(table: str, rules: list[Rule], columns: str = "", rows: str | None = None) -> str:
    """The relation the rules read: the table itself, or (rules on plan properties) the rows of their
    event with the property columns they read, the payload parsed once per row for all of them.
    `rows` is the SELECT of those rows' payloads instead (see by_event_sql)."""
    props: dict[str, int] = {}
    hoist: dict[str, str] = {}
    for r in rules:
        props.update(r.props)
        hoist.update(r.hoist)
    if not props:
        return table
    where = " or ".join(dict.fromkeys(f"({r.where})" for r in rules))
    rows = rows or f"select {columns}properties as _props from {table} where {where}"
    # (only the columns the rules read: a property's JSON and the key list where a rule names them)
    reads = " ".join([*(r.fails for r in rules), *hoist.values()])
    source = property_columns(rows, props, reads)
    if hoist:
        source = f"select *, {', '.join(f'{e} as {n}' for n, e in hoist.items())} from ({source})"
    return f"({source})"


BY_EVENT = "_gate_rows"  # the temp table of by_event_sql


def _event_wheres(rules: list[Rule]) -> list[str]:
    """The plan events the property rules are about (their `where`), each once, in rule order."""
    return list(dict.fromkeys(r.where for r in rules if r.props))


def by_event_sql(table: str, rules: list[Rule], columns: str = "") -> str | None:
    """The SELECT of temp table BY_EVENT: the payload of every row a property rule reads, with its
    event's number `_ek`, ordered by it, as the validator's second pass orders its rows. Each event's
    rules then read only that event's row groups (zone maps on `_ek`) instead of filtering every row
    of `table` once per plan event (1M events: the gates of ingest.events ~35% less CPU). The events'
    `where`s are disjoint (one event name and type each: see plan_rules), so a row has one number.
    None without property rules.

    The number is joined on the rule's `event` (event_name, type), one hash lookup per row: a CASE
    of every event's `where` tested each row against up to all of them (1M events: this statement
    0.47 -> 0.28 CPU-s, the same rows)."""
    wheres = _event_wheres(rules)
    if not wheres:
        return None
    event = {r.where: r.event for r in rules if r.props}
    numbers = ", ".join(f"({lit(event[w][0])}, {lit(event[w][1])}, {k})" for k, w in enumerate(wheres))
    return (
        f"select _n._ek, {columns}properties from {table} "
        f"join (values {numbers}) _n(_name, _type, _ek) on event_name = _n._name and type = _n._type "
        "order by _n._ek"
    )


def compile_sql(
    table: str,
    rules: list[Rule],
    grain: list[str] = (),
    references: tuple[str, str, str] | None = None,
    by_event: str | None = None,
) -> str:
    """One SELECT that returns the row count and each rule's failing count.

    Rules on plan properties are counted per plan event, as the validator checks them: over that
    event's rows only, with only its properties parsed (once per row: validate.property_columns),
    which is ~3x cheaper than parsing every property the plan has on every row; each regex is then
    run on the event's rows, as the validator runs it (grouping distinct values first cost more than
    it saved). With
    `by_event` (a relation made by by_event_sql) those rows are read from it rather than from `table`."""
    ek = {w: k for k, w in enumerate(_event_wheres(rules))}
    ctes, cols, join = [], ["count(*) as _rows"], ""
    if references:
        col, other, other_col = references
        ctes.append(f"_ref as (select distinct {other_col} as _k from {other})")
        join = f" left join _ref on _ref._k = t.{col}"
    events: dict[str, list[tuple[int, Rule]]] = {}
    for i, r in enumerate(rules):
        if r.props:
            events.setdefault(r.where, []).append((i, r))
        elif r.kind == "grain_unique":
            cols.append(f"count(*) - count(distinct {_grain_key(grain)}) as r{i}")
        elif r.distinct:
            cols.append(f"(select coalesce(sum(n), 0) from _vals{i} where {r.fails}) as r{i}")
            ctes.append(
                f"_vals{i} as (select {', '.join(r.distinct)}, count(*) as n from {table} where {r.where} group by all)"
            )
        else:
            cond = r.fails.replace("_ref_missing", "_ref._k is null")
            cols.append(f"count(*) filter (where ({r.where}) and ({cond})) as r{i}")
    for k, (where, mine) in enumerate(events.items()):
        per_row = ", ".join(f"count(*) filter (where {r.fails}) as r{i}" for i, r in mine)
        rows = f"select properties as _props from {by_event} where _ek = {ek[where]}" if by_event else None
        ctes.append(f"_e{k} as (select {per_row} from {_source(table, [r for _, r in mine], rows=rows)})")
        cols.extend(f"(select r{i} from _e{k}) as r{i}" for i, _ in mine)
    with_ = f"with {', '.join(ctes)} " if ctes else ""
    return f"{with_}select {', '.join(cols)} from {table} t{join}"


def _fingerprint(table: str, rules: list[Rule]) -> str:
    """What a kept count of `rules` over `table` was computed by (quality_checks.partition_state)."""
    from .partition_state import digest

    return digest(table, *(f"{r.name}|{r.where}|{r.fails}|{r.hoist}|{sorted(r.props.items())}" for r in rules))


def property_layer(table: str, rules: list[Rule]) -> tuple[str, str, int]:
    """(layer, fingerprint, number of rules) of the kept counts of the plan's property rules among
    `rules` (those that read a payload: `Rule.props`) over `table`, as partition_counts keeps them."""
    mine = [r for r in rules if r.props]
    return _property_layer_name(table), _fingerprint(table, mine), len(mine)


def _property_layer_name(table: str) -> str:
    return f"gates {table} properties"


def loaded_partitions_pass(con, plan, partitions: list, table: str = "ingest.events", layer=None) -> None:
    """Record that the plan's property rules fail on no row of `partitions` of `table`, which the
    ingest has just loaded: the validator ran the very same Checks (plan_rules) on every row it
    loaded and loads none that fails one, so counting them again over those rows could only find
    what it found, nothing (tests/test_gates_agree.py holds the two equal on every message the
    validator accepts). Kept under the partitions' signatures as they stand and the rules'
    fingerprint, as if the gates had counted them: a later change of those rows (`forget`, another
    writer) or of the rules (a plan edit, another version of the code), or `--full-refresh`, has the
    gates count them again. `layer`: property_layer(table, plan_rules(plan)), when the caller keeps
    it. At 10M events the gates of ingest.events 13 -> 2-3 CPU-s in a full run."""
    from . import partition_state as ps

    name, fp, n = layer or property_layer(table, plan_rules(plan))
    if n:
        ps.record(con, name, fp, table, partitions, [0] * n)


def partition_counts(con, table: str, rules: list[Rule], full_refresh: bool = False) -> list[int]:
    """The failing count of each rule of `rules` (each about one row: not a grain or reference rule)
    over every row of `table` (ingest.events: partition_date, loaded_at), as the sum of per-partition
    counts kept in quality.partition_state: only the partitions whose rows changed since they were
    counted (a daily run: its day) are read (quality_checks/partition_state.py), and the plan's
    property rules not in the partitions the ingest has just loaded (`loaded_partitions_pass`).
    Equal to counting every row."""
    props = [r for r in rules if r.props]
    own = [r for r in rules if not r.props]
    got = iter(_layer_counts(con, table, props, _property_layer_name(table), full_refresh) if props else [])
    other = iter(_layer_counts(con, table, own, f"gates {table}", full_refresh) if own else [])
    return [next(got) if r.props else next(other) for r in rules]


def _layer_counts(con, table: str, rules: list[Rule], layer: str, full_refresh: bool) -> list[int]:
    """partition_counts of `rules`, kept as `layer`."""
    from . import partition_state as ps

    fp = _fingerprint(table, rules)
    todo = ps.stale(con, layer, ps.signature_sql(table, "loaded_at"), fp, full_refresh)
    ek = {w: k for k, w in enumerate(_event_wheres(rules))}
    events: dict[str, list[tuple[int, Rule]]] = {}
    # a rule on a few columns of few values (an event name, a plan version) is evaluated once per
    # partition and distinct value, all such rules over one grouping of the rows (10M events: these
    # three rules 1.15-1.19 -> 0.18 CPU-s; the same counts)
    by_value = [not r.props and bool(r.distinct) and r.where == "true" for r in rules]
    plain = [(i, r) for i, r in enumerate(rules) if not r.props and not by_value[i]]
    valued = [(i, r) for i, r in enumerate(rules) if by_value[i]]
    valued_cols = list(dict.fromkeys(c for _, r in valued for c in r.distinct))
    for i, r in enumerate(rules):
        if r.props:
            events.setdefault(r.where, []).append((i, r))
    got: dict = {}
    # the partitions in slices of about SLICE_ROWS rows: the payloads of a slice's rows are copied
    # (BY_EVENT) and sorted, which for every partition at once spilled beyond memory_limit at 10M events
    for part in ps.slices(con, todo, SLICE_ROWS):
        rows = f"(select * from {table} where {ps.where(part)})"
        prepare = by_event_sql(rows, rules, "partition_date, ") or "select null::date as partition_date limit 0"
        ctes, cols, joins = [], {}, []
        if plain:  # the rules on the table's own columns: one pass over the partitions' rows
            per_row = ", ".join(f"count(*) filter (where ({r.where}) and ({r.fails})) as r{i}" for i, r in plain)
            ctes.append(f"_r as (select partition_date, {per_row} from {rows} group by all)")
            cols.update({i: f"coalesce(_r.r{i}, 0)" for i, _ in plain})
            joins.append("left join _r on _r.partition_date is not distinct from p.partition_date")
        if valued:
            per_value = ", ".join(f"coalesce(sum(n) filter (where {r.fails}), 0)::bigint as r{i}" for i, r in valued)
            ctes.append(
                f"_v as (select partition_date, {per_value} from (select partition_date, {', '.join(valued_cols)}, "
                f"count(*) as n from {rows} group by all) group by all)"
            )
            cols.update({i: f"coalesce(_v.r{i}, 0)" for i, _ in valued})
            joins.append("left join _v on _v.partition_date is not distinct from p.partition_date")
        for k, (where, mine) in enumerate(events.items()):
            per_row = ", ".join(f"count(*) filter (where {r.fails}) as r{i}" for i, r in mine)
            src = f"select partition_date, properties as _props from {BY_EVENT} where _ek = {ek[where]}"
            ctes.append(
                f"_e{k} as (select partition_date, {per_row} from {_source(table, [r for _, r in mine], rows=src)} group by all)"
            )
            cols.update({i: f"coalesce(_e{k}.r{i}, 0)" for i, _ in mine})
            joins.append(f"left join _e{k} on _e{k}.partition_date is not distinct from p.partition_date")
        sql = (
            f"with {', '.join(ctes)} select p.partition_date, [{', '.join(cols[i] for i in range(len(rules)))}] "
            f"from (select distinct partition_date from {rows}) p {' '.join(joins)}"
        )
        con.execute(f"create or replace temp table {BY_EVENT} as {prepare}").fetchall()
        try:
            got.update({d: list(c) for d, c in con.execute(sql).fetchall()})
        finally:
            con.execute(f"drop table if exists {BY_EVENT}").fetchall()
    if todo:
        ps.keep(con, layer, fp, todo, {d: got.get(d, [0] * len(rules)) for d in todo})
    total = [0] * len(rules)
    for (counts,) in con.execute(f"select counts from {ps.TABLE} where layer = ?", [layer]).fetchall():
        total = [a + b for a, b in zip(total, counts, strict=True)]
    return total


def _grain_key(grain) -> str:
    """The grain as one SQL value: a row of its columns when it has several (distinct as the list of
    them as text would be, nulls included, at half the CPU: no text made of each value)."""
    return grain[0] if len(grain) == 1 else f"({', '.join(grain)})"


HASH = "hash"  # (the function grain_duplicates counts distinct values of first; a test swaps in a poor one)


def grain_duplicates(con, table: str, grain: list[str], full_refresh: bool = False) -> int:
    """count(*) - count(distinct grain) over every row of `table` (with partition_date and loaded_at),
    reading again only the partitions whose rows changed since a count that found none.

    With U the partitions counted before and unchanged since (quality.partition_state, as the
    per-row rules tell changed partitions) and C the others, duplicates(U + C) = duplicates(U) +
    duplicates(C) + |grain values of U that C holds too|. The partitions of a count are kept only
    when it found no duplicate, so duplicates(U) is 0 (a subset of a set without any) and this is
    that count exactly: C's own rows counted, and the rows of U whose grain value C holds (a
    daily run: 1M events, one day changed, 0.05 CPU-s instead of 0.16 for the distinct count of
    every row). After a count that found any, nothing is kept and the next one counts every row."""
    from . import partition_state as ps

    layer, key = f"grain {table}", _grain_key(grain)
    fp = ps.digest(table, key)
    todo = ps.stale(con, layer, ps.signature_sql(table, "loaded_at"), fp, full_refresh)
    if not todo:
        return 0  # the kept partitions are every partition, and they held no duplicate
    mine = ps.where(todo)
    # first over a 64-bit hash of the grain: equal values hash alike, so the hashes hold at least the
    # values' duplicates, and none among them means none among the values (10M events: 1.5-1.9 CPU-s
    # against 2.3-2.7 for the strings); any there (a duplicate, or a collision: ~3e-6 at 10M rows) is
    # counted again on the values themselves
    hashed = f"{HASH}({key})" if len(grain) > 1 else f"case when {key} is not null then {HASH}({key}) end"
    n = con.execute(f"select count(*) - count(distinct {hashed}) from {table} where {mine}").fetchall()[0][0]
    if n:
        n = con.execute(f"select count(*) - count(distinct {key}) from {table} where {mine}").fetchall()[0][0]
    clean = con.execute(f"select count(*) from {ps.TABLE} where layer = ?", [layer]).fetchall()[0][0]
    if clean:  # U holds no duplicate: its rows whose value C holds are the values both hold
        n += con.execute(
            f"select count(distinct {key}) from {table} where not coalesce({mine}, false) "
            f"and {key} in (select {key} from {table} where {mine})"
        ).fetchall()[0][0]
    if n:
        con.execute(f"delete from {ps.TABLE} where layer = ?", [layer]).fetchall()
    else:
        ps.keep(con, layer, fp, todo)
    return n


def evaluate(
    con,
    table: str,
    rules: list[Rule],
    grain: list[str] = (),
    references: tuple[str, str, str] | None = None,
    severity: str = ERROR,
    by_partition: bool = False,
    full_refresh: bool = False,
    grain_by_partition: bool = False,
    grain_of: str | None = None,
) -> list[CheckOutcome]:
    """Run every rule in one pass; one outcome per kind present (check name = kind). `by_partition`
    (a table with partition_date and loaded_at: ingest.events): the property rules' counts from
    `partition_counts`, the partitions counted before kept (unless `full_refresh`), and the grain's
    duplicates from `grain_duplicates`. `grain_by_partition`: the grain's alone (stitch.events: a
    merge rewrites person_id in place, which no partition's signature shows, but never message_id).
    `grain_of`: a table holding exactly the grain values of `table` (stitch.events, a view of every row
    of ingest.events): its duplicates, and their kept per-partition state, are that table's, so the
    same rows are not counted again under a second name."""
    if not rules:
        return []
    prepare = by_event_sql(table, rules)
    sql = compile_sql(table, rules, grain, references, by_event=BY_EVENT if prepare else None)
    # per partition: every rule about one row (a reference spans partitions: counted whole), and the grain's
    per_row = [by_partition and r.kind not in ("grain_unique", "referential_integrity") for r in rules]
    kept_grain = [(by_partition or grain_by_partition) and r.kind == "grain_unique" for r in rules]
    if any(per_row) or any(kept_grain):
        kept = iter(
            partition_counts(con, table, [r for r, k in zip(rules, per_row) if k], full_refresh) if any(per_row) else []
        )
        dups = iter([grain_duplicates(con, grain_of or table, grain, full_refresh)] if any(kept_grain) else [])
        rest = [r for r, k, g in zip(rules, per_row, kept_grain) if not (k or g)]
        head = iter(con.execute(compile_sql(table, rest, grain, references)).fetchall()[0])
        n = next(head)
        row = (n, *(next(kept) if k else next(dups) if g else next(head) for k, g in zip(per_row, kept_grain)))
        if prepare:  # (the metadata: what counts every row)
            sql = f"create temp table {BY_EVENT} as {prepare};\n{sql}"
    elif prepare:
        con.execute(f"create or replace temp table {BY_EVENT} as {prepare}").fetchall()
        try:
            row = con.execute(sql).fetchall()[0]
        finally:
            con.execute(f"drop table if exists {BY_EVENT}").fetchall()
        sql = f"create temp table {BY_EVENT} as {prepare};\n{sql}"  # (the metadata: both, to rerun it)
    else:
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


def failing_rows_sql(table: str, r: Rule, columns: str = "*") -> str:
    """SQL selecting `columns` of the rows of `table` that break rule `r` (not grain/reference rules)."""
    if not r.props:
        return f"select {columns} from {table} where ({r.where}) and ({r.fails})"
    return f"select {columns} from {_source(table, [r], columns + ', ')} where {r.fails}"


def _samples(con, table: str, r: Rule, grain, references) -> list[dict]:
    """Up to SAMPLE_ROWS failing rows of one rule (a second, bounded query only when it failed)."""
    if r.kind == "grain_unique":
        key = ", ".join(grain)
        sql = f"select {key}, count(*) as n from {table} group by all having count(*) > 1 limit {SAMPLE_ROWS}"
    elif r.kind == "referential_integrity":
        col, other, other_col = references
        sql = (
            f"select * from {table} where {col} is not null and {col} not in "
            f"(select {other_col} from {other} where {other_col} is not null) limit {SAMPLE_ROWS}"
        )
    else:  # the table's own columns of the failing rows, not the property columns
        names = ", ".join(f'"{d[0]}"' for d in con.execute(f"select * from {table} limit 0").description)
        sql = f"{failing_rows_sql(table, r, names)} limit {SAMPLE_ROWS}"
    df = frame(con, sql)
    return [{k: (None if _isna(v) else str(v)) for k, v in rec.items()} for rec in df.to_dict("records")]


def _isna(v) -> bool:
    import math

    return v is None or (isinstance(v, float) and math.isnan(v))

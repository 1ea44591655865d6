"""Where the ingest's CPU goes, and whether two code versions build the same warehouse.

`phases`: ingest a landing zone into a fresh warehouse in this process, each DuckDB statement timed
in CPU seconds of the whole process (DuckDB's threads included) and labelled by the phase it
belongs to: reading the files, pass 1 of the validator (the envelope), pass 2 (the plan's property
rules: sort, rules, update), the classification (duplicates, consent, erasure), the inserts into
ingest.events and ingest.quarantine, the commit. Files are read on this thread, not the reader
thread the ingest overlaps them on, so each second lands in one phase.

`floor`: what DuckDB charges for work every ingest of these events does, whatever the code around
it: writing ingest.events' rows, and the context's serialization, second parse and json validation.

`compare`: build a warehouse from the same landing with two checkouts (`trackplan run` as a fresh
process with PYTHONPATH set to each, or the ingest alone with `--ingest-only`) and compare every
table present in either: the same rows, as a multiset, after leaving out the columns that record
when or how long something ran (and, of quality.check_results' metadata, the SQL text and timings).
Exits 1 on any difference, naming the table and a few differing rows.

    python benchmarks/ingest_cost.py phases LANDING [--days N] [--profile out.pstats] [--explain PHASE] [--set NAME=VALUE]
    python benchmarks/ingest_cost.py floor LANDING [--day YYYY-MM-DD] [--repeat N]
    python benchmarks/ingest_cost.py compare LANDING --a MAIN_CHECKOUT --b . [--ingest-only] [--workdir DIR]
    python benchmarks/ingest_cost.py tables A.duckdb B.duckdb      # compare two existing warehouses
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (phase, a piece of the statement's text that marks it), first match wins
PHASES = [
    ("classify: messageIds seen", "_seen"),
    ("pass 2: sort by event", "__by_event as"),
    ("pass 2: property rules", "__rules as"),
    ("pass 2: update", "update _group"),
    ("pass 1: envelope", "temp table _group as"),
    ("classify: buckets", "temp table _classified"),
    ("classify: exceptions", "temp table _exceptions"),
    ("classify: erasure register", "_suppressed"),
    ("insert ingest.events", "insert into ingest.events"),
    ("insert ingest.quarantine", "insert into ingest.quarantine"),
    ("replace partitions (delete)", "delete from ingest."),
    ("commit", "commit"),
]

# columns that record when, how long or in which run something happened: never equal across two runs
VOLATILE = {
    "loaded_at",
    "started_at",
    "finished_at",
    "seconds",
    "recorded_at",
    "quarantined_at",
    "run_at",
    "run_id",
    "built_at",
    "added_at",
    "requested_at",
    "fingerprint",
}
# keys of quality.check_results.metadata that hold the query text, a timing or a path, not a result
VOLATILE_META = ("sql", "seconds", "elapsed", "duration", "data_docs", "data_docs_offline")


def _text(sql) -> str:
    """The SQL text of a statement given as text or as a parsed duckdb.Statement (the validator parses
    its statements once and runs them parsed)."""
    return sql if isinstance(sql, str) else sql.query


def _phase(sql) -> str:
    low = _text(sql).lower()
    return next((name for name, mark in PHASES if mark in low), "other")


class _Timed:
    """A DuckDB connection whose statements are timed (process CPU and wall) into `costs` by phase."""

    def __init__(self, con, costs: dict, explain: str | None = None):
        self._con, self._costs, self._explain = con, costs, explain

    def execute(self, sql, *args, **kw):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            if self._explain and _phase(sql) == self._explain:  # (EXPLAIN ANALYZE runs the statement)
                plan = self._con.execute("explain analyze " + _text(sql), *args, **kw).fetchall()
                print(plan[0][1], file=sys.stderr)
                return self._con.execute("select 1")
            return self._con.execute(sql, *args, **kw)
        finally:
            self._add(_phase(sql), c0, w0)

    def _add(self, phase: str, c0: float, w0: float) -> None:
        cpu, wall, n = self._costs.get(phase, (0.0, 0.0, 0))
        self._costs[phase] = (cpu + time.process_time() - c0, wall + time.perf_counter() - w0, n + 1)

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Inline:
    """A ThreadPoolExecutor stand-in that runs each task at once on this thread, timed as `read`."""

    def __init__(self, costs: dict, *_, **__):
        self._costs = costs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future

        f: Future = Future()
        c0, w0 = time.process_time(), time.perf_counter()
        f.set_result(fn(*args))  # (an error is raised here, at submit, rather than at .result())
        cpu, wall, n = self._costs.get("read files (Arrow)", (0.0, 0.0, 0))
        self._costs["read files (Arrow)"] = (cpu + time.process_time() - c0, wall + time.perf_counter() - w0, n + 1)
        return f


def phases(
    landing: Path, days: int | None, profile: str | None, explain: str | None = None, settings: list[str] = ()
) -> dict:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "bench-salt")
    from pipelines import warehouse
    from pipelines.ingest import load
    from tracking_plan.loader import load_plan
    from tracking_plan.validate import Validator

    plan = load_plan()
    costs: dict = {}
    load.ThreadPoolExecutor = lambda *a, **k: _Inline(costs)
    parts = load.landed_partitions(landing)[: days or None]
    with tempfile.TemporaryDirectory(prefix="ingest-cost-") as tmp:
        con = warehouse.connect(Path(tmp) / "wh.duckdb")
        for setting in settings:  # a DuckDB setting to try, e.g. disabled_compression_methods=fsst
            name, _, value = setting.partition("=")
            con.execute(f"set {name} = '{value}'")
        timed = _Timed(con, costs, explain)
        c0, w0 = time.process_time(), time.perf_counter()
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        validator = Validator(plan)
        results = load.ingest_partitions(timed, plan, landing, parts, validator=validator)
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        total_cpu, total_wall = time.process_time() - c0, time.perf_counter() - w0
        con.close()
    lines = sum(r.lines for r in results)
    print(f"{lines:,} lines, {len(parts)} partitions: {total_cpu:.2f} CPU-s, {total_wall:.2f} s wall")
    print(f"{'phase':32} {'CPU-s':>8} {'wall s':>8} {'stmts':>6}")
    for name, (cpu, wall, n) in sorted(costs.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:32} {cpu:8.2f} {wall:8.2f} {n:6d}")
    rest = total_cpu - sum(c for c, _, _ in costs.values())
    print(f"{'(outside the statements)':32} {rest:8.2f}")
    return {"lines": lines, "cpu": total_cpu, "wall": total_wall, "phases": costs}


def _median_cpu(con, sql: str, repeat: int, before: str | None = None) -> float:
    """CPU seconds of `sql` (the whole process: DuckDB's threads too), the median of `repeat` runs,
    `before` run untimed ahead of each."""
    times = []
    for _ in range(repeat):
        if before:
            con.execute(before).fetchall()
        c0 = time.process_time()
        con.execute(sql).fetchall()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def floor(landing: Path, day: str | None, repeat: int) -> dict:
    """What DuckDB charges for work every ingest of these events does, whatever the code around it:
    writing the rows of ingest.events (its DDL, from an in-memory copy of one ingested partition),
    and the context's three passes (serialized by the envelope's parse, parsed again for its fields,
    validated again when the IP-truncated text is stored in the json column). Each figure the median
    of `repeat` runs, per million events."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "bench-salt")
    from pipelines import warehouse
    from pipelines.ingest import load
    from schemas.ddl import described
    from tracking_plan.landing import scan
    from tracking_plan.loader import load_plan
    from tracking_plan.reader import read_files
    from tracking_plan.validate import Validator, lit

    plan = load_plan()
    validator = Validator(plan)
    day = day or load.landed_partitions(landing)[0]
    out: dict = {"day": day}

    def show(name: str, cpu: float) -> None:
        out[name] = cpu * per
        print(f"  {name:62} {cpu * per:6.2f}")

    with tempfile.TemporaryDirectory(prefix="ingest-floor-") as tmp:
        con = warehouse.connect(Path(tmp) / "wh.duckdb")
        load.ingest_partitions(con, plan, landing, [day], validator=validator)
        warehouse.connect(Path(tmp) / "w.duckdb").close()  # an empty warehouse: ingest.events as the DDL makes it
        con.execute(f"attach '{Path(tmp) / 'w.duckdb'}' as w")
        con.execute("create temp table _rows as select * exclude (person_id) from ingest.events")
        n = con.execute("select count(*) from _rows").fetchall()[0][0]
        per = 1e6 / n
        out["events"] = n
        cols = [c for (c,) in con.execute("select column_name from (describe _rows)").fetchall()]
        # (the DDL's NOT NULL columns, as schemas.ddl reads them)
        required = [c for c, (_, nullable) in described()["ingest.events"].items() if not nullable]
        sets = {
            "every column": cols,
            "without context, properties, traits": [c for c in cols if c not in ("context", "properties", "traits")],
            f"the {len(required)} not-null columns only": required,
        }
        print(f"{n:,} events of {day}; CPU-s per 1M events, the median of {repeat}")
        for name, cs in sets.items():
            names = ", ".join(f'"{c}"' for c in cs)
            cpu = _median_cpu(
                con,
                f"insert into w.ingest.events ({names}) select {names} from _rows",
                repeat,
                "delete from w.ingest.events",
            )
            show(f"write ingest.events, {name}", cpu)
        names = ", ".join(required)
        con.execute(f"create table w.main.narrow as select {names} from _rows limit 0")
        cpu = _median_cpu(
            con, f"insert into w.main.narrow select {names} from _rows", repeat, "delete from w.main.narrow"
        )
        show(f"write the same {len(required)} columns into a table of only them", cpu)
        files = [e for e in scan(str(landing)) if e.partition == day]
        lines = read_files(files, max_bytes=plan.header.defaults.max_event_bytes, batch_lines=1 << 62, strip=False)
        con.register("_lines", next(iter(lines)))  # the day's lines as the ingest reads them
        # the first pass's own structs (Validator.envelope_struct, context_struct), the context without
        # and with its serialization
        ctx = lit(json.dumps(validator.envelope_struct))
        env = lit(json.dumps({k: v for k, v in validator.envelope_struct.items() if k != "context"}))
        valid = "from _lines where json_valid(raw)"
        steps = {
            "the envelope's parse": f"create or replace temp table _x as select json_transform(raw, {env}) {valid}",
            "the same, context serialized": f"create or replace temp table _x as select json_transform(raw, {ctx}) {valid}",
        }
        for name, sql in steps.items():
            show(name, _median_cpu(con, sql, repeat))
        con.execute(f"create temp table _ctx as select json_transform(raw, {ctx}).context as c {valid}")
        fields = lit(json.dumps(validator.context_struct))
        for name, sql in {
            "context parsed again for its fields": f"select json_transform(c, {fields}) from _ctx",
            "context text copied": "select c::varchar from _ctx",
            "context text cast to json (validated)": "select c::varchar::json from _ctx",
        }.items():
            show(name, _median_cpu(con, f"create or replace temp table _y as {sql}", repeat))
        con.close()
    return out


def _columns(con, db: str, table: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = ? "
            "and schema_name || '.' || table_name = ? order by column_index",
            [db, table],
        ).fetchall()
    ]


def _select(table: str, cols: list[tuple[str, str]], db: str) -> str:
    out = []
    for name, typ in cols:
        if name in VOLATILE:
            continue
        q = f'"{name}"'
        if table == "quality.check_results" and name == "metadata":
            # the result, not the query text or timings
            keys = ", ".join(f"'{k}'" for k in VOLATILE_META)
            q = f"(select json_group_object(k, v) from (select unnest(json_keys({q})) as k, {q} -> unnest(json_keys({q})) as v) where k not in ({keys}))::varchar"
        elif typ == "JSON":
            q = f"{q}::varchar"
        elif typ in ("DOUBLE", "FLOAT"):
            # 12 significant digits: a sum of doubles differs in its last bits between two runs of the
            # same code (DuckDB's threads add in the order they finish)
            q = f"case when isfinite({q}) then printf('%.12g', {q}) else {q}::varchar end"
        out.append(q)
    return f"select {', '.join(out) or '1'} from {db}.{table}"


def compare_tables(a: Path, b: Path, show: int = 5) -> list[str]:
    """The tables of warehouses `a` and `b` whose rows differ (as multisets, volatile columns left out)."""
    import duckdb

    # bounded (DuckDB takes 80% of RAM by default): comparing 10M-event warehouses filled a shared machine
    spill = tempfile.mkdtemp(prefix="ingest-cost-cmp-")
    con = duckdb.connect(config={"memory_limit": "3GB", "temp_directory": spill})
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    tables = {
        db: {
            f"{s}.{t}"
            for s, t in con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = ?", [db]
            ).fetchall()
        }
        for db in ("a", "b")
    }
    problems = []
    for t in sorted(tables["a"] - tables["b"]):
        problems.append(f"{t}: only in {a}")
    for t in sorted(tables["b"] - tables["a"]):
        problems.append(f"{t}: only in {b}")
    for t in sorted(tables["a"] & tables["b"]):
        ca, cb = _columns(con, "a", t), _columns(con, "b", t)
        if ca != cb:
            problems.append(f"{t}: columns differ: {ca} vs {cb}")
            continue
        qa, qb = _select(t, ca, "a"), _select(t, cb, "b")
        na = con.execute(f"select count(*) from a.{t}").fetchall()[0][0]
        nb = con.execute(f"select count(*) from b.{t}").fetchall()[0][0]
        only_a = con.execute(f"select count(*) from ({qa} except all {qb})").fetchall()[0][0]
        only_b = con.execute(f"select count(*) from ({qb} except all {qa})").fetchall()[0][0]
        if na != nb or only_a or only_b:
            rows = con.execute(f"({qa} except all {qb}) limit {show}").fetchall()
            rows_b = con.execute(f"({qb} except all {qa}) limit {show}").fetchall()
            problems.append(
                f"{t}: {na:,} vs {nb:,} rows, {only_a:,} only in a, {only_b:,} only in b; "
                f"a: {[str(r)[:300] for r in rows]} b: {[str(r)[:300] for r in rows_b]}"
            )
        else:
            print(f"  {t}: {na:,} rows, identical")
    con.close()
    shutil.rmtree(spill, ignore_errors=True)
    return problems


def build(checkout: Path, landing: Path, out: Path, ingest_only: bool) -> float:
    """A warehouse at `out` built from `landing` with the code of `checkout`; its CPU seconds."""
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = str(checkout)
    env.setdefault("TRACKPLAN_HASH_SALT", "bench-salt")
    if ingest_only:
        code = (
            "import sys; from pathlib import Path; from pipelines.warehouse import connect; "
            "from pipelines.ingest.load import ingest_partitions, landed_partitions; "
            "from tracking_plan.loader import load_plan; "
            "con = connect(Path(sys.argv[2])); ingest_partitions(con, load_plan(), Path(sys.argv[1]), "
            "landed_partitions(Path(sys.argv[1]))); con.close()"
        )
        argv = [sys.executable, "-c", code, str(landing), str(out)]
    else:
        trackplan = str(Path(sys.executable).parent / "trackplan")
        argv = [trackplan, "run", "--landing", str(landing), "--warehouse", str(out)]
    r0 = os.times()
    p = subprocess.run(argv, check=False, cwd=checkout, env=env, capture_output=True, text=True)
    r1 = os.times()
    if p.returncode not in (0, 1):  # (1: a blocking check failed, which is a result to compare too)
        raise SystemExit(f"{checkout}: {' '.join(argv[:2])} failed:\n{p.stderr[-3000:]}")
    return (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("phases")
    p.add_argument("landing", type=Path)
    p.add_argument("--days", type=int, default=None, help="only the first N partitions")
    p.add_argument("--profile", default=None, help="write a cProfile of the ingest here")
    p.add_argument("--explain", default=None, help="print DuckDB's EXPLAIN ANALYZE of this phase's statements")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a DuckDB setting to try")
    f = sub.add_parser("floor")
    f.add_argument("landing", type=Path)
    f.add_argument("--day", default=None, help="the partition to measure on (default: the first)")
    f.add_argument("--repeat", type=int, default=5)
    c = sub.add_parser("compare")
    c.add_argument("landing", type=Path)
    c.add_argument("--a", type=Path, required=True, help="a checkout (the baseline)")
    c.add_argument("--b", type=Path, default=REPO, help="another checkout (default: this one)")
    c.add_argument("--ingest-only", action="store_true", help="only the ingest, not `trackplan run`")
    c.add_argument("--workdir", type=Path, default=None)
    t = sub.add_parser("tables")
    t.add_argument("a", type=Path)
    t.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "phases":
        phases(args.landing.resolve(), args.days, args.profile, args.explain, args.set)
        return 0
    if args.cmd == "floor":
        floor(args.landing.resolve(), args.day, args.repeat)
        return 0
    if args.cmd == "tables":
        problems = compare_tables(args.a, args.b)
    else:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="ingest-cost-"))
        whs = []
        for name, checkout in (("a", args.a), ("b", args.b)):
            wh = work / name / "wh.duckdb"
            cpu = build(checkout.resolve(), args.landing.resolve(), wh, args.ingest_only)
            print(f"{name}: {checkout} built {wh} in {cpu:.1f} CPU-s")
            whs.append(wh)
        problems = compare_tables(*whs)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    for pr in problems:
        print("DIFFERS " + pr)
    print("identical" if not problems else f"{len(problems)} tables differ")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""`trackplan`: the command line. Each command is a thin shell over an importable function."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from tracking_plan.loader import default_plan_dir, load_plan

from .cli_errors import CliError, TrackplanGroup, one_of, shown

# TrackplanGroup is the one error handler: whatever a command raises becomes one line and an exit code
app = typer.Typer(
    cls=TrackplanGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Tracking plan as code: lint, diff, compile, validate, ingest into DuckDB, report.",
)
console = Console(stderr=True)
out = Console()


def say(text: str) -> None:
    """A status line on stderr. Never markup (a path may hold `[/red]`), never wrapped."""
    console.print(shown(text), markup=False, highlight=False, soft_wrap=True)


PlanOpt = typer.Option(None, "--plan", help="Plan directory (env TRACKPLAN_PLAN; default: the sample plan)")
EngineOpt = typer.Option(
    None,
    "--engine",
    help="duckdb (the warehouse file) | spark (Parquet layers under --spark-root) (env TRACKPLAN_ENGINE; default duckdb)",
)
SparkRootOpt = typer.Option(
    None,
    "--spark-root",
    help="Spark engine: the layers' root, any Hadoop-compatible URI "
    "(env TRACKPLAN_SPARK_ROOT; default: layers/ beside the warehouse)",
)
SparkMasterOpt = typer.Option(
    None, "--spark-master", help="Spark engine: the master (env TRACKPLAN_SPARK_MASTER; default local[2])"
)
FormatOpt = typer.Option("text", "--format", help="text | json", callback=one_of("text", "json"))


def landing_default() -> Path:
    return Path(os.environ.get("TRACKPLAN_LANDING", "landing"))


def warehouse_default() -> Path:
    return Path(os.environ.get("TRACKPLAN_WAREHOUSE", "warehouse.duckdb"))


def _plan(plan_dir: Path | None):
    # a PlanError becomes its first problem (file:line) and a count, in one line (cli_errors)
    return load_plan(plan_dir or default_plan_dir())


def _partition_date(value: str | None) -> str | None:
    """--partition is checked here, before Dagster is loaded."""
    import datetime as dt

    if value is not None:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


def _engine(engine: str | None) -> str:
    """--engine, else TRACKPLAN_ENGINE, else duckdb (read when the command runs, not at import)."""
    engine = engine or os.environ.get("TRACKPLAN_ENGINE") or "duckdb"
    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"{engine}: expected duckdb or spark", param_hint="--engine")
    return engine


def _spark_place(root: str | None, master: str | None, warehouse: Path | str) -> tuple[str, str]:
    """(layers' root, Spark master) from the options, else the environment, else their defaults."""
    return (
        root or os.environ.get("TRACKPLAN_SPARK_ROOT") or str(Path(warehouse).resolve().parent / "layers"),
        master or os.environ.get("TRACKPLAN_SPARK_MASTER") or "local[2]",
    )


@app.command()
def lint(
    plan: Path | None = PlanOpt,
    format: str = FormatOpt,
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        help="Read current traffic from it: can each experiment reach its sample size in its planned days?",
    ),
):
    """Check the plan's structure and conventions; exit 1 on errors."""
    from tracking_plan.lint import lint as run_lint
    from tracking_plan.lint import render_lint, traffic_from_warehouse

    traffic = traffic_from_warehouse(warehouse, plan) if warehouse else None
    problems = run_lint(plan or default_plan_dir(), traffic=traffic)
    out.print(render_lint(problems, format=format), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(1 if any(p.severity == "error" for p in problems) else 0)


@app.command()
def diff(
    base: str = typer.Option(..., "--base", help="Base plan: a directory or a git ref"),
    plan: Path | None = PlanOpt,
    format: str = typer.Option(
        "text", "--format", help="text | markdown | json", callback=one_of("text", "markdown", "json")
    ),
    replay: Path | None = typer.Option(
        None, "--replay", help="Warehouse (.duckdb) or events file: what would the proposed plan newly reject?"
    ),
    replay_sample: int = typer.Option(100_000, "--replay-sample", min=1, help="Events to replay at most"),
):
    """Class every change major/minor/patch; exit 1 if the declared version bump is too small."""
    from tracking_plan.diff import diff_plans, load_base, render_diff

    if not base.strip():
        raise CliError("--base is empty: give a plan directory or a git ref (branch, tag, commit)")
    if replay is not None and not replay.exists():
        raise CliError(
            f"--replay {shown(replay)}: no such file or directory (a warehouse .duckdb, events file or folder)"
        )
    head_dir = plan or default_plan_dir()
    head = _plan(head_dir)
    base_plan = load_base(base, head_dir)
    result = diff_plans(base_plan, head)
    replay_result = None
    if replay is not None:
        from tracking_plan.replay import replay as run_replay

        replay_result = run_replay(base_plan, head, replay, sample=replay_sample)
    out.print(render_diff(result, format=format, replay=replay_result), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(0 if result.ok else 1)


@app.command("compile")
def compile_cmd(
    plan: Path | None = PlanOpt, out_dir: Path = typer.Option(..., "--out", help="Directory for the JSON Schemas")
):
    """Write one JSON Schema (draft 2020-12) per event version."""
    from tracking_plan.compile import schema_key, write_schemas

    the_plan = _plan(plan)
    seen: dict[str, str] = {}
    # two names, one slug ("Order Completed" / "Order-Completed"): a plan error, named here because
    # compile_plan raises it as a plain ValueError
    for name in sorted(the_plan.events):
        key = schema_key(the_plan.events[name])
        if key in seen:
            raise CliError(
                f"{shown(the_plan.events[name].source_file)}: events {seen[key]!r} and {name!r} compile to the same "
                f"file {key}.json: rename one (`trackplan lint` reports the pair as L120)"
            )
        seen[key] = name
    written = write_schemas(the_plan, out_dir)
    say(f"wrote {len(written)} schemas to {out_dir}")


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="JSONL, JSONL.gz or Segment batch files"),
    plan: Path | None = PlanOpt,
    format: str = FormatOpt,
    unexpected: str | None = typer.Option(
        None,
        "--unexpected",
        help="allow | warn | reject unexpected properties (default: the plan's)",
        callback=one_of("allow", "warn", "reject"),
    ),
    max_errors: int = typer.Option(1000, "--max-errors", min=0, help="Errors listed per file at most"),
):
    """Validate events against the plan; exit 1 if any is invalid."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tracking_plan.validate import validate_files

    p = _plan(plan)
    for f in files:
        if not f.exists():
            raise CliError(f"{shown(f)}: no such file")
        try:
            str(f).encode("utf-8")
        except UnicodeEncodeError:  # DuckDB, which reads the file, takes UTF-8 paths only
            raise CliError(f"{shown(f)}: the file name is not UTF-8 and cannot be read: rename it") from None
    with Progress(
        TextColumn("validating"),
        BarColumn(),
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=format == "json" or not console.is_terminal,
    ) as bar:
        task = bar.add_task("v", total=None)
        reports = validate_files(
            p,
            [str(f) for f in files],
            unexpected=unexpected,
            max_errors=max_errors,
            progress=lambda n: bar.advance(task, n),
        )
    total = sum(r.total for r in reports)
    valid = sum(r.valid for r in reports)
    errors = [e for r in reports for e in r.errors]
    file_errors = [{"file": r.file, "error": r.file_error} for r in reports if r.file_error]
    if format == "json":
        doc = json.dumps(
            {"total": total, "valid": valid, "invalid": total - valid, "file_errors": file_errors, "errors": errors},
            default=str,
            indent=2,
        )
        if out.is_terminal:
            out.print_json(doc)
        else:  # piped to a file or jq: plain text, no highlighting pass over thousands of lines
            sys.stdout.write(doc + "\n")
    else:
        for e in errors:
            out.print(
                f"{e['file']}:{e['line']}: {e['rule']} {e['path']} {e['message']} "
                f"(messageId {e['message_id']}, event {e['event']})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        for fe in file_errors:
            out.print(f"{fe['file']}: {fe['error']}", highlight=False, markup=False, soft_wrap=True)
        out.print(f"{total:,} events: {valid:,} valid, {total - valid:,} invalid", highlight=False)
    raise typer.Exit(1 if total - valid or file_errors else 0)


@app.command()
def generate(
    out_dir: Path = typer.Option(..., "--out", help="Landing zone to write"),
    days: int | None = typer.Option(None, "--days", min=1),
    users: int | None = typer.Option(None, "--users", min=1),
    seed: int = typer.Option(42, "--seed"),
    bug_rate: float = typer.Option(0.01, "--bug-rate", min=0.0, max=0.5, help="Share of events with a planted bug"),
    plan: Path | None = PlanOpt,
):
    """Write realistic, seeded sample events into a landing zone, partitioned by day."""
    from rich.progress import Progress

    from .demo.generate import generate as run_generate

    kwargs = {k: v for k, v in (("days", days), ("users", users)) if v is not None}
    the_plan = _generator_plan(plan) if plan else None
    # (no bar where stderr is no terminal: its stop left a blank line before the summary, or the error)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("generating", total=None)
        result = run_generate(
            out_dir,
            seed=seed,
            bug_rate=bug_rate,
            plan=the_plan,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **kwargs,
        )
    say(
        f"wrote {result.lines:,} lines ({result.persons:,} persons, {result.start} .. {result.end}) "
        f"in {len(result.files)} files to {out_dir}"
    )


def _generator_plan(plan_dir: Path):
    """The generator simulates the sample plan's product (its experiments and initiatives come from the
    plan): a plan is accepted if it has every event of the sample plan, or rejected naming what it lacks."""
    p = _plan(plan_dir)
    missing = sorted(
        {e.name for e in load_plan(default_plan_dir()).events.values()} - {e.name for e in p.events.values()}
    )
    if missing:
        raise CliError(
            f"--plan: {plan_dir} lacks {len(missing)} event(s) the generator sends (it simulates the "
            f"sample plan's product): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    return p


@app.command()
def run(
    plan: Path | None = PlanOpt,
    landing: str | None = typer.Option(None, "--landing", help="Folder or s3:// gs:// az:// URL"),
    warehouse: Path | None = typer.Option(None, "--warehouse"),
    partition: str | None = typer.Option(
        None, "--partition", help="YYYY-MM-DD; default: every day landed", callback=_partition_date
    ),
    layout: str | None = typer.Option(
        None, "--layout", help="trackplan | segment-s3 | snowplow-enriched (env TRACKPLAN_LAYOUT; default: detected)"
    ),
    incremental: bool | None = typer.Option(
        None,
        "--incremental/--full",
        help="Read only partitions whose objects changed since the last run (default: on for a bucket); "
        "--full also implies --full-refresh",
    ),
    full_refresh: bool = typer.Option(
        False,
        "--full-refresh",
        help="Rebuild stitching, sessions and marts from all events, not only what the run's days changed "
        "(done anyway when the plan or a model's SQL changed)",
    ),
    engine: str | None = EngineOpt,
    spark_root: str | None = SparkRootOpt,
    spark_master: str | None = SparkMasterOpt,
):
    """Materialize every asset through Dagster, with progress and a summary."""
    if _engine(engine) == "spark":
        from pipelines.spark.run import run_spark_pipeline

        wh = warehouse or warehouse_default()
        root, master = _spark_place(spark_root, spark_master, wh)
        ok = run_spark_pipeline(
            plan_dir=plan or default_plan_dir(),
            landing=landing or str(landing_default()),
            root=root,
            partition=partition,
            master=master,
            console=console,
            dagster_home_of=Path(wh),
            layout=layout or os.environ.get("TRACKPLAN_LAYOUT") or None,
        )
        raise typer.Exit(0 if ok else 1)
    from pipelines.process import pause_while_loading

    pause_while_loading()  # (until the run's modules are loaded: pipelines/process.py)
    from pipelines.runner import run_pipeline

    ok = run_pipeline(
        plan_dir=plan or default_plan_dir(),
        landing=landing or str(landing_default()),
        warehouse=warehouse or warehouse_default(),
        partition=partition,
        console=console,
        layout=layout or os.environ.get("TRACKPLAN_LAYOUT") or None,
        incremental=False if full_refresh else incremental,
        full_refresh=full_refresh or incremental is False,
    )
    raise typer.Exit(0 if ok else 1)


@app.command()
def forget(
    user_id: list[str] = typer.Option(
        ...,
        "--user-id",
        help="Any of the person's identifiers (user id, device id, e-mail); repeat to erase several people in one pass",
    ),
    warehouse: Path | None = typer.Option(None, "--warehouse"),
    plan: Path | None = PlanOpt,
    engine: str | None = EngineOpt,
    spark_root: str | None = SparkRootOpt,
    spark_master: str | None = SparkMasterOpt,
):
    """Erase a person from every table (right to erasure) and keep them out of re-ingestion.

    The warehouse file is then rewritten without the deleted rows' bytes, once per call: give every
    id of a batch of requests in one call. On the Spark engine every layer holding the person is
    rewritten without them, in one commit. Exit 1 when nothing matched an id (it is still
    registered, so later ingests drop it)."""
    engine = _engine(engine)
    if engine == "spark":
        from pipelines.spark.engine import SparkEngine
        from pipelines.spark.privacy import forget_on_spark
        from pipelines.spark.run import EngineUnavailable
        from pipelines.spark.session import unavailable

        why = unavailable()
        if why:
            raise EngineUnavailable(f"--engine spark: {why}")
        root, master = _spark_place(spark_root, spark_master, warehouse or warehouse_default())
        done = forget_on_spark(SparkEngine(root=root, master=master).session(), root, user_id, _plan(plan))
        for line in done["recovered"]:
            say(f"first finished what an interrupted run left: {line}")
        results = done["results"]
    else:
        from pipelines.privacy import forget_people

        results = forget_people(warehouse or warehouse_default(), user_id, plan=_plan(plan))
    unmatched = 0
    for uid, result in zip(user_id, results, strict=True):
        if not result["rows"]:
            unmatched += 1
            say(
                f"nothing matched user id {uid!r}: 0 rows erased; it is in the erasure register, so "
                f"later ingests drop it (audit id {result['audit_id']})"
            )
            continue
        who = f"user id {uid!r}: " if len(user_id) > 1 else ""
        say(
            f"{who}erased {result['rows']:,} rows of {result['identifiers']} identifiers; audit id {result['audit_id']}"
        )
    if engine == "spark":
        say(
            f"rewrote {len(done['folders'])} folders of {root} in one commit (the layers holding the person, "
            "the erasure register and the audit); their old files are deleted"
        )
    else:
        before, after = results[0]["file_bytes"]
        say(
            f"rewrote {warehouse or warehouse_default()} without the deleted rows' bytes "
            f"({before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB)"
        )
        for kept in results[0]["also"]:
            say(f"also erased in {kept} (a run's warehouse kept unpublished beside it, rewritten the same way)")
    if unmatched:
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8088, "--port", min=0, max=65535, help="0: any free port"),
    landing: Path | None = typer.Option(None, "--landing"),
    validate_events: bool = typer.Option(False, "--validate", help="Count plan violations at /metrics"),
    plan: Path | None = PlanOpt,
):
    """HTTP collector speaking Segment's tracking API (and Snowplow's tp2)."""
    from pipelines.collector import serve as run_serve

    landing = Path(landing or landing_default())
    if landing.exists() and not landing.is_dir():  # (the server would start, then fail with a traceback)
        raise CliError(f"--landing {landing}: not a directory (the collector writes its landing zone there)")
    run_serve(
        host=host,
        port=port,
        landing=str(landing),
        validate_plan=str(plan or default_plan_dir()) if validate_events else None,
    )


@app.command()
def report(
    warehouse: Path | None = typer.Option(None, "--warehouse"),
    out_file: Path = typer.Option(..., "--out", help="The HTML file to write"),
    plan: Path | None = PlanOpt,
):
    """One self-contained HTML report: KPIs, cohorts, retention, funnels, value, evidence, data health."""
    from .report import write_report

    wh = warehouse or warehouse_default()
    if not Path(wh).exists():
        raise CliError(f"{shown(wh)}: no warehouse yet (run `trackplan run` first)")
    write_report(wh, out_file, plan=plan or default_plan_dir())
    say(f"wrote {out_file}")


@app.command()
def docs(plan: Path | None = PlanOpt, out_dir: Path = typer.Option(Path("site"), "--out")):
    """A browsable catalog of the tracking plan (static HTML)."""
    from tracking_plan.docs_site import build_docs

    build_docs(plan or default_plan_dir(), out_dir)
    say(f"wrote the catalog to {out_dir}/index.html")


@app.command()
def codegen(
    lang: str = typer.Option(..., "--lang", help="typescript | python"),
    out_dir: Path = typer.Option(..., "--out", help="Directory for the generated code"),
    plan: Path | None = PlanOpt,
):
    """Typed tracking functions from the plan (one per event), wrapping the Segment libraries."""
    from tracking_plan.codegen import CodegenError, write_code

    try:
        written = write_code(_plan(plan), lang, out_dir)
    except CodegenError as exc:  # (tests/test_coverage.py pins this line without the `trackplan:` prefix)
        say(str(exc))
        raise typer.Exit(2) from None
    for path in written:
        say(f"wrote {path}")


@app.command()
def coverage(
    src_dir: Path = typer.Argument(..., help="Source tree to scan (.ts/.tsx/.js/.py)"),
    plan: Path | None = PlanOpt,
    format: str = FormatOpt,
):
    """Plan events the code calls, unknown event names, planned events nobody sends; exit 1 on unknown."""
    from tracking_plan.coverage import render as render_coverage
    from tracking_plan.coverage import scan

    if not src_dir.exists():
        raise CliError(f"{shown(src_dir)}: no such file or directory")
    result = scan(_plan(plan), src_dir)
    out.print(render_coverage(result, format=format), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def lineage(
    table: str = typer.Argument(..., help="schema.table, e.g. marts.initiative_roi"),
    format: str = FormatOpt,
    deep: bool = typer.Option(False, "--deep", help="Follow to raw sources"),
):
    """Column-level lineage of a model, parsed from its SQL with sqlglot."""
    from pipelines.lineage import render_lineage

    try:
        out.print(render_lineage(table, format=format, deep=deep), highlight=False, markup=False, soft_wrap=True)
    except KeyError:
        # a Python asset (statistics): its SQL cannot be parsed, so give its upstream tables from
        # the Dagster graph, as far back as the landing zone
        from pipelines.definitions import defs
        from pipelines.lineage import table_lineage

        result = table_lineage(table, defs)
        if result is None:
            raise CliError(f"no table named {table} in the pipeline") from None
        if format == "json":
            out.print_json(json.dumps(result))
        else:
            out.print(
                f"{table} (Python asset: column lineage exists for SQL models only)", highlight=False, markup=False
            )
            for level, tables in enumerate(result["upstream"], start=1):
                out.print(f"  {'  ' * (level - 1)}<- {', '.join(tables)}", highlight=False, markup=False)


@app.command()
def sql(
    dialect: str = typer.Option(
        ..., "--dialect", help="snowflake | bigquery | spark (the dialects whose translation is checked)"
    ),
    unchecked: bool = typer.Option(
        False,
        "--unchecked",
        help="any other dialect sqlglot writes (postgres, oracle, ...): printed with what sqlglot cannot "
        "write refused, but a function the target lacks passes through unnoticed",
    ),
):
    """Print every SQL model transpiled to another warehouse's dialect (sqlglot + models/dialects.py's
    rewrite rules); fails in one line naming the model and the function it cannot translate."""
    from models.dialects import DIALECTS, UntranslatableSQL
    from pipelines.lineage import render_sql

    try:
        text = render_sql(dialect, unchecked=unchecked)
    except UntranslatableSQL as exc:  # "<model>: <function>() has no <dialect> translation: why"
        raise CliError(str(exc)) from None
    except ValueError as exc:  # an unknown dialect
        raise CliError(f"--dialect: {exc}") from None
    if dialect not in DIALECTS:  # (--unchecked)
        say(f"trackplan: {dialect}: not checked (a function {dialect} lacks passes through unchanged)")
    out.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command()
def review(
    warehouse: Path | None = typer.Option(None, "--warehouse"),
    format: str = typer.Option("markdown", "--format", help="markdown | html", callback=one_of("markdown", "html")),
    out_file: Path | None = typer.Option(None, "--out"),
    plan: Path | None = PlanOpt,
):
    """The portfolio review: stop, continue, scale or pivot each initiative, with its evidence."""
    from .review import review as render_review

    wh = warehouse or warehouse_default()
    if not Path(wh).exists():
        raise CliError(f"{shown(wh)}: no warehouse yet (run `trackplan run` first)")
    text = render_review(plan or default_plan_dir(), wh, format)
    if out_file:
        Path(out_file).write_text(text)
        say(f"wrote {out_file}")
    else:
        out.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command()
def demo(out_dir: Path = typer.Option(Path("demo"), "--out", help="Folder for landing zone, warehouse, report")):
    """Generate sample data, run the whole pipeline, write the report: a first look."""
    from pipelines.runner import run_pipeline
    from pipelines.warehouse import DEMO_SALT

    from .demo.generate import generate as run_generate

    landing, warehouse = out_dir / "landing", out_dir / "warehouse.duckdb"
    if not os.environ.get("TRACKPLAN_HASH_SALT"):
        os.environ["TRACKPLAN_HASH_SALT"] = DEMO_SALT
        say(
            "using the public demo salt for PII hashes (it is in the source: not for real data; "
            "set TRACKPLAN_HASH_SALT for that)"
        )
    say(f"generating sample events into {landing} ...")
    res = run_generate(landing, seed=42)
    say(f"  {res.lines:,} lines, {res.persons:,} persons")
    ok = run_pipeline(plan_dir=default_plan_dir(), landing=landing, warehouse=warehouse, console=console)
    from .report import write_report

    report_path = out_dir / "report.html"
    write_report(warehouse, report_path)
    # soft_wrap: the "try" line is a command to paste; a terminal-width line break would break it
    console.print(
        f"\nresults:\n  report     {report_path}\n  warehouse  {warehouse}"
        f"\n  try        .venv/bin/python -c \"import duckdb; print(duckdb.connect('{warehouse}', "
        f"read_only=True).sql('from marts.activation_cohorts'))\"",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    """The `trackplan` console script: the app, in a process that ends with its command."""
    from pipelines.process import console_script

    console_script()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

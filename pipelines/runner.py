"""`trackplan run`: materialize every asset through Dagster in-process, with progress and a summary."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from rich.console import Console
from rich.table import Table

from tracking_plan.loader import PlanError

from . import plan_cache, process
from .publish import building, record_nothing_new
from .warehouse import connect, hash_salt

if TYPE_CHECKING:  # Dagster (~5 CPU-s to import) loads only when a run has something to build
    import dagster as dg


def _warm_imports() -> None:
    """Import Great Expectations in the background: its ~4 s import then overlaps the ingest's
    DuckDB work (which releases the GIL) instead of adding to the run when the quality checks start."""
    try:
        from quality_checks.gx_import import import_gx

        import_gx()
    except ImportError:  # pragma: no cover - GX is a dependency; the checks report it if it is gone
        pass


# the summary says what matters, a failed step included (in one line, not Dagster's traceback)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def dagster_home(warehouse: Path) -> Path:
    """Where runs are recorded: ``DAGSTER_HOME``, else a ``.dagster`` folder beside the warehouse, the
    folder `make dev` points the Dagster UI at, so a CLI run's materializations, checks and history
    show there."""
    return Path(os.environ.get("DAGSTER_HOME") or Path(warehouse).resolve().parent / ".dagster")


def dagster_instance(warehouse: Path) -> dg.DagsterInstance:
    home = dagster_home(warehouse)
    home.mkdir(parents=True, exist_ok=True)
    from .dagster_store import pooled_instance

    return pooled_instance(home)


def run_pipeline(
    plan_dir: Path,
    landing: Path | str,
    warehouse: Path,
    partition: str | None = None,
    console: Console | None = None,
    instance: dg.DagsterInstance | None = None,
    layout: str | None = None,
    incremental: bool | None = None,
    full_refresh: bool = False,
) -> bool:
    """Run ingest for the landed days (or one), then every downstream asset, into a copy of the warehouse
    that is published whole at the end (pipelines.publish); True if every asset built and no blocking
    check failed.

    `landing` is a folder or an object-store URL (s3://, gs://, az://) in `layout` (detected when None).
    Incremental (the default for an object store): only the partitions whose objects differ from the
    warehouse's manifest (key, ETag, size) are read again. Stitching and sessions recompute only what
    the ingested days changed (pipelines/stitch/incremental.py) unless `full_refresh`."""
    from tracking_plan.landing import LandingError
    from tracking_plan.landing import scan as scan_landing
    from tracking_plan.reader import is_url

    console = console or Console(stderr=True)
    try:
        # a broken plan stops here with file:line messages, not inside Dagster (the assets get this parse)
        plan = plan_cache.load(plan_dir)
    except PlanError as exc:
        for p in exc.problems:
            console.print(str(p), markup=False, highlight=False)
        return False
    try:
        scan = scan_landing(landing, layout)
    except LandingError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return False
    landed = sorted({e.partition for e in scan if e.partition})
    if refuse_held(partition, console):
        return False
    if partition and partition not in landed:
        # nothing to do for that day: say so, record the run, rebuild nothing (and import no Dagster)
        where = landing if is_url(str(landing)) else Path(landing) / f"date={partition}"
        console.print(
            f"no landing files for {partition} (nothing under {where}): nothing ingested, nothing rebuilt",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        _record_nothing_new(warehouse, [partition], plan.version, console)
        return True
    days = [partition] if partition else landed
    if not days:
        console.print(
            f"no landing files under {landing}/date=YYYY-MM-DD/ (or in the layouts of README 'Reading "
            "from your bucket'): nothing to ingest",
            markup=False,
            highlight=False,
        )
        return False
    if incremental is None:
        incremental = is_url(str(landing))
    if incremental and not partition and Path(warehouse).exists():
        from .ingest.load import changed_partitions

        con = connect(warehouse, read_only=True)
        try:
            days = changed_partitions(con, scan)
        except duckdb.CatalogException:  # a warehouse from before the manifest: every day is new to it
            pass
        finally:
            con.close()
        if not days:
            console.print(
                f"nothing new under {landing}: every object matches the manifest (key, ETag, size)",
                markup=False,
                highlight=False,
            )
            _record_nothing_new(warehouse, [], plan.version, console)
            return True
    hash_salt()  # no salt, no run: PII is never hashed with a key anyone could read in the source
    from .definitions import all_assets, all_checks

    t0 = time.time()
    with building(warehouse) as build:
        own = instance is None
        instance = instance or dagster_instance(warehouse)  # recorded where `make dev` looks (after the lock)
        # (started once the instance exists: GX imports sqlalchemy too, and two threads importing the
        # same modules can see one half-initialized — a Dagster instance failed so, once in four runs)
        threading.Thread(target=_warm_imports, daemon=True).start()
        process.loaded()  # (the modules and the instance are loaded: pipelines/process.py)
        try:
            ok = _materialize(
                build,
                plan,
                plan_dir,
                landing,
                days,
                instance,
                console,
                all_assets(),
                all_checks(),
                layout=layout,
                full_refresh=full_refresh,
            )
        finally:
            if own:
                instance.dispose()  # closes the event log's pooled SQLite connections
        if build.published:
            _summary(warehouse, days, time.time() - t0, ok[1], ok[2], console)
    return ok[0]


def refuse_held(partition: str | None, console: Console) -> bool:
    """`--partition` of a day after tomorrow (held back: tracking_plan.landing.held_reason): say so in
    one line and return True (both engines' runs refuse it alike)."""
    from tracking_plan.landing import held_reason

    held = held_reason(partition)
    if held:  # (its files are in the scan, outside any partition, with this reason)
        console.print(
            f"--partition {partition}: {held}: nothing ingested", markup=False, highlight=False, soft_wrap=True
        )
    return held is not None


def _record_nothing_new(warehouse, days: list[str], plan_version, console: Console) -> None:
    """The run's row in ingest.run_log; while another run holds the warehouse, say it was not recorded."""
    from .publish import RunError

    try:
        record_nothing_new(warehouse, days, plan_version)
    except RunError as exc:
        console.print(f"run not recorded in ingest.run_log: {exc}", markup=False, highlight=False, soft_wrap=True)


def materialize_days(assets, checks, resources: dict, days: list[str], instance):
    """Dagster's materialize of `assets` and `checks` over the run's days (a partition range), with the
    run's quiet logging; a failed step is in the result, never raised. Both engines' runs go through it."""
    import dagster as dg

    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    return dg.materialize(
        [*assets, *checks], resources=resources, tags=tags, raise_on_error=False, instance=instance, run_config=QUIET
    )


def _materialize(
    build, plan, plan_dir, landing, days, instance, console, assets, checks, layout=None, full_refresh=False
):
    """Materialize into the build's copy, record the run, publish: (ok, failed checks, the run's row)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from . import progress
    from .resources import resources_from_env

    resources = resources_from_env(
        plan_dir,
        landing,
        build.path,
        layout=layout,
        full_refresh=full_refresh,
        publish=False,  # we publish
    )
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # (stopped, it left a blank line on a log's stderr)
    ) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        progress.set_callback(on_progress)
        try:
            result = materialize_days(assets, checks, resources, days, instance)
        finally:
            progress.set_callback(None)
    failed_checks = []
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            failed_checks.append(
                (ev.asset_key.to_user_string(), ev.check_name, ev.severity.value, getattr(ev, "blocking", False))
            )
    failed_steps = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            failed_steps.append(ev.step_key)
            err = ev.event_specific_data.error
            while err is not None and err.cause is not None:  # the user code's own error, not Dagster's wrapper
                err = err.cause
            msg = " ".join(err.message.split()) if err is not None and err.message.strip() else "failed"
            console.print(f"[red]failed: {ev.step_key}[/red]: {msg}", highlight=False)
    wanted = {".".join(k.path) for a in assets for k in a.keys}
    built = {".".join(ev.asset_key.path) for ev in result.get_asset_materialization_events()}
    run_again = [
        ev.materialization.metadata["run_again"].value
        for ev in result.get_asset_materialization_events()
        if ev.asset_key.path == ["ingest", "events"] and "run_again" in ev.materialization.metadata
    ]
    failed = failed_steps + [f"{a}:{c}" for a, c, s, _ in failed_checks if s == "ERROR"]
    status = build.record(result.run_id, days, sorted(built & wanted), sorted(wanted - built), failed, plan.version)
    build.publish()
    ok = result.success and status == "complete"
    return (
        ok,
        failed_checks,
        {
            "run_id": result.run_id,
            "status": status,
            "not_built": sorted(wanted - built),
            "failed_steps": failed_steps,
            "run_again": run_again,
        },
    )


def _summary(
    warehouse: Path, days: list[str], seconds: float, failed_checks: list, run: dict, console: Console
) -> None:
    """What this run did, read from the warehouse it published; a count it did not rebuild is not shown."""
    if "ingest.events" in run["not_built"]:
        console.print(
            f"run {run['run_id']} incomplete: the ingest did not finish, so there are no counts of it; "
            "the warehouse keeps the ingest tables of the run before",
            markup=False,
            highlight=False,
        )
        return
    con = connect(warehouse, read_only=True)
    # the run's days, and the files outside any date folder (logged by every run, no partition_date)
    mine = "(partition_date between ? and ? or partition_date is null)"
    try:
        log = con.execute(
            f"""select coalesce(sum(lines),0), coalesce(sum(loaded),0), coalesce(sum(quarantined),0),
            coalesce(sum(duplicates),0), coalesce(sum(consent_dropped),0), coalesce(sum(suppressed),0),
            count(*) filter (where status is distinct from 'skipped'), count(*) filter (where status = 'skipped')
            from ingest.ingestion_log where {mine}""",
            [days[0], days[-1]],
        ).fetchall()[0]
        skips = con.execute(
            f"""select split_part(skip_reason, ':', 1), count(*) from ingest.ingestion_log
            where {mine} and status = 'skipped' group by 1 order by 2 desc, 1 limit 5""",
            [days[0], days[-1]],
        ).fetchall()
        reasons = con.execute(
            """select r.rule, count(*) n from (select unnest(reasons) r from ingest.quarantine
            where partition_date between ? and ?) group by 1 order by 2 desc limit 5""",
            [days[0], days[-1]],
        ).fetchall()
        persons = _count(con, "select count(distinct person_id) from stitch.persons")
        sessions = _count(con, "select count(*) from staging.sessions")
    finally:
        con.close()
    t = Table(
        title=f"trackplan run {run['run_id'][:8]}: {days[0]} .. {days[-1]} ({len(days)} days, {log[6]} files)",
        show_header=False,
    )
    t.add_row("input lines", f"{log[0]:,}")
    t.add_row("loaded", f"{log[1]:,}")
    t.add_row(
        "quarantined", f"{log[2]:,}" + (f"  (top: {', '.join(f'{r} {n:,}' for r, n in reasons)})" if reasons else "")
    )
    t.add_row("duplicates", f"{log[3]:,}")
    t.add_row("consent-dropped / suppressed", f"{log[4]:,} / {log[5]:,}")
    if run.get("run_again"):  # days not asked for that the ingest ran again (a message's first copy moved)
        t.add_row("days run again", "; ".join(run["run_again"]))
    t.add_row(
        "skipped files",
        f"{log[7]:,}"
        + (f"  ({', '.join(f'{r} {n:,}' for r, n in skips)}; see ingest.ingestion_log.skip_reason)" if skips else ""),
    )
    stale = "stitch.persons" in run["not_built"]
    t.add_row("persons", "not rebuilt" if stale else f"{persons:,}")
    t.add_row("sessions", "not rebuilt" if "staging.sessions" in run["not_built"] else f"{sessions:,}")
    t.add_row("time", f"{seconds:.1f} s ({log[0] / max(seconds, 1e-9):,.0f} lines/s end to end)")
    t.add_row(
        "failed checks",
        ", ".join(f"{a}:{c} ({s})" for a, c, s, _ in failed_checks)
        or (
            "none"
            if not run["failed_steps"]
            else "none of those that ran; failed steps: " + ", ".join(run["failed_steps"])
        ),
    )
    if run["status"] != "complete":
        layers: dict[str, int] = {}
        for name in run["not_built"]:
            layers[name.split(".")[0]] = layers.get(name.split(".")[0], 0) + 1
        t.add_row(
            "run",
            f"INCOMPLETE: {len(run['not_built'])} tables not rebuilt, kept from an earlier run ("
            + ", ".join(f"{n} {layer}" for layer, n in layers.items())
            + "): see ingest.run_log",
        )
    console.print(t)


def _count(con, sql: str) -> int:
    try:
        return con.execute(sql).fetchall()[0][0]
    except duckdb.Error:  # table not built (its asset failed): the failure is reported above
        return 0

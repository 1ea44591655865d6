"""A run publishes a consistent warehouse: it builds into a copy and swaps the copy in at the end.

Each table is replaced in its own transaction, so a warehouse written in place is only as
consistent as the last finished asset: killed midway, `ingest.*` would be new while `stitch.*` and
`marts.*` are from the run before. `trackplan run` therefore
1. takes the run lock `<warehouse>.lock` (one trackplan writer at a time: a second run or a
   `forget` is refused with the holder's pid), checkpoints the warehouse and
   copies it to `<warehouse>.building`: a reflink where the file system has one (btrfs, XFS,
   bcachefs, ZFS: O(1) and no extra space until a block is rewritten), else copy_file_range (in
   the kernel), else a plain copy;
2. materializes every asset into that copy;
3. records the run in `ingest.run_log` of the copy (its id, days, which assets it built and which
   it did not, failed steps and blocking checks: `complete` or `incomplete`), and
4. renames the copy over the warehouse (`os.replace`: atomic on one file system).

A kill before step 4 leaves the warehouse exactly as the last published run left it (the copy is
removed by the next run), and none of the killed run's rows reach `quality.check_results`; after
step 4 the whole run is there. Readers (report, review, a notebook opening it read-only) see one
run or the other, never a mix. A run whose assets did not all build (a step failed, a blocking
check stopped the marts) is published and recorded as `incomplete` with the tables it left from
an earlier run; the next run rebuilds them.

Runs Dagster launches itself (the UI of `make dev`, the schedule, `dg.materialize`) get the same
guarantee through the Warehouse resource (pipelines.resources): it opens the build at the start of
the run and records and publishes it at the end (`publish_dagster_run`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .durable import fsync_path
from .warehouse import MEMORY_LIMIT, connect, open_file

RUN_LOG_DDL = """
create schema if not exists ingest;
create table if not exists ingest.run_log (
    run_id varchar not null, started_at timestamp not null, finished_at timestamp not null,
    first_day date, last_day date, status varchar not null, built varchar[], not_built varchar[],
    failed varchar[], plan_version varchar
);
"""


class RunError(RuntimeError):
    """A run (or a forget) cannot start or publish: the message says why, naming the file or holder."""

    user_error = True  # the CLI prints the message as its one line
    exit_code = 3


def lock_path(warehouse: Path | str) -> Path:
    return Path(f"{warehouse}.lock")


def building_path(warehouse: Path | str) -> Path:
    return Path(f"{warehouse}.building")


@contextmanager
def run_lock(warehouse: Path | str, what: str):
    """Hold `<warehouse>.lock` (flock: released by the kernel even on a kill) while `what` runs."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only folder or file system: nothing can be written there
        raise RunError(f"{warehouse}: cannot be written ({exc.strerror}: {path})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
            raise RunError(f"{warehouse}: locked by {holder}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"trackplan {what} (PID {os.getpid()}) since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC\n".encode(),
            0,
        )
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _stamp(path: Path) -> tuple | None:
    """What tells us the warehouse file changed: inode, size, mtime, and whether it has a WAL."""
    if not path.exists():
        return None
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, Path(f"{path}.wal").exists()


@dataclass
class Build:
    """A copy of the warehouse that a run writes; `publish` swaps it in."""

    warehouse: Path
    path: Path
    started_at: dt.datetime
    stamp: tuple | None
    published: bool = False
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def record(
        self,
        run_id: str,
        days: list[str],
        built: list[str],
        not_built: list[str],
        failed: list[str],
        plan_version: str | None,
    ) -> str:
        """Write the run's row of ingest.run_log into the copy; return its status."""
        status = "complete" if not not_built and not failed else "incomplete"
        con = open_file(self.path)  # (the run's tables are there; only the run log's DDL is needed)
        try:
            con.execute(RUN_LOG_DDL)
            con.execute(
                "insert into ingest.run_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    self.started_at,
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    days[0] if days else None,
                    days[-1] if days else None,
                    status,
                    sorted(built),
                    sorted(not_built),
                    sorted(failed),
                    plan_version,
                ],
            ).fetchall()
            con.execute("checkpoint").fetchall()  # everything in the file itself: no WAL travels with it
        finally:
            con.close()
        self.run_id = run_id
        return status

    def publish(self) -> None:
        """Swap the copy in, unless someone else wrote to the warehouse since it was copied."""
        if _stamp(self.warehouse) != self.stamp:
            keep = Path(f"{self.warehouse}.unpublished-{self.run_id or 'run'}")
            os.replace(self.path, keep)
            raise RunError(
                f"{self.warehouse}: changed by another process during the run; nothing published, "
                f"this run's warehouse is kept at {keep}"
            )
        if Path(f"{self.path}.wal").exists():  # (record() checkpointed: a WAL here would be a defect)
            raise RunError(f"{self.path}.wal: the built warehouse still has a write-ahead log; not published")
        os.replace(self.path, self.warehouse)
        self.published = True


FICLONE = 0x40049409  # ioctl: share the source's extents (Linux: btrfs, XFS with reflink, bcachefs, ZFS 2.2+)
# copy_file_range failing for these means "not here" (another file system, an old kernel): copy otherwise
_NO_RANGE_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF, errno.EPERM}


def _reflink(fin, fout) -> bool:
    try:
        fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        return True
    except OSError:  # EOPNOTSUPP / EXDEV / EINVAL: no reflink here
        return False


def _copy_range(fin, fout) -> bool:
    """The whole file by copy_file_range: in the kernel (no user-space buffer; on NFS, CIFS or XFS a
    copy on the server or by shared extents). False, with nothing written, where it is not available."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:  # not Linux
        return False
    size = os.fstat(fin.fileno()).st_size
    done = 0
    try:
        while done < size:
            n = copy(fin.fileno(), fout.fileno(), min(size - done, 1 << 30), done, done)
            if n == 0:  # a file system that says nothing (e.g. some FUSE): copy otherwise
                break
            done += n
    except OSError as exc:
        if exc.errno not in _NO_RANGE_COPY:
            raise
        done = -1
    if done == size:
        return True
    os.ftruncate(fout.fileno(), 0)
    return False


def clone(src: Path, dst: Path) -> str:
    """Copy `src` to `dst`, the cheapest way the file system has, and say which: a reflink
    (copy-on-write, O(1) whatever the warehouse's size), else copy_file_range (in the kernel), else
    an ordinary copy (shutil: sendfile)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if _reflink(fin, fout):
            return "reflink"
        if _copy_range(fin, fout):
            return "copy_file_range"
    shutil.copyfile(src, dst)
    return "copy"


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.tmp", ignore_errors=True)


def compact(warehouse: Path | str) -> None:
    """Rewrite the warehouse into a new file and swap it in: nothing deleted survives in the file.

    DuckDB deletes a row by marking it in its row group's version info; the row's bytes stay in
    their block until a checkpoint rewrites that row group, which it does only for row groups it
    merges. After `forget`, the erased person's message ids, devices and raw lines could still be
    read from the file (measured: every one of a person's 18 message ids, in plain text). COPY FROM
    DATABASE writes every live row, schema, view and constraint into the fresh blocks of a new file,
    which replaces the old one atomically (os.replace), so a reader sees the warehouse before or
    after, never a half-written one. The caller holds the run lock and has closed its connections
    (a DuckDB file is opened by one process, and a second handle in this one would be refused).
    Also removes a copy left by a killed run (`<warehouse>.building`), which holds the same rows."""
    path = Path(warehouse)
    tmp = Path(f"{path}.compact")
    _remove(tmp)  # (left by a compaction that was killed)
    _remove(building_path(path))
    from tracking_plan.validate import lit

    try:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": f"{tmp}.tmp"})
        try:
            # (no DuckDB progress bar: at 1M events the copy takes ~4 s, and the bar landed amid the output)
            con.execute("set enable_progress_bar = false")
            con.execute(f"attach {lit(str(path))} as src (read_only)")
            con.execute(f"attach {lit(str(tmp))} as dst")
            con.execute("copy from database src to dst")
            con.execute("detach dst")  # (checkpoints it: everything in the file, no write-ahead log)
            con.execute("detach src")
        finally:
            con.close()
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)  # the warehouse stays as it was
        raise
    fsync_path(path.parent)
    shutil.rmtree(f"{tmp}.tmp", ignore_errors=True)


@contextmanager
def building(warehouse: Path | str):
    """Lock the warehouse and give a Build (a copy of it) to write; remove the copy unless published."""
    warehouse = Path(warehouse)
    with run_lock(warehouse, "run"):
        path = building_path(warehouse)
        _remove(path)  # a copy left by a killed run
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if warehouse.exists():
            # opening it fails, naming the holder, when another process has the warehouse open: a file
            # someone may be writing is never copied; then a checkpoint if there is a write-ahead log
            # (the copy must not need it). Opened without the DDL: nothing is written to it here.
            con = open_file(warehouse)
            try:
                if Path(f"{warehouse}.wal").exists():
                    con.execute("checkpoint").fetchall()
            finally:
                con.close()
            clone(warehouse, path)
        else:
            warehouse.parent.mkdir(parents=True, exist_ok=True)
        build = Build(warehouse, path, started, _stamp(warehouse))
        try:
            yield build
        finally:
            if not build.published:
                _remove(path)
            shutil.rmtree(f"{path}.tmp", ignore_errors=True)


def publish_dagster_run(build: Build, context) -> str:
    """Record and publish a run Dagster launched itself (the UI, a schedule, `dg.materialize`), from
    its own event log: the assets it selected, those it materialized, its failed steps and failed
    blocking checks (as `trackplan run` records them). Its status."""
    from dagster import DagsterEventType

    run = context.dagster_run
    instance = context.instance
    kinds = {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }
    built, failed = set(), []
    for rec in instance.get_records_for_run(run.run_id, of_type=kinds).records:
        ev = rec.event_log_entry.dagster_event
        if ev is None:
            continue
        if ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            built.add(".".join(ev.asset_key.path))
        elif ev.event_type == DagsterEventType.STEP_FAILURE:
            failed.append(ev.step_key)
        else:
            data = ev.event_specific_data
            if not data.passed and data.severity.value == "ERROR":
                failed.append(f"{data.asset_key.to_user_string()}:{data.check_name}")
    wanted = {".".join(k.path) for k in (run.asset_selection or ())} or set(built)
    tags = run.tags or {}
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or first
    status = build.record(
        run.run_id, [d for d in (first, last) if d], sorted(built & wanted), sorted(wanted - built), failed, None
    )
    build.publish()
    return status


def record_nothing_new(warehouse: Path | str, days: list[str], plan_version: str | None) -> str | None:
    """Record a run that found nothing new to ingest (a partition without files, or every object as
    the manifest has it): one row of ingest.run_log, written in place in one transaction under the run
    lock (the tables are untouched, so there is nothing to publish). The status and the tables not
    built carry over from the run before: the warehouse is still what that run left. Its run id, or
    None when there is no warehouse yet (nothing is created for a run that did nothing)."""
    import uuid

    warehouse = Path(warehouse)
    if not warehouse.exists():
        return None
    run_id = f"nothing-new-{uuid.uuid4()}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with run_lock(warehouse, "run"):
        con = connect(warehouse)
        try:
            con.execute(RUN_LOG_DDL)
            before = last_run(con)
            status = before["status"] if before else "complete"
            not_built = list(before["not_built"] or []) if before else []
            con.execute(
                "insert into ingest.run_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    now,
                    now,
                    min(days, default=None),
                    max(days, default=None),
                    status,
                    [],
                    not_built,
                    [],
                    plan_version,
                ],
            ).fetchall()
        finally:
            con.close()
    return run_id


def last_run(con) -> dict | None:
    """The newest row of ingest.run_log (what the warehouse shows), or None before the first run."""
    try:
        row = con.execute(
            "select run_id, started_at, finished_at, first_day, last_day, status, not_built, failed "
            "from ingest.run_log order by finished_at desc limit 1"
        ).fetchall()
    except Exception:  # noqa: BLE001 - a warehouse from before the run log
        return None
    if not row:
        return None
    keys = ("run_id", "started_at", "finished_at", "first_day", "last_day", "status", "not_built", "failed")
    return dict(zip(keys, row[0], strict=True))

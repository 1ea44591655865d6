"""Crash-safe replacement of folders of a Parquet layer (the Spark ingest's day swap).

A run writes its new folders (one per table and day) under `<root>/_staging/<run>/`, then:

1. commit: writes `<run>/_COMMIT.json` (written under a temporary name, then renamed: it appears whole
   or not at all), naming each unit (target folder, new folder, the new folder's files). Before this
   point the run has not touched a layer: a crash leaves the old days, and the staging is discarded.
2. swap, unit by unit: the target's old files are moved to `<run>/_old/<unit>/` (one directory rename
   when nothing of the new folder is there yet), then the new folder is moved in (one rename when the
   target is absent). A folder with no new rows is only moved away (that day is removed).
3. the run's staging folder is deleted: the old days first, the marker last.

`recover(fs, root)`, called at the start of the next ingest, finishes every committed swap (roll
forward, steps 2 and 3 again) and discards every uncommitted staging folder. Step 2 is idempotent and
works file by file from the marker's list: a file of the target that the list names is new, any other
is old. So it also finishes a folder rename that an object store (S3A, GCS) did file by file and
stopped half-way (some files copied, some not): what counts is that each file's copy is atomic, which
object stores give. Part files have unique names (Spark writes a job id into each), so old and new
never share a name.

One writer at a time: `root_lock` holds `<root>.lock` (the DuckDB warehouse's run lock, beside a local
root) for a Spark run (the `SparkEngine` resource, for the whole Dagster run) and for a forget, so
neither undoes the other (a run that read the events before an erasure would write the person back).
A root on HDFS or an object store has no such lock here: run one writer at a time there by schedule.

What this does not give: isolation. A reader during a swap can see a day missing (between the two
renames of a unit) or, on an object store, partly old and partly new; after a crash the layer is
consistent again only once the next ingest has recovered. One writer at a time: `recover` discards
the staging of a run still writing. Readers that need snapshots need a table format (Delta, Iceberg).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid

STAGING = "_staging"
MARKER = "_COMMIT.json"


class HadoopFS:
    """The few filesystem steps the swap takes, through Hadoop's FileSystem (file:, hdfs:, s3a:,
    abfss:, gs:). Each is one method, so a test can make any of them fail."""

    def __init__(self, spark, path: str):
        self.jvm = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.fs = self.jvm.org.apache.hadoop.fs.Path(path).getFileSystem(conf)

    def _p(self, path: str):
        return self.jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._p(path)))

    def is_dir(self, path: str) -> bool:
        return self.exists(path) and bool(self.fs.getFileStatus(self._p(path)).isDirectory())

    def children(self, path: str) -> list[str]:
        """The names directly under `path` (none when it does not exist)."""
        if not self.exists(path):
            return []
        return sorted(str(s.getPath().getName()) for s in self.fs.listStatus(self._p(path)))

    def files(self, path: str) -> list[str]:
        """The files under `path`, recursively, as paths relative to it (none when it does not exist)."""
        if not self.exists(path):
            return []
        base = str(self.fs.makeQualified(self._p(path)).toString()).rstrip("/") + "/"
        listing = self.fs.listFiles(self._p(path), True)
        out = []
        while listing.hasNext():
            out.append(str(listing.next().getPath().toString())[len(base) :])
        return sorted(out)

    def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst` (which must not exist), creating dst's parent folder."""
        self.fs.mkdirs(self._p(dst).getParent())
        if not self.fs.rename(self._p(src), self._p(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def delete(self, path: str) -> None:
        self.fs.delete(self._p(path), True)

    def write_text(self, path: str, text: str) -> None:
        out = self.fs.create(self._p(path), True)
        try:
            out.write(bytearray(text.encode()))
        finally:
            out.close()

    def read_text(self, path: str) -> str:
        stream = self.fs.open(self._p(path))
        try:
            return bytes(stream.readAllBytes()).decode()
        finally:
            stream.close()


def staging_dir(root: str) -> str:
    """A new run's staging folder under `root`."""
    return f"{root.rstrip('/')}/{STAGING}/{uuid.uuid4().hex}"


def commit(fs, staging: str, units: list[tuple[str, str]]) -> None:
    """Step 1: record the units (target folder, new folder) with the new folders' files; from here on
    the swap is finished by `apply` or, after a crash, by the next run's `recover`."""
    record = [{"target": t, "new": n, "files": fs.files(n)} for t, n in units]
    tmp = f"{staging}/{MARKER}.tmp"
    fs.write_text(tmp, json.dumps({"units": record}))
    fs.rename(tmp, f"{staging}/{MARKER}")


def _finish(fs, unit: dict, old: str) -> None:
    """Step 2 for one unit, from whatever state a crash left it in."""
    target, new, files = unit["target"], unit["new"], set(unit["files"])
    present = fs.files(target)
    if present and not files.intersection(present) and not fs.exists(old):
        fs.rename(target, old)  # the old folder away in one rename
    else:
        for f in present:
            if f in files:
                continue
            if fs.exists(f"{old}/{f}"):
                fs.delete(f"{target}/{f}")  # copied away already (a rename stopped before its delete)
            else:
                fs.rename(f"{target}/{f}", f"{old}/{f}")
    if not fs.exists(new):
        return
    if not fs.exists(target):
        fs.rename(new, target)  # the new folder in, in one rename
        return
    for f in fs.files(new):  # a move stopped half-way: the rest, file by file
        if f in files and fs.exists(f"{target}/{f}"):
            fs.delete(f"{new}/{f}")  # copied already (an object store's rename stopped before the delete)
        else:
            fs.rename(f"{new}/{f}", f"{target}/{f}")


def apply(fs, staging: str) -> int:
    """Steps 2 and 3 for a committed staging folder; the number of units."""
    units = json.loads(fs.read_text(f"{staging}/{MARKER}"))["units"]
    for i, unit in enumerate(units):
        _finish(fs, unit, f"{staging}/_old/{i}")
    for name in fs.children(staging):  # the old days and any leftover first, the marker last
        if name != MARKER:
            fs.delete(f"{staging}/{name}")
    fs.delete(f"{staging}/{MARKER}")
    fs.delete(staging)
    return len(units)


def recover(fs, root: str) -> list[str]:
    """Finish the committed swaps a crashed run left under `root` and discard the uncommitted ones;
    one line per staging folder found, saying which (for the run's log)."""
    base = f"{root.rstrip('/')}/{STAGING}"
    done = []
    for name in fs.children(base):
        staging = f"{base}/{name}"
        if fs.exists(f"{staging}/{MARKER}"):
            try:
                n = apply(fs, staging)
            except (ValueError, KeyError) as e:  # a marker that is not ours: stop, touch nothing more
                raise RuntimeError(f"{staging}/{MARKER}: not a swap record ({e})") from None
            done.append(f"{staging}: an interrupted swap finished ({n} folders)")
        else:
            fs.delete(staging)
            done.append(
                f"{staging}: a staging folder without a commit record discarded (a run stopped before "
                "its commit, which leaves the layers as they were, or after its swap)"
            )
    return done


def replace(fs, staging: str, units: list[tuple[str, str]]) -> None:
    """Commit, then swap: each target folder of `units` ends up holding exactly its new folder's
    files (or is removed when there is no new folder), whatever crash happens after `commit`."""
    commit(fs, staging, units)
    apply(fs, staging)


def _local_path(uri: str) -> str:
    """A file: URI as the plain path DuckDB's ingest records (other schemes are kept as they are)."""
    if uri.startswith("file:"):
        rest = uri[len("file:") :]
        return "/" + rest.lstrip("/")
    return uri


def _is_local(path: str) -> bool:
    """A plain path or a file: URI (not hdfs:, s3a:, abfss:, gs:...)."""
    return not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) or path.startswith("file:")


@contextlib.contextmanager
def root_lock(root: str, what: str):
    """Hold the lock of a local root (`<root>.lock`, flock: released even on a kill) while `what` runs;
    a root on HDFS or an object store (any scheme but file:) is not locked (see the module's note)."""
    if not _is_local(root):
        yield
        return
    from pipelines.publish import run_lock

    with run_lock(_local_path(root).rstrip("/"), what):
        yield

"""The Spark ingest's day swap loses no day to a crash, and the next run finishes it (issue 20).

pipelines/spark/swap.py commits a run's new day folders (a marker naming them and their files), then
moves each old day away and the new one in. A crash is simulated at every filesystem step (each call
of a step is made to raise in turn): before the commit the layer must be untouched; after it, the
next run's `recover` must leave exactly the new days, the untouched days kept, and nothing staged.
Twice: through Hadoop's FileSystem on local files (what the ingest runs; needs Spark's JVM), and
through an object-store double whose folder rename is a copy of each file then a delete of each
(S3A's), which can stop between any two of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipelines.spark import swap
from pipelines.spark.session import unavailable

# the layer before the run, and the run's new folders: d1 has no new rows (removed), d2/d3 replaced,
# d4 new, d5 not in the run (kept); two tables, as the ingest swaps three
OLD = {"d1": ["part-00000-aaa.parquet"], "d2": ["part-00000-aaa.parquet", "part-00001-aaa.parquet"], "d3": ["p-aaa"]}
OLD |= {"d5": ["part-00000-aaa.parquet"]}
NEW = {"d2": ["part-00000-bbb.parquet"], "d3": ["p-bbb", "p-bbb2"], "d4": ["part-00000-bbb.parquet"]}
TABLES = ("ingest/events", "ingest/quarantine")
RUN_DAYS = ("d1", "d2", "d3", "d4")


def _setup(tmp: Path) -> tuple[str, str, list[tuple[str, str]]]:
    root, staging = tmp / "layers", tmp / "layers" / swap.STAGING / "run1"
    for table in TABLES:
        for base, days, tag in ((root / table, OLD, "old"), (staging / table, NEW, "new")):
            for day, names in days.items():
                for name in names:
                    path = base / f"partition_date={day}" / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(f"{tag} {table} {day} {name}")
    units = [(f"{root}/{t}/partition_date={d}", f"{staging}/{t}/partition_date={d}") for t in TABLES for d in RUN_DAYS]
    return str(root), str(staging), units


def _layer(root: str) -> dict:
    """{table: {day: {file: content}}} of the layer (the staging aside)."""
    out = {}
    for table in TABLES:
        base = Path(root) / table
        days = {}
        for day_dir in sorted(base.glob("partition_date=*")) if base.exists() else []:
            files = {
                p.name: p.read_text() for p in sorted(day_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")
            }
            if files:
                days[day_dir.name.split("=", 1)[1]] = files
        out[table] = days
    return out


def _expected(before: bool) -> dict:
    days = {d: n for d, n in OLD.items()} if before else {d: OLD[d] for d in OLD if d not in RUN_DAYS} | NEW
    tag = "old" if before else None
    return {
        t: {
            d: {n: f"{tag or ('old' if d not in RUN_DAYS else 'new')} {t} {d} {n}" for n in names}
            for d, names in sorted(days.items())
        }
        for t in TABLES
    }


class Crash(Exception):
    pass


class Crashing:
    """Wraps a filesystem: the `at`-th call of a mutating step (rename, delete, write_text, and the
    object store's copy/remove of one file) raises before doing anything."""

    STEPS = ("rename", "delete", "write_text", "copy_one", "remove_one")

    def __init__(self, fs, at: int | None):
        self.fs, self.at, self.calls = fs, at, 0
        if hasattr(fs, "crash"):
            fs.crash = self._tick

    def _tick(self, what: str) -> None:
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            raise Crash(f"crash at step {self.calls} ({what})")

    def __getattr__(self, name):
        attr = getattr(self.fs, name)
        if name not in ("rename", "delete", "write_text") or hasattr(self.fs, "crash"):
            return attr

        def step(*args):
            self._tick(f"{name} {args}")
            return attr(*args)

        return step


class ObjectStore:
    """A local folder behind an object store's semantics: a folder is its files; renaming a folder
    copies every file, then deletes every source (S3A's rename), each copy atomic on its own."""

    def __init__(self):
        self.crash = lambda what: None

    def exists(self, path):
        return os.path.exists(path)

    def children(self, path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def files(self, path):
        if os.path.isfile(path):
            return [""]
        return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file())

    def _copy(self, src, dst):
        self.crash(f"copy {src}")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst + ".uploading")
        os.replace(dst + ".uploading", dst)  # a PUT appears whole

    def _remove(self, path):
        self.crash(f"remove {path}")
        os.remove(path)

    def rename(self, src, dst):
        if os.path.exists(dst):
            raise OSError(f"{dst} exists")
        if os.path.isfile(src):
            self._copy(src, dst)
            self._remove(src)
            return
        names = self.files(src)
        for f in names:
            self._copy(f"{src}/{f}", f"{dst}/{f}")
        for f in names:
            self._remove(f"{src}/{f}")
        shutil.rmtree(src, ignore_errors=True)  # an object store has no empty folders

    def delete(self, path):
        for f in self.files(path) if os.path.isdir(path) else []:
            self._remove(f"{path}/{f}")
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            self._remove(path)

    def write_text(self, path, text):
        self.crash(f"put {path}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text(text)

    def read_text(self, path):
        return Path(path).read_text()


def _crash_matrix(tmp_path: Path, make_fs) -> int:
    """Crash at every step of a swap in turn; after each, the layer is the old one (crash before the
    commit) or recoverable to exactly the new one; the number of steps."""
    root, staging, units = _setup(tmp_path / "clean")
    counting = Crashing(make_fs(root), None)
    swap.replace(counting, staging, units)
    assert _layer(root) == _expected(before=False)
    assert not os.path.exists(f"{root}/{swap.STAGING}/run1")
    steps = counting.calls
    assert steps >= 2 * len(units)  # the test crashes somewhere inside every unit's swap
    committed_at = None  # the first crash point after which the marker exists (the run is committed)
    for at in range(1, steps + 1):
        root, staging, units = _setup(tmp_path / f"crash{at}")
        fs = Crashing(make_fs(root), at)
        with pytest.raises(Crash):
            swap.replace(fs, staging, units)
        marker = os.path.exists(f"{staging}/{swap.MARKER}")
        if committed_at is None and marker:
            committed_at = at
        if committed_at is None:
            assert _layer(root) == _expected(before=True), f"step {at}: a layer changed before the commit"
        notes = swap.recover(make_fs(root), root)  # the next run
        assert len(notes) == 1 and (not marker or "finished" in notes[0]), notes
        want = _expected(before=committed_at is None)
        assert _layer(root) == want, f"crash at step {at}: the layer after recovery differs"
        assert os.listdir(f"{root}/{swap.STAGING}") == []
        assert swap.recover(make_fs(root), root) == []  # nothing left to do
    assert committed_at is not None
    return steps


def test_every_crash_of_an_object_store_swap_is_recovered(tmp_path):
    steps = _crash_matrix(tmp_path, lambda root: ObjectStore())
    assert steps > 30  # file by file: many more crash points than folder renames


spark_only = pytest.mark.skipif(unavailable() is not None, reason=f"Hadoop FileSystem: {unavailable()}")


@spark_only
@pytest.mark.xdist_group("spark")
def test_every_crash_of_a_hadoop_filesystem_swap_is_recovered(spark, tmp_path):
    _crash_matrix(tmp_path, lambda root: swap.HadoopFS(spark, root))


@spark_only
@pytest.mark.xdist_group("spark")
def test_the_spark_ingest_recovers_before_it_reads(spark, tmp_path, monkeypatch):
    """ingest_landing finishes a crashed run's committed swap first (its days are then what it reads
    the messageIds of), and discards an uncommitted staging folder."""
    from pipelines.spark import ingest

    root, staging, units = _setup(tmp_path)
    swap.commit(swap.HadoopFS(spark, root), staging, units)  # a run that crashed right after its commit
    Path(root, swap.STAGING, "run2", "ingest").mkdir(parents=True)  # and one that crashed while writing
    seen = []

    def listing(*args, **kwargs):  # the ingest's first read: what the layer holds then, and stop
        seen.append((_layer(root), os.listdir(f"{root}/{swap.STAGING}")))
        raise Crash("stop here")

    monkeypatch.setattr(ingest, "landing_entries", listing)
    with pytest.raises(Crash):
        ingest.ingest_landing(spark, None, str(tmp_path / "landing"), root)
    assert seen == [(_expected(before=False), [])]

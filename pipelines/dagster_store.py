"""Dagster's SQLite storage with one connection per database file instead of one per event.

Dagster's `SqliteEventLogStorage` opens a new SQLAlchemy engine and SQLite connection for every
event it stores, commits it with an fsync and closes it (which checkpoints the WAL): a run of ~60
steps stores ~330 events, and a small run spent more time there (21 s of 65 s under cProfile) than
in DuckDB. This subclass keeps each file's connection open for the life of the instance (closed by
`dispose`) in WAL mode with `synchronous = NORMAL` (a commit is atomic and consistent; only the last
transactions before a power cut may be lost, never corrupt the file). The files, schema and layout
are Dagster's own: `dagster dev` (plain SQLite storage) reads them unchanged.

Each storage also checks its Alembic revision when it opens (the runs, schedules and event-log
index databases, and each run's own event-log shard, which is also stamped when new), and Alembic
reads every one of Dagster's ~90 migration scripts each time: ~1 CPU-s of a small run.
`cache_alembic_scripts` keeps that script directory once per process (Dagster's own, nothing else's).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy.pool import StaticPool

KEEP = 4  # open files at most: the index and the shards of the runs in flight
log = logging.getLogger(__name__)


def cache_alembic_scripts() -> bool:
    """Let Alembic read Dagster's migration scripts once per process instead of once per storage
    opened or stamped: `ScriptDirectory.from_config`, as `dagster._core.storage.sql` and
    `alembic.command` call it, returns one kept ScriptDirectory for Dagster's script location (the
    scripts are files of the installed package: they do not change while the process runs); any
    other location is read as before. Relies on Dagster internals: when they are not as expected (a
    Dagster or Alembic upgrade), nothing is changed and the storages read the scripts as they did,
    with a debug line. True if the scripts are kept."""
    try:
        import alembic.command as alembic_command
        import dagster._core.storage.sql as dagster_sql
        from alembic.script import ScriptDirectory

        location = dagster_sql.ALEMBIC_SCRIPTS_LOCATION
        if getattr(dagster_sql.ScriptDirectory, "_trackplan_cached", False):
            return True  # done already in this process
        if dagster_sql.ScriptDirectory is not ScriptDirectory or alembic_command.ScriptDirectory is not ScriptDirectory:
            raise TypeError("ScriptDirectory is not alembic's in dagster._core.storage.sql or alembic.command")
        if not callable(getattr(dagster_sql, "check_alembic_revision", None)):
            raise TypeError("no dagster._core.storage.sql.check_alembic_revision")
    except (ImportError, AttributeError, TypeError) as exc:
        log.debug("Dagster's migration scripts are read per storage: %s", exc)
        return False
    kept: dict[tuple, ScriptDirectory] = {}

    class KeptScriptDirectory(ScriptDirectory):
        _trackplan_cached = True

        @classmethod
        def from_config(cls, config):
            key = (
                config.get_main_option("script_location"),
                config.get_main_option("version_locations"),
                config.get_main_option("file_template"),
            )
            if key[0] != location:
                return ScriptDirectory.from_config(config)
            if key not in kept:
                kept[key] = ScriptDirectory.from_config(config)
            return kept[key]

    dagster_sql.ScriptDirectory = KeptScriptDirectory
    alembic_command.ScriptDirectory = KeptScriptDirectory
    return True


def _fast_pragmas(dbapi_con, _record) -> None:
    cur = dbapi_con.cursor()
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` keeping one open connection per shard (under its own lock), and
    remembering what its schema probes found present. Dagster asks, for every asset event, whether
    the asset-key table has its index columns, and for every asset-check event whether the checks
    table exists (`has_table` opens a new engine and connection each time): a run of ~500 events
    spent ~0.5 s re-reading the schema under cProfile (without it, less than the noise of a small
    run's total CPU, ±0.15 CPU-s). A table, column or completed data migration, once
    there, stays (Dagster's migrations only add them); a `wipe` forgets what was found."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._present: set[tuple[str, str]] = set()  # ("table" | "column" | "index", name) found there
        super().__init__(base_dir, inst_data=inst_data)

    def _probe(self, kind: str, name: str, look) -> bool:
        if (kind, name) in self._present:
            return True
        found = bool(look())
        if found:
            self._present.add((kind, name))
        return found

    def has_table(self, table_name: str) -> bool:
        return self._probe("table", table_name, lambda: super(PooledSqliteEventLogStorage, self).has_table(table_name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        return self._probe(
            "column",
            column_name,
            lambda: super(PooledSqliteEventLogStorage, self)._has_asset_key_col_on_connection(conn, column_name),
        )

    def has_secondary_index(self, name: str) -> bool:
        return self._probe("index", name, lambda: super(PooledSqliteEventLogStorage, self).has_secondary_index(name))

    def wipe(self) -> None:
        self._present.clear()
        super().wipe()

    def _engine(self, shard: str):
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=StaticPool,  # one DBAPI connection, reused (calls are serialized by _db_lock)
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _fast_pragmas)
            self._engines[shard] = engine
            while len(self._engines) > KEEP:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (same files under the same `base_dir`) with the pooled event log."""

    def __init__(self, base_dir: str, inst_data=None):
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        Path(config_value["base_dir"]).mkdir(parents=True, exist_ok=True)
        return cls(inst_data=inst_data, **config_value)


def pooled_instance(home: Path):
    """The Dagster instance of `home` (its dagster.yaml, if any), with the pooled SQLite storage when
    it uses Dagster's default SQLite storage (another storage, e.g. Postgres, is left as configured),
    and, when it uses Dagster's default local compute-log manager, none: that one starts two `tail -F`
    processes per step to capture output our assets do not print (the run reports through the
    progress bar and its events); a compute-log manager set in dagster.yaml is kept. Without a
    dagster.yaml, Dagster's usage statistics are off too."""
    import yaml
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import ConfigurableClassData

    cache_alembic_scripts()
    ref = InstanceRef.from_dir(str(home))
    data = ref.storage_data
    if data is not None and (data.module_name, data.class_name) == (
        "dagster._core.storage.sqlite_storage",
        "DagsterSqliteStorage",
    ):
        base = yaml.safe_load(data.config_yaml)["base_dir"]
        ref = ref._replace(
            storage_data=ConfigurableClassData(__name__, "PooledSqliteStorage", yaml.dump({"base_dir": base}))
        )
    logs = ref.compute_logs_data
    configured = (home / "dagster.yaml").exists()
    if logs is not None and logs.class_name == "LocalComputeLogManager" and not configured:
        ref = ref._replace(
            compute_logs_data=ConfigurableClassData(
                "dagster._core.storage.noop_compute_log_manager", "NoOpComputeLogManager", yaml.dump({})
            )
        )
    if not configured:
        # Dagster's usage statistics off unless dagster.yaml says otherwise: they are logged to
        # logs/event.log twice per step, each with a run-storage query (~0.2 CPU-s a run), for the
        # Dagster UI to send later, and a new home printed Dagster's welcome banner into the run's output
        ref = ref._replace(settings={**(ref.settings or {}), "telemetry": {"enabled": False}})
    return DagsterInstance.from_ref(ref)

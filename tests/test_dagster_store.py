"""pipelines/dagster_store.py: Dagster's migration scripts read once per process, and only Dagster's;
a Dagster whose internals differ keeps its own (slower) way."""

from __future__ import annotations

import logging

import alembic.command
import dagster._core.storage.sql as dagster_sql
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

import pipelines.dagster_store as store


@pytest.fixture()
def unpatched(monkeypatch):
    """Alembic's own ScriptDirectory where Dagster and Alembic look it up (restored after the test)."""
    monkeypatch.setattr(dagster_sql, "ScriptDirectory", ScriptDirectory)
    monkeypatch.setattr(alembic.command, "ScriptDirectory", ScriptDirectory)


def _dagster_config() -> Config:
    from dagster._core.storage.runs.sqlite import sqlite_run_storage

    return dagster_sql.get_alembic_config(sqlite_run_storage.__file__)


def test_dagster_scripts_are_read_once(unpatched):
    assert store.cache_alembic_scripts()
    cfg = _dagster_config()
    first = dagster_sql.ScriptDirectory.from_config(cfg)
    assert alembic.command.ScriptDirectory.from_config(cfg) is first  # kept: stamp and check share it
    # the same head as Alembic reading the scripts itself (the oracle: no cache)
    assert first.as_revision_number("head") == ScriptDirectory.from_config(cfg).as_revision_number("head")
    assert store.cache_alembic_scripts()  # a second call changes nothing


def test_other_script_locations_are_read_as_before(unpatched, tmp_path):
    store.cache_alembic_scripts()
    (tmp_path / "versions").mkdir()
    (tmp_path / "script.py.mako").write_text("")
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path))
    a, b = (dagster_sql.ScriptDirectory.from_config(cfg) for _ in range(2))
    assert a is not b and a.dir == str(tmp_path)


def test_unexpected_dagster_internals_leave_them_alone(monkeypatch, caplog):
    class Other:  # what a Dagster upgrade might have there instead
        pass

    monkeypatch.setattr(dagster_sql, "ScriptDirectory", Other)
    with caplog.at_level(logging.DEBUG, logger="pipelines.dagster_store"):
        assert not store.cache_alembic_scripts()
    assert dagster_sql.ScriptDirectory is Other
    assert any("read per storage" in r.getMessage() for r in caplog.records)


def test_a_pooled_instance_opens_and_stamps_with_the_kept_scripts(unpatched, tmp_path):
    head = ScriptDirectory.from_config(_dagster_config()).as_revision_number("head")
    for _ in range(2):  # a new home (created, stamped), then the same one again (checked)
        inst = store.pooled_instance(tmp_path)
        try:
            with inst.event_log_storage._connect("run-x") as conn:  # a run's own shard
                assert dagster_sql.check_alembic_revision(_dagster_config(), conn) == (head, head)
            assert inst.get_runs() == []
        finally:
            inst.dispose()


def test_schema_probes_are_remembered_once_found(unpatched, tmp_path, monkeypatch):
    """The pooled event log answers Dagster's schema probes as Dagster's own storage does on the same
    files (the oracle), and reads the schema again only for what it has not found yet (or after a wipe)."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    inst = store.pooled_instance(tmp_path)
    try:
        pooled = inst.event_log_storage
        plain = SqliteEventLogStorage(pooled._base_dir)
        for probe in (
            lambda s: s.supports_asset_checks,
            lambda s: s.has_asset_key_index_cols(),
            lambda s: s.has_table("no_such_table"),
            lambda s: s.has_secondary_index("no_such_migration"),
        ):
            assert probe(pooled) == probe(plain)
        assert pooled.supports_asset_checks and pooled.has_asset_key_index_cols()
        reads = []
        real = SqliteEventLogStorage.has_table
        monkeypatch.setattr(SqliteEventLogStorage, "has_table", lambda s, t: reads.append(t) or real(s, t))
        assert pooled.supports_asset_checks and pooled.supports_asset_checks
        assert reads == []  # found before: not read again
        assert not pooled.has_table("no_such_table") and reads == ["no_such_table"]  # absent: asked each time
        before = len(reads)
        pooled.wipe()  # forgets what was found: the wipe's own probes read the schema again
        assert "asset_check_executions" in reads[before:] and pooled.supports_asset_checks
    finally:
        inst.dispose()


def test_usage_statistics_off_unless_dagster_yaml_says(unpatched, tmp_path):
    """A home without dagster.yaml: Dagster's telemetry off (nothing logged to logs/event.log); a
    dagster.yaml that turns it on is obeyed, as is the rest of what it sets."""
    bare, configured = tmp_path / "bare", tmp_path / "configured"
    configured.mkdir()
    (configured / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    for home, on in ((bare, False), (configured, True)):
        home.mkdir(exist_ok=True)
        inst = store.pooled_instance(home)
        try:
            assert inst.telemetry_enabled is on
        finally:
            inst.dispose()

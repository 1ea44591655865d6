"""Column-level lineage of the SQL models, and their transpilation to Snowflake, BigQuery and Spark."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import sqlglot

from models.dialects import DIALECTS, NATIVE, UntranslatableSQL, function_names
from pipelines.lineage import (
    all_lineage,
    dagster_metadata,
    model_lineage,
    render_lineage,
    transpile_model,
    transpile_models,
    warehouse_schema,
)
from pipelines.model_assets import load_models

MODELS = {m.table: m for m in load_models()}


@pytest.fixture(scope="module", autouse=True)
def _own_cache(tmp_path_factory):
    """A lineage cache of this module's own: the tests read lineage computed here, not a user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        yield


@pytest.fixture(scope="module")
def lineage_all():
    return all_lineage()


def test_every_model_column_has_lineage_that_exists(lineage_all):
    schema = warehouse_schema()
    assert set(lineage_all) == set(MODELS)
    for table, lin in lineage_all.items():
        assert list(lin) == list(MODELS[table].columns), table  # same columns, same order as the YAML
        for sources in lin.values():
            for src in sources:
                s, t, c = src.split(".")
                assert c in schema[s][t], f"{table}: {src} is not a column"


def test_known_lineage(lineage_all):
    cv = lineage_all["marts.customer_value"]
    assert cv["channel"] == ["staging.sessions.utm_source"]
    assert cv["spend"] == ["staging.marketing_costs.spend"]
    assert "staging.plan_settings.gross_margin" in cv["clv"] and "stitch.events.properties" in cv["clv"]
    act = lineage_all["marts.activation_cohorts"]
    assert act["activation_window_days"] == ["staging.plan_settings.activation_window_days"]
    assert act["cohort_week"] == ["stitch.events.timestamp"]
    fun = lineage_all["marts.funnel_conversion"]
    assert fun["event_name"] == ["staging.plan_funnel_steps.event_name"]
    assert fun["window_hours"] == ["staging.plan_funnels.window_hours"]
    # the recursive CTE is followed: step timings come from the events' timestamps
    assert fun["median_hours_from_previous"] == ["stitch.events.timestamp"]
    assert "stitch.events.page_path" in lineage_all["staging.sessions"]["landing_page"]


def test_deep_lineage_goes_through_other_models():
    deep = model_lineage("marts.customer_value", deep=True)
    assert "stitch.events.utm_source" in deep["channel"]
    assert not any(s.startswith("staging.sessions.") for srcs in deep.values() for s in srcs)


def test_render_text_and_json():
    text = render_lineage("marts.customer_value")
    assert text.splitlines()[0] == "marts.customer_value"
    assert any(line.split()[0] == "channel" and "staging.sessions.utm_source" in line for line in text.splitlines())
    doc = json.loads(render_lineage("marts.retention", format="json"))
    assert doc["table"] == "marts.retention" and "retained" in doc["columns"]
    with pytest.raises(ValueError):
        render_lineage("marts.retention", format="yaml")
    with pytest.raises(KeyError):
        model_lineage("marts.nope")


def test_dagster_metadata():
    md = dagster_metadata("marts.activation_cohorts")
    col = md["dagster/column_lineage"]
    assert isinstance(col, dg.TableColumnLineage)
    deps = col.deps_by_column["activation_window_days"]
    assert [(d.asset_key, d.column_name) for d in deps] == [
        (dg.AssetKey(["staging", "plan_settings"]), "activation_window_days")
    ]


# (table, dialect) pairs with no translation, with why: trackplan sql refuses them in one line
_KNOWN: dict[tuple[str, str], str] = {
    ("marts.activation_cohorts", "bigquery"): "median",
    ("marts.funnel_conversion", "bigquery"): "median",
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("table", sorted(MODELS))
def test_transpiles_strictly(table, dialect):
    if (table, dialect) in _KNOWN:
        with pytest.raises(UntranslatableSQL) as err:
            transpile_model(table, dialect)
        assert str(err.value).startswith(f"{table}: {_KNOWN[(table, dialect)]}() has no {dialect} translation")
        assert "\n" not in str(err.value)
        return
    out = transpile_model(table, dialect)
    # what we write parses back in the target dialect and still reads the same tables
    back = sqlglot.parse_one(out, read=dialect)
    tables = {(t.db, t.name) for t in back.find_all(sqlglot.exp.Table) if t.db}
    assert tables == set(MODELS[table].upstream())
    # and no DuckDB function is left for the target to reject (sqlglot would pass it through as is)
    assert not function_names(out, dialect) - NATIVE[dialect], function_names(out, dialect)


def test_transpile_models_every_dialect():
    for dialect in ("spark", "snowflake"):
        out = transpile_models(dialect)
        assert set(out) == set(MODELS) and all(out.values())
    with pytest.raises(UntranslatableSQL):
        transpile_models("bigquery")
    with pytest.raises(ValueError):
        transpile_models("nosuchsql")


def test_cli_sql_fails_in_one_line_naming_model_and_function():
    from typer.testing import CliRunner

    from trackplan.cli import app

    res = CliRunner().invoke(app, ["sql", "--dialect", "bigquery"])
    assert res.exit_code != 0
    assert "marts.activation_cohorts: median() has no bigquery translation" in res.output
    assert "Traceback" not in res.output
    ok = CliRunner().invoke(app, ["sql", "--dialect", "spark"])
    assert ok.exit_code == 0 and "-- staging.sessions" in ok.output and "to_minutes" not in ok.output.lower()


def test_cli_lineage_of_a_python_mart_falls_back_to_the_asset_graph():
    from typer.testing import CliRunner

    from trackplan.cli import app

    res = CliRunner().invoke(app, ["lineage", "marts.initiative_roi", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["upstream"][0] == ["marts.experiment_results", "stitch.events"]
    assert data["upstream"][-1] == ["ingest.events"]
    assert CliRunner().invoke(app, ["lineage", "marts.no_such_table"]).exit_code == 2


def test_lineage_is_kept_on_disk_keyed_by_its_inputs(tmp_path, monkeypatch):
    import pipelines.lineage as lin

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    computed = lin._model_lineage("marts.retention")  # the oracle: sqlglot, no cache
    assert model_lineage("marts.retention") == computed  # computed and written
    files = list((tmp_path / "trackplan" / "lineage").glob("*marts.retention.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == computed

    def no_sqlglot(*a, **k):
        raise AssertionError("computed again")

    monkeypatch.setattr(lin, "_model_lineage", no_sqlglot)
    assert model_lineage("marts.retention") == computed  # read back, in the columns' order
    assert list(model_lineage("marts.retention")) == list(computed)
    # other inputs (a model's SQL, the DDL, sqlglot) are another key: computed, not read
    monkeypatch.setattr(lin, "_inputs_key", lambda: "other-inputs")
    with pytest.raises(AssertionError, match="computed again"):
        model_lineage("marts.retention")


def test_a_cache_that_cannot_be_used_is_skipped_with_a_trace(tmp_path, monkeypatch, caplog):
    import logging

    import pipelines.lineage as lin

    computed = lin._model_lineage("marts.retention")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache folder cannot be made
    with caplog.at_level(logging.DEBUG, logger="pipelines.lineage"):
        assert model_lineage("marts.retention") == computed
    assert any("not written" in r.getMessage() for r in caplog.records)
    # a garbled cache file is computed again (and replaced)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = lin.cache_dir() / f"{lin._inputs_key()}-marts.retention.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pipelines.lineage"):
        assert model_lineage("marts.retention") == computed
    assert any("not used" in r.getMessage() for r in caplog.records)
    assert json.loads(path.read_text()) == computed


def test_cli_sql_prints_an_unchecked_dialect_only_when_asked():
    # Oracle has no ARG_MIN, no GENERATE_SERIES, no EXPLODE: sqlglot writes them all for it unchanged,
    # and nothing here knows Oracle's functions, so the translation is not printed as if checked
    from typer.testing import CliRunner

    from trackplan.cli import app

    res = CliRunner().invoke(app, ["sql", "--dialect", "oracle"])
    assert res.exit_code == 2 and not res.stdout, res.output
    (line,) = res.stderr.splitlines()
    assert "'oracle' is a dialect sqlglot writes but trackplan does not check" in line and "--unchecked" in line
    res = CliRunner().invoke(app, ["sql", "--dialect", "oracle", "--unchecked"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        "trackplan: oracle: not checked (a function oracle lacks passes through unchanged)"
    ]
    assert "-- marts.customer_value" in res.stdout and "ARG_MIN(" in res.stdout  # the gap it warns of
    for dialect in DIALECTS:  # the checked ones need no flag, and say nothing
        res = CliRunner().invoke(app, ["sql", "--dialect", dialect])
        assert "not checked" not in res.stderr, res.stderr


@pytest.mark.parametrize("dialect", ["tsql", "hive", "redshift", "mysql", "exasol"])
def test_cli_sql_refuses_what_sqlglot_cannot_write_in_one_line(dialect):
    # any sqlglot dialect is accepted with --unchecked; where sqlglot cannot write a construct (LATERAL for T-SQL, a
    # recursive CTE for Hive, EXPLODE for Redshift) or writes what its own parser rejects (MySQL's
    # interval), the refusal names the model in one line: it was "a defect" (UnsupportedError), and
    # sqlglot's warnings were printed on stderr around it
    from typer.testing import CliRunner

    from trackplan.cli import app

    res = CliRunner().invoke(app, ["sql", "--dialect", dialect, "--unchecked"])
    assert res.exit_code == 2, res.output
    (line,) = res.stderr.splitlines()
    assert line.startswith("trackplan: marts.") and f" {dialect} translation: " in line
    assert "defect" not in line and "Traceback" not in res.output

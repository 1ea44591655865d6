"""Great Expectations 1.x suite on quality.daily_metrics (the small metrics table, never raw events).

Runs on a pandas datasource (the metrics table is a few thousand rows a month), so GX never
touches DuckDB and its SQL datasource defects do not apply. Data Docs go to `docs_dir`, which
`trackplan report` links to. GX is imported here only, when the check runs: it takes seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .store import WARN, CheckOutcome

SHARES = ["quarantine_share", "null_rate", "type_share", "enum_share"]
COUNTS = ["volume", "quarantined", "persons"]
METRICS = [*COUNTS, *SHARES, "lag_p50_seconds", "lag_p95_seconds"]
SUITE = "daily_metrics"


def _expectations(gx) -> list:
    E = gx.expectations
    return [
        E.ExpectTableColumnsToMatchSet(
            column_set=["day", "event_name", "metric", "property", "dimension", "value", "denominator"],
            exact_match=True,
        ),
        E.ExpectColumnValuesToNotBeNull(column="day"),
        E.ExpectColumnValuesToNotBeNull(column="event_name"),
        E.ExpectColumnValuesToBeInSet(column="metric", value_set=METRICS),
        E.ExpectColumnValuesToNotBeNull(
            column="value", row_condition='metric != "lag_p50_seconds"', condition_parser="pandas"
        ),
        E.ExpectColumnValuesToBeBetween(
            column="value", min_value=0, max_value=1, row_condition=f"metric in {SHARES!r}", condition_parser="pandas"
        ),
        E.ExpectColumnValuesToBeBetween(
            column="value", min_value=0, row_condition=f"metric in {COUNTS!r}", condition_parser="pandas"
        ),
        E.ExpectColumnValuesToBeBetween(column="denominator", min_value=0),
        E.ExpectCompoundColumnsToBeUnique(column_list=["day", "event_name", "metric", "property", "dimension"]),
    ]


def run_gx_suite(df, docs_dir: Path | str | None = None) -> CheckOutcome:
    """Validate the metrics frame; write Data Docs under `docs_dir` when given."""
    from .gx_import import import_gx

    gx = import_gx()  # no usage statistics calls (no network); safe under `python -c` with pyspark installed

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    if docs_dir is not None:
        root = Path(docs_dir)
        root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(root))
    else:
        ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    name = "quality_metrics"
    try:
        ctx.data_sources.delete(name)
    except Exception:  # noqa: BLE001, S110 - first run: nothing to delete (GX raises several types)
        pass
    bd = (
        ctx.data_sources.add_pandas(name)
        .add_dataframe_asset("daily_metrics")
        .add_batch_definition_whole_dataframe("all")
    )
    try:
        ctx.suites.delete(SUITE)
    except Exception:  # noqa: BLE001, S110 - not there yet
        pass
    suite = ctx.suites.add(gx.ExpectationSuite(name=SUITE, expectations=_expectations(gx)))
    try:
        ctx.validation_definitions.delete(SUITE)
    except Exception:  # noqa: BLE001, S110 - not there yet
        pass
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=SUITE, data=bd, suite=suite))
    res = vd.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    failed = [r for r in res.results if not r.success]
    meta = {
        "expectations": len(res.results),
        "failed_expectations": len(failed),
        "rows": len(df),
        "threshold": 0.0,
        "failures": [
            {
                "expectation": r.expectation_config.type,
                "kwargs": {k: str(v) for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
                "unexpected_count": (r.result or {}).get("unexpected_count"),
                "sample": [str(x) for x in ((r.result or {}).get("partial_unexpected_list") or [])[:10]],
            }
            for r in failed
        ],
    }
    if docs_dir is not None:
        ctx.build_data_docs()
        index = next(Path(docs_dir).rglob("data_docs/local_site/index.html"), None)
        meta["data_docs"] = str(index) if index else str(docs_dir)
        if index is not None:  # the pages load their scripts and styles from CDNs: point them at local copies
            from .data_docs import make_offline

            offline = make_offline(index.parent)
            meta["data_docs_offline"] = not offline.removed
            if offline.removed:  # said, not hidden: these pages will lack what the addresses served
                meta["data_docs_missing_assets"] = offline.removed[:20]
    return CheckOutcome(
        check="gx_daily_metrics",
        asset="quality.daily_metrics",
        passed=not failed,
        severity=WARN,
        observed=float(len(failed)),
        expected_low=0.0,
        expected_high=0.0,
        metadata=meta,
    )

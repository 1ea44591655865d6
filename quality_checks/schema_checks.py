"""Pandera schema checks on curated tables, turned into the same CheckOutcome as the SQL gates.

Types are checked in SQL against the warehouse DDL (exact, and free); Pandera checks columns,
nullability, allowed values and grain uniqueness on the data: all of a small table, a seeded
reservoir sample of a large one (bounded memory: Pandera on pandas costs ~0.4 GB per 1M rows).
Only the columns whose values a check reads (not nullable, a set of values, a pattern, the grain)
are read and validated; a nullable column without a check can fail only by being missing, which the
table's columns tell (and Pandera reports, as it reports the others).
"""

from __future__ import annotations

import dataclasses

from models.frames import frame

from .store import ERROR, CheckOutcome

SAMPLE_SEED = 42  # the same sample on a re-run: a failure reproduces
ROW_KEY = ("source_file", "line_no")  # an event row's place in the landing zone (ingest and stitch events)


def run_schema_check(con, spec, sample_rows: int = 50_000) -> CheckOutcome:
    """Validate `spec.table` with its generated Pandera schema; failure cases become metadata."""
    import pandas as pd
    from pyarrow import array as pa_array

    from schemas.pandera_models import ddl_columns, import_pandera, pandera_schema

    pa = import_pandera()

    n = con.execute(f"select count(*) from {spec.table}").fetchall()[0][0]
    sampled = not spec.small and n > sample_rows
    actual = {
        r[0]: r[1]
        for r in con.execute(
            "select column_name, data_type from information_schema.columns where table_schema || '.' || table_name = ?",
            [spec.table],
        ).fetchall()
    }
    missing = [c for c in spec.columns if c not in actual]
    wrong_type = {
        c: {"expected": t, "actual": actual.get(c)}
        for c, (t, _) in ddl_columns().get(spec.table, {}).items()
        if c in actual and actual[c] != t
    }
    # the values only these columns' checks read (1M events: the JSON payloads never leave DuckDB,
    # 0.08 instead of 0.45 CPU-s for the 50k-row sample of stitch.events); the missing ones for Pandera
    # to report
    checked = [
        c
        for c, col in spec.columns.items()
        if c not in actual or not col.nullable or col.isin is not None or col.pattern or c in spec.grain
    ]
    spec = dataclasses.replace(spec, columns={c: spec.columns[c] for c in checked})
    select_cols = ", ".join(f'"{c}"' for c in spec.columns if c in actual) or "*"
    sample = f" using sample reservoir({int(sample_rows)} rows) repeatable ({SAMPLE_SEED})"
    sql = f"select {select_cols} from {spec.table}" + (sample if sampled else "")
    schema, _, name = spec.table.partition(".")
    base = sampled and bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ? and not temporary",
            [schema, name],
        ).fetchall()[0][0]
    )
    key = ("rowid",) if base else ROW_KEY if sampled and all(k in actual for k in ROW_KEY) else None
    if key:
        # the reservoir drawn over the row id (a DuckDB table) or the row key (a Spark layer is a
        # view) alone, then those rows read: the same rows in the same order (the draw depends on the
        # row count and the seed, not on the columns) at less CPU than a reservoir of wide rows (1M
        # events: the key a third less; the row id, one integer, ~0.25 CPU-s less again)
        keys = con.sql(f"select {', '.join(key)} from {spec.table}{sample}").to_arrow_table()
        con.register("_schema_sample", keys.append_column("_pos", pa_array(range(keys.num_rows))))
        # (a row id is never null: `=` there, not null-safe equality, cut the 10M-event sample read
        # from 1.6-2.7 to 1.1-1.2 CPU-s)
        on = " and ".join(f"t.{k} = s.{k}" if k == "rowid" else f"t.{k} is not distinct from s.{k}" for k in key)
        cols = ", ".join(f't."{c}"' for c in spec.columns if c in actual) or "t.*"
        try:
            df = frame(con, f"select {cols} from {spec.table} t join _schema_sample s on {on} order by s._pos")
        finally:
            con.unregister("_schema_sample")
    else:
        df = frame(con, sql)
    for c in missing:  # let Pandera report them with the rest
        df = df.drop(columns=[c], errors="ignore")
    failures = []
    try:
        pandera_schema(spec).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases.head(10_000).to_dict("records")
    meta = {"rows": n, "checked_rows": len(df), "sampled": sampled, "threshold": 0.0}
    failing_rows = {f.get("index") for f in failures if f.get("index") is not None}
    failing_count = len(failing_rows) + len(missing) + len(wrong_type)
    meta.update(
        failing_count=failing_count,
        failing_share=len(failing_rows) / len(df) if len(df) else 0.0,
        failed_checks=sorted({f"{f.get('column')}: {f.get('check')}" for f in failures})[:50],
        missing_columns=missing,
        wrong_types=wrong_type,
        samples=[
            {k: (None if pd.isna(v) else str(v)) if not isinstance(v, (int, str)) else v for k, v in f.items()}
            for f in failures[:10]
        ],
        sql=sql,
    )
    return CheckOutcome(
        check="schema",
        asset=spec.table,
        passed=failing_count == 0,
        severity=ERROR,
        observed=meta["failing_share"],
        expected_low=0.0,
        expected_high=0.0,
        metadata=meta,
    )

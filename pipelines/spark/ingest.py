"""Validation on Spark by the one engine: every landed file is validated inside a Spark task by
tracking_plan.validate (the DuckDB validator the CLI and the ingest asset run), so the rules, the
reasons and the line numbers are the same by construction, not by re-implementation.

The files are listed and read by Spark's `binaryFile` source, so the landing zone can be any
Hadoop-compatible path (file:, s3a:, abfss:, gs:, hdfs:); each task writes its file's bytes under
the file's own name to a private temp dir (the name says the format: .jsonl, .json batch, .gz) and
validates it there. Per-file work keeps what only a whole file can tell: line numbers, bad UTF-8, a
truncated gzip, a batch body. A file is held in one task's memory (binaryFile's 2 GB limit): the
collector and the SDKs land files far smaller.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import PurePosixPath

from . import swap
from .swap import _is_local, _local_path

recovery_log = logging.getLogger("trackplan.spark.ingest")

# one row per file (kind='file') and one per (line, rule) of an invalid line (kind='error')
RESULT_SCHEMA = (
    "kind string, file string, line bigint, rule string, path string, message string, message_id string, "
    "event string, total bigint, valid bigint, invalid bigint, warnings bigint, file_error string"
)


def _validate_batches(plan, max_errors: int):
    """The mapInArrow function: (path, content) batches in, RESULT_SCHEMA batches out."""

    def run(batches):
        import pyarrow as pa

        from tracking_plan.reader import is_input_file
        from tracking_plan.validate import validate_files

        fields = [f.split(" ") for f in RESULT_SCHEMA.split(", ")]
        names = [n for n, _ in fields]
        schema = pa.schema([(n, pa.int64() if t == "bigint" else pa.string()) for n, t in fields])
        for batch in batches:
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                if not is_input_file(PurePosixPath(path)):  # as the CLI's landing scan: not an event file
                    continue
                with tempfile.TemporaryDirectory(prefix="trackplan-spark-") as tmp:
                    local = os.path.join(tmp, path.rstrip("/").rsplit("/", 1)[-1])
                    with open(local, "wb") as fh:
                        fh.write(content)
                    [rep] = validate_files(plan, [local], max_errors=max_errors)
                rows = [
                    {
                        "kind": "file",
                        "file": path,
                        "total": rep.total,
                        "valid": rep.valid,
                        "invalid": rep.invalid,
                        "warnings": rep.warnings,
                        "file_error": rep.file_error,
                    }
                ]
                for e in rep.errors:
                    rows.append(
                        {
                            "kind": "error",
                            "file": path,
                            "line": e["line"],
                            "rule": e["rule"],
                            "path": e["path"],
                            "message": e["message"],
                            "message_id": e["message_id"],
                            "event": e["event"],
                        }
                    )
                yield pa.RecordBatch.from_pylist([{n: r.get(n) for n in names} for r in rows], schema=schema)

    return run


def _empty_files(spark, landing: str) -> list[str]:
    """The zero-length files under `landing`, listed through Hadoop's FileSystem (Spark's file sources
    skip them, but the CLI reports each one: it must not vanish without a trace)."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(landing)
    listing = root.getFileSystem(conf).listFiles(root, True)
    out = []
    while listing.hasNext():
        status = listing.next()
        if status.getLen() == 0:
            out.append(status.getPath().toString())
    return out


def validate_landing(spark, plan, landing: str, max_errors: int = 1000, glob: str = "*"):
    """A DataFrame (RESULT_SCHEMA) of the verdicts on every file under `landing` (any Hadoop path)."""
    import fnmatch

    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", glob)
        .load(landing)
        .select("path", "content")
    )
    empty = [f for f in _empty_files(spark, landing) if fnmatch.fnmatch(f.rsplit("/", 1)[-1], glob)]
    if empty:  # validated like the others (by the same function), from no bytes
        files = files.unionByName(spark.createDataFrame([(f, b"") for f in empty], "path string, content binary"))
    # one file per task as far as the cores go: files are the unit of work
    parallel = spark.sparkContext.defaultParallelism
    return files.repartition(parallel, "path").mapInArrow(_validate_batches(plan, max_errors), RESULT_SCHEMA)


# ---------------------------------------------------------------------------------------------------
# The ingest layer on Spark: ingest.events, ingest.quarantine and ingest.ingestion_log as Parquet
# partitioned by day under a root path, with the DuckDB path's rules by construction:
#
#   1. per file (a Spark task; DuckDB inside): the reader and the validator as `trackplan run` runs
#      them, the erasure register (privacy.mark_suppressed), and the consent and PII rules
#      (ingest.load.event_columns: the keyed hash of pipelines/warehouse.py with the run's salt);
#   2. per shard of messageIds (rows hash-partitioned by messageId, so a messageId's copies and its
#      earlier loads meet in one task; DuckDB inside): the bucket of every line by ingest.load's own
#      classification SQL (de-duplication over dedup_lookback_days, the `duplicate` rule beyond it,
#      consent drops), and the reasons of a late re-send;
#   3. on the driver, one row per file: the ledger, each file's classified lines checked against the
#      reader's count from the file's bytes (a mismatch stops the run, as on DuckDB).
#
# Each table's days are written to a staging folder first, committed, then swapped in day by day (a
# day's old folder moved away, the new one renamed in; pipelines/spark/swap.py), so the run's days are
# replaced and every other day kept, and a crash at any point is finished by the next run.
# ---------------------------------------------------------------------------------------------------

INGEST_TABLES = ("ingest.events", "ingest.quarantine", "ingest.ingestion_log")
NULL_DAY = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder for a null partition_date (files outside any day)
# the per-file statistics travel with the lines, on a row of their own (kind 'file')
FILE_COLUMNS = [
    ("_kind", "string"),
    ("_lines", "bigint"),
    ("_bytes", "bigint"),
    ("_file_error", "string"),
    ("_opened", "boolean"),
]


def landing_entries(spark, landing: str, layout: str | None = None) -> list:
    """Every file under the landing root as tracking_plan.landing classifies it (read in a partition, or
    skipped with its reason): a local root by `landing.scan` itself (the DuckDB path's own scan: links,
    devices and all), any other Hadoop-compatible URI (hdfs:, s3a:, abfss:, gs:) listed through Hadoop's
    FileSystem and classified by the same layout rules."""
    from tracking_plan.landing import CLASSIFY, LAYOUTS, LandingError, detect_layout, hold_future, scan
    from tracking_plan.reader import LandingEntry

    if _is_local(landing):
        return scan(_local_path(landing), layout)
    if layout not in (None, "", "auto", *LAYOUTS):
        raise LandingError(f"--layout {layout}: expected one of {', '.join(LAYOUTS)} (or leave it out to detect)")
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(landing)
    fs = root.getFileSystem(conf)
    if not fs.exists(root):
        return []
    base = fs.makeQualified(root).toString().rstrip("/") + "/"
    listing = fs.listFiles(root, True)
    objects = []
    while listing.hasNext():
        st = listing.next()
        uri = st.getPath().toString()
        objects.append((uri.removeprefix(base), uri, st.getLen()))
    objects.sort()
    layout = None if layout in (None, "", "auto") else layout
    layout = layout or detect_layout([o[0] for o in objects])
    out = []
    for rel, uri, size in objects:
        part, skip, fmt = CLASSIFY[layout](rel)
        out.append(LandingEntry(uri, part, skip, fmt, size))
    return hold_future(out)


def _stage1_sql(plan, has_verbatim: bool) -> str:
    """Per file, over the validator's rows `_group` (and `_suppressed_rids`): one row per line with the
    event columns as ingest.events stores them (consent and PII applied), the quarantine's columns, and
    what the classification reads."""
    from pipelines.ingest.load import event_columns, strip_sql

    json_cols = {"context", "properties", "traits"}
    valid = ", ".join(f"({e})::varchar as {n}" if n in json_cols else f"{e} as {n}" for n, e in event_columns(plan))
    invalid = ", ".join(f"null::varchar as {n}" if n in json_cols else f"{e} as {n}" for n, e in event_columns(plan))
    raw = (
        "coalesce(v.verbatim, rtrim(g.raw, chr(13) || chr(10)))" if has_verbatim else "rtrim(g.raw, chr(13) || chr(10))"
    )
    join = "left join _verbatim v on v.line_no = g.line_no" if has_verbatim else ""
    common = (
        "g._strip as consent_stripped, g.source_file, g.line_no, $pdate::date as partition_date, g.valid, "
        "len(g.warnings) > 0 as _warned, g.consent_pref, "
        f"g._r in (select _rid from _suppressed_rids) as _suppressed, {raw} as raw, g.reasons"
    )
    rows = f"with g as (select g0.*, g0.rowid as _r, coalesce({strip_sql(plan)}, false) as _strip from _group g0)"
    return (
        f"{rows} select {valid}, {common} from g {join} where g.valid "
        f"union all select {invalid}, {common} from g {join} where not g.valid"
    )


def _task_connection(salt: str, suppression: list[tuple]):
    """An in-memory DuckDB as the warehouse's connections are: UTC, the DDL (the erasure register among
    it, filled from the root's ingest.suppression), the keyed hash with the run's salt."""
    import duckdb

    from pipelines.warehouse import register_udfs
    from schemas.ddl import DDL

    con = duckdb.connect(config={"memory_limit": "1GB"})
    con.execute("set TimeZone = 'UTC'")
    con.execute(DDL)
    register_udfs(con, salt)
    if suppression:
        con.executemany("insert into ingest.suppression values (?, ?, ?, ?)", suppression)
    return con


def _stage1_batches(plan, meta: dict, salt: str, suppression: list[tuple], schema):
    """The mapInArrow function of step 1: (path, content) batches in, one row per line and one per
    file out (schema: `schema`, a pyarrow schema)."""

    def run(batches):
        import pyarrow as pa

        from pipelines.privacy import mark_suppressed
        from tracking_plan.reader import LandingEntry, read_files
        from tracking_plan.validate import Validator

        con = _task_connection(salt, suppression)
        validator = Validator(plan)
        max_bytes = plan.header.defaults.max_event_bytes
        try:
            for batch in batches:
                for uri, content in zip(
                    batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
                ):
                    source, part, fmt = meta[_local_path(uri)]
                    stats = {}
                    with tempfile.TemporaryDirectory(prefix="trackplan-spark-") as tmp:
                        local = os.path.join(tmp, source.rstrip("/").rsplit("/", 1)[-1])
                        with open(local, "wb") as fh:
                            fh.write(content)
                        entry = LandingEntry(local, part, None, fmt)
                        tables = list(
                            read_files(
                                [entry],
                                max_bytes=max_bytes,
                                batch_lines=1 << 62,
                                on_file_done=lambda _p, s, into=stats: into.setdefault("s", s),
                                strip=False,
                            )
                        )
                    st = stats["s"]
                    if tables:
                        t = tables[0]
                        t = t.set_column(0, "source_file", pa.repeat(pa.scalar(source, pa.string()), t.num_rows))
                        has_verbatim = "verbatim" in t.column_names
                        con.register("_batch_in", t)
                        validator.run(con, "_batch_in", "_group")
                        if has_verbatim:
                            con.execute(
                                "create or replace temp table _verbatim as select line_no, verbatim from _batch_in "
                                "where verbatim is not null"
                            ).fetchall()
                        con.unregister("_batch_in")
                        con.execute(
                            "create or replace temp view _part as select g.*, g.rowid as _rid from _group g"
                        ).fetchall()
                        mark_suppressed(con, plan, "_part")
                        out = con.sql(_stage1_sql(plan, has_verbatim), params={"pdate": part}).to_arrow_table()
                        n = out.num_rows
                        for name, _ in FILE_COLUMNS:
                            out = out.append_column(
                                name,
                                pa.repeat(pa.scalar("line"), n)
                                if name == "_kind"
                                else pa.nulls(n, schema.field(name).type),
                            )
                        yield from out.cast(schema).to_batches()
                    row = {f.name: None for f in schema}
                    row.update(
                        _kind="file",
                        source_file=source,
                        partition_date=_date(part),
                        _lines=st.lines,
                        _bytes=st.bytes,
                        _file_error=st.file_error,
                        _opened=st.opened,
                    )
                    yield pa.RecordBatch.from_pylist([row], schema=schema)
        finally:
            con.close()

    return run


def _date(day: str | None):
    import datetime as dt

    return None if day is None else dt.date.fromisoformat(day)


def _stage1_schema(plan):
    """The pyarrow schema of step 1's rows: the stage-1 SQL run on no lines, plus the file columns."""
    import pyarrow as pa

    from pipelines.privacy import mark_suppressed
    from tracking_plan.validate import Validator

    con = _task_connection("schema-only", [])
    try:
        empty = pa.table(
            {
                "source_file": pa.array([], pa.string()),
                "line_no": pa.array([], pa.int64()),
                "raw": pa.array([], pa.string()),
                "pre_reason": pa.array([], pa.string()),
                "partition_day": pa.array([], pa.string()),
            }
        )
        con.register("_batch_in", empty)
        Validator(plan).run(con, "_batch_in", "_group")
        con.execute("create or replace temp view _part as select g.*, g.rowid as _rid from _group g").fetchall()
        mark_suppressed(con, plan, "_part")
        schema = con.sql(_stage1_sql(plan, False), params={"pdate": "2000-01-01"}).to_arrow_table().schema
    finally:
        con.close()
    types = {"string": pa.string(), "bigint": pa.int64(), "boolean": pa.bool_()}
    fields = [pa.field(f.name, f.type, nullable=True) for f in schema]
    fields += [pa.field(n, types[t], nullable=True) for n, t in FILE_COLUMNS]
    return pa.schema(fields)


def _shard_batches(plan, schema, out_schema):
    """The mapInArrow function of step 2: every row of a shard of messageIds (lines, and the earlier
    days' loads of their ids: kind 'prior') classified by ingest.load.classify_sql in DuckDB."""
    from pipelines.ingest.load import classify_sql, late_reasons_sql

    classify = classify_sql(
        plan,
        "select message_id, _prior_day as _day from _all where _kind = 'prior'",
        warned="p._warned",
        suppressed="p._suppressed",
    )
    late = late_reasons_sql(plan)

    def run(batches):
        import duckdb
        import pyarrow as pa

        got = [b for b in batches if b.num_rows]
        if not got:
            return
        con = duckdb.connect(config={"memory_limit": "1GB"})
        try:
            con.execute("set TimeZone = 'UTC'")
            con.register("_in", pa.Table.from_batches(got))
            con.execute("create temp table _all as select * from _in").fetchall()
            con.unregister("_in")
            con.execute(
                "create temp table _part as select *, partition_date as _pdate, row_number() over () as _rid "
                "from _all where _kind = 'line'"
            ).fetchall()
            con.execute(f"create temp table _classified as {classify}").fetchall()
            tail = ("reasons", "rules", "_bucket", "_late_from", "_displaces")
            keep = [f.name for f in out_schema if f.name not in tail]
            out = con.sql(
                f"select {', '.join('g.' + c for c in keep)}, {late} as reasons, "
                f"list_transform({late}, lambda r: r.rule) as rules, c._bucket, c._late_from, c._displaces "
                "from _part g join _classified c using (_rid)"
            ).to_arrow_table()
            yield from out.select([f.name for f in out_schema]).cast(out_schema).to_batches()
        finally:
            con.close()

    return run


def _fs(spark, path: str):
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(conf), p


def _exists(spark, path: str) -> bool:
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def _spark_uri(entry) -> str:
    path = str(entry.path)
    return "file:" + os.path.abspath(path) if _is_local(path) else path


def _replace_days(spark, staging: str, root: str, tables, folders: list[str]) -> None:
    """Swap the day folders `folders` (partition_date=...) of each table's layer under `root` for those
    written under `staging`: a day with no new rows is removed, every other day of the layer is kept.
    Committed first, then swapped (pipelines/spark/swap.py): a crash at any point loses no day, and
    the next ingest's `swap.recover` finishes the swap."""
    from pipelines.spark.models import layer_path

    units = [
        (f"{layer_path(root, t)}/partition_date={d}", f"{layer_path(staging, t)}/partition_date={d}")
        for t in tables
        for d in folders
    ]
    swap.replace(swap.HadoopFS(spark, root), staging, units)


# the ingest tables' Spark types, as ingest.events / quarantine / ingestion_log have them in DuckDB
LEDGER_SCHEMA = (
    "partition_date date, source_file string, lines bigint, loaded bigint, quarantined bigint, duplicates bigint, "
    "consent_dropped bigint, suppressed bigint, warnings bigint, bytes bigint, file_error string, "
    "plan_version string, started_at timestamp_ntz, finished_at timestamp_ntz, seconds double, status string, "
    "skip_reason string"
)


# DuckDB's types of the ingest tables → the Spark types their Parquet layers have
SPARK_TYPES = {
    "VARCHAR": "string",
    "JSON": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "VARCHAR[]": "array<string>",
}


def table_types(table: str) -> list[tuple[str, str]]:
    """(column, Spark type) of an ingest table in the warehouse's order (schemas/ddl.py)."""
    from schemas.ddl import described

    rows = [(c, t) for c, (t, _) in described()[table].items()]
    out = []
    for col, t in rows:
        if t.startswith("STRUCT(") and t.endswith(")[]"):  # the reasons: a list of (rule, path, message)
            fields = [f.strip().split(" ") for f in t[len("STRUCT(") : -len(")[]")].split(",")]
            t = "array<struct<" + ",".join(f"{n.strip(chr(34))}:{SPARK_TYPES[ty]}" for n, ty in fields) + ">>"
        else:
            t = SPARK_TYPES[t]
        out.append((col, t))
    return out


def table_columns(table: str) -> list[str]:
    """The columns of an ingest table in the warehouse's order."""
    return [c for c, _ in table_types(table)]


def read_layer(spark, root: str, table: str):
    """An ingest layer under `root` as a DataFrame of the warehouse's columns, in its order (Spark's
    reader puts the partition column last), and empty where no day has rows yet."""
    from pipelines.spark.models import layer_path

    ddl = ", ".join(f"`{c}` {t}" for c, t in table_types(table))
    path = layer_path(root, table)
    if not _exists(spark, path):
        return spark.createDataFrame([], ddl)
    return spark.read.schema(ddl).parquet(path).select(*table_columns(table))


def ingest_landing(
    spark,
    plan,
    landing: str,
    root: str,
    partitions: list[str] | None = None,
    layout: str | None = None,
    on_done=None,
    depth: int = 0,
    because: dict[str, str] | None = None,
):
    """Replace the days `partitions` (default: every day landed) of ingest.events, ingest.quarantine
    and ingest.ingestion_log under `root` (Parquet, partitioned by partition_date) with what the landing
    zone holds for them; the ledger rows of the files outside any day are replaced every run, as on
    DuckDB. Returns one pipelines.ingest.load.PartitionResult per day. A day whose rows these days'
    load changed runs again in the same call, as on DuckDB (pipelines.ingest.load.ingest_partitions:
    a message's earliest copy is the event, whichever day runs first)."""
    import datetime as dt
    import time

    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from pipelines.ingest.load import PartitionResult
    from pipelines.spark.models import layer_path
    from pipelines.warehouse import hash_salt

    salt = hash_salt()  # no salt, no ingest (as on DuckDB)
    t0 = time.time()
    # a swap a crashed run committed is finished (and an uncommitted one discarded) before any read
    for line in swap.recover(swap.HadoopFS(spark, root), root):
        recovery_log.warning("ingest on Spark: %s", line)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    entries = landing_entries(spark, landing, layout)
    days = sorted(set(partitions)) if partitions is not None else sorted({e.partition for e in entries if e.partition})
    to_read = [e for e in entries if e.partition in days and e.skip is None]
    skipped = [e for e in entries if e.partition in days and e.skip is not None]
    outside = [e for e in entries if e.partition is None]

    def size(e) -> int:
        return e.size if e.size is not None else os.stat(e.path).st_size

    meta = {_local_path(_spark_uri(e)): (str(e.path), e.partition, e.fmt) for e in to_read}
    full = [_spark_uri(e) for e in to_read if size(e) > 0]
    empty = [_spark_uri(e) for e in to_read if size(e) == 0]
    sup_path = layer_path(root, "ingest.suppression")
    suppression = [
        (r["identifier_kind"], r["identifier_hash"], r["audit_id"], r["added_at"])
        for r in (spark.read.parquet(sup_path).collect() if _exists(spark, sup_path) else [])
    ]

    arrow1 = _stage1_schema(plan)
    schema1 = from_arrow_schema(arrow1)
    files = spark.createDataFrame([(u, b"") for u in empty], "path string, content binary")
    if full:
        files = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")  # the files as listed: no partition columns inferred
            .load(full)
            .select("path", "content")
            .unionByName(files)
        )
    parallel = max(1, min(len(to_read), spark.sparkContext.defaultParallelism))
    stage1 = (
        files.repartition(parallel, "path")
        .mapInArrow(_stage1_batches(plan, meta, salt, suppression, arrow1), schema1)
        .persist()
    )
    lines = stage1.filter(F.col("_kind") == "line").withColumn("_prior_day", F.lit(None).cast("date"))
    events_path = layer_path(root, "ingest.events")
    if _exists(spark, events_path):  # the messageIds already loaded from the other days
        old = read_layer(spark, root, "ingest.events").filter(~F.col("partition_date").isin([_date(d) for d in days]))
        ids = lines.filter(F.col("valid")).select("message_id").distinct()
        prior = (
            old.select("message_id", "partition_date")
            .join(ids, "message_id", "left_semi")
            .groupBy("message_id")
            .agg(F.min("partition_date").alias("_prior_day"))
            .withColumn("_kind", F.lit("prior"))
        )
        lines = lines.unionByName(prior, allowMissingColumns=True)
    import pyarrow as pa

    line_fields = [f for f in arrow1 if f.name not in {n for n, _ in FILE_COLUMNS}]
    arrow2 = pa.schema(
        [
            *line_fields,
            pa.field("rules", pa.list_(pa.string())),
            pa.field("_bucket", pa.string()),
            pa.field("_late_from", pa.date32()),
            pa.field("_displaces", pa.date32()),
        ]
    )
    out = (
        lines.repartition("message_id").mapInArrow(_shard_batches(plan, arrow1, arrow2), from_arrow_schema(arrow2))
    ).persist()
    try:
        bucket = F.col("_bucket")
        counts = {
            r["source_file"]: r
            for r in out.groupBy("source_file")
            .agg(
                F.count("*").alias("lines"),
                F.count_if(bucket == "loaded").alias("loaded"),
                F.count_if(bucket == "quarantined").alias("quarantined"),
                F.count_if(bucket == "duplicate").alias("duplicates"),
                F.count_if(bucket == "consent_dropped").alias("consent_dropped"),
                F.count_if(bucket == "suppressed").alias("suppressed"),
                F.count_if((bucket == "loaded") & F.col("_warned")).alias("warnings"),
            )
            .collect()
        }
        stats = stage1.filter(F.col("_kind") == "file").select(*(n for n, _ in FILE_COLUMNS), "source_file").collect()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        stamp = F.lit(now.isoformat(sep=" ")).cast("timestamp_ntz")
        results = {d: PartitionResult(partition=d) for d in days}
        part_of = {str(e.path): e.partition for e in to_read}
        ledger = []
        finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for st in stats:
            name = st["source_file"]
            c = counts.get(name)
            got = (
                [0] * 7
                if c is None
                else [
                    c[k]
                    for k in (
                        "lines",
                        "loaded",
                        "quarantined",
                        "duplicates",
                        "consent_dropped",
                        "suppressed",
                        "warnings",
                    )
                ]
            )
            if got[0] != st["_lines"]:  # the reader's count from the bytes against what was classified
                raise RuntimeError(
                    f"{name}: the reader counted {st['_lines']} lines but {got[0]} were classified; no day was replaced"
                )
            day = part_of[name]
            res = results[day]
            res.files += 1
            if not st["_opened"]:
                res.files -= 1
                res.skipped += 1
            for k, v in zip(("lines", "loaded", "quarantined", "duplicates", "consent_dropped", "suppressed"), got):
                setattr(res, k, getattr(res, k) + v)
            ledger.append(
                (
                    _date(day),
                    name,
                    *got,
                    st["_bytes"],
                    st["_file_error"],
                    plan.version,
                    started,
                    finished,
                    (finished - started).total_seconds(),
                    "read" if st["_opened"] else "skipped",
                    None if st["_opened"] else st["_file_error"],
                )
            )
        for e in skipped + outside:
            if e.partition is not None:
                results[e.partition].skipped += 1
            ledger.append(
                (
                    _date(e.partition),
                    str(e.path),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    plan.version,
                    now,
                    now,
                    0.0,
                    "skipped",
                    e.skip,
                )
            )
        events = (
            out.filter(bucket == "loaded")
            .select(
                *[c for c in table_columns("ingest.events") if c not in ("plan_version", "loaded_at", "person_id")],
                F.lit(plan.version).alias("plan_version"),
                stamp.alias("loaded_at"),
                F.lit(None).cast("string").alias("person_id"),  # (the stitch's: stitch.events has it)
            )
            .select(*table_columns("ingest.events"))
        )
        quarantine = (
            out.filter(bucket == "quarantined")
            .select(
                *[c for c in table_columns("ingest.quarantine") if c not in ("plan_version", "quarantined_at")],
                F.lit(plan.version).alias("plan_version"),
                stamp.alias("quarantined_at"),
            )
            .select(*table_columns("ingest.quarantine"))
        )
        log = spark.createDataFrame(ledger, LEDGER_SCHEMA)
        folders = [*days, NULL_DAY]  # the run's days, and the files outside any day
        staging = swap.staging_dir(root)
        try:
            for table, df in (
                ("ingest.events", events),
                ("ingest.quarantine", quarantine),
                ("ingest.ingestion_log", log),
            ):
                df.write.mode("overwrite").partitionBy("partition_date").parquet(layer_path(staging, table))
        except BaseException:
            swap.HadoopFS(spark, root).delete(staging)  # not committed: no layer touched yet
            raise
        # what the new rows change on other days (pipelines.ingest.load._dependents), read before the
        # swap moves these days' old rows away: the later days whose loaded copy is a repeat now, and
        # the messages these days had loaded and load no more
        displaced = [
            r[0]
            for r in out.filter((bucket == "loaded") & F.col("_displaces").isNotNull())
            .select("_displaces")
            .distinct()
            .collect()
        ]
        # (only days leave the cluster: the messages that moved may be many, after a plan change)
        moved, late = [], []
        if _exists(spark, events_path):
            was = (
                read_layer(spark, root, "ingest.events")
                .filter(F.col("partition_date").isin([_date(d) for d in days]))
                .select("message_id", "partition_date")
            )
            now = out.filter(bucket == "loaded").select("message_id", "partition_date")
            gone = was.join(now, ["message_id", "partition_date"], "left_anti").persist()
            try:
                moved = [r[0] for r in gone.select("partition_date").distinct().collect()]
                if moved and _exists(spark, layer_path(root, "ingest.quarantine")):
                    late = [
                        r[0]
                        for r in read_layer(spark, root, "ingest.quarantine")
                        .filter(F.array_contains("rules", "duplicate"))
                        .join(gone.select("message_id"), "message_id", "left_semi")
                        .select("partition_date")
                        .distinct()
                        .collect()
                    ]
            finally:
                gone.unpersist()
        # from here a failure leaves the committed staging for the next run's swap.recover to finish
        _replace_days(spark, staging, root, INGEST_TABLES, folders)
    finally:
        out.unpersist()
        stage1.unpersist()
    per_day = (time.time() - t0) / max(1, len(days))
    done = []
    for d in days:
        results[d].seconds = per_day
        results[d].because = (because or {}).get(d)
        done.append(results[d])
        if on_done:
            on_done(results[d])
    from pipelines.ingest.load import rerun_reasons, runs_again

    duplicate_days = []
    if moved:
        duplicate_days = [
            r[0]
            for r in read_layer(spark, root, "ingest.ingestion_log")
            .filter(F.col("duplicates") > 0)
            .select("partition_date")
            .distinct()
            .collect()
        ]
    mine = {_date(d) for d in days}
    dependents = rerun_reasons(plan, mine, displaced, moved, duplicate_days, late)
    again = runs_again(dependents, {e.partition for e in entries if e.partition}, depth)
    if again:
        done += ingest_landing(
            spark, plan, landing, root, sorted(again), layout, on_done, depth=depth + 1, because=again
        )
    return done

"""Right to erasure on the Spark engine: `trackplan forget --engine spark` removes a person from every
Parquet layer under the root, and registers them so the Spark ingest keeps them out.

Whose a row is comes from pipelines/privacy.py (`erase_conditions`, the DuckDB warehouse's own
definition), evaluated by DuckDB inside Spark tasks over each layer's rows, as the Spark ingest runs the
validator: one definition on both engines. Each layer with a row of the person is rewritten without
them (a day-partitioned layer only in the days that held one), the erasure register
(`<root>/ingest/suppression`) and the audit (`<root>/ingest/erasure_audit`) get their rows, and all of
it replaces the old folders in one commit (pipelines/spark/swap.py): a crash leaves either the old
layers or, once the next ingest or forget has recovered, the new ones; the old files are then deleted,
so the erased rows' bytes are gone from the root (an object store that keeps versions keeps them in
its versions: expire those by the bucket's own lifecycle rule).

One writer at a time, as for the Spark ingest: a forget and a Spark run on the same root must not
overlap (the run would rebuild its downstream layers from events it read before the erasure).
"""

from __future__ import annotations

import datetime as dt
import uuid

from tracking_plan.model import Plan

from ..privacy import (
    SCHEMAS,
    ErasureError,
    audit_row,
    erase_conditions,
    erasure_fields,
    erasure_ids,
    erasure_result,
    person_identifiers,
    register_rows,
    scrub_metadata,
)
from ..warehouse import hash_salt, keyed_hash
from . import swap
from .models import layer_path

DAY = "partition_date"
TAG = "_erased_by"  # which request's person a row is (its position in the call's ids), NULL: nobody's


def _layers(fs, root: str) -> list[tuple[str, str]]:
    """(schema, table) of every layer folder under `root`, in the warehouse's schemas."""
    base = root.rstrip("/")
    return [
        (s, t)
        for s in SCHEMAS
        for t in fs.children(f"{base}/{s}")
        if not t.startswith(("_", ".")) and fs.is_dir(f"{base}/{s}/{t}")
    ]


def _people(spark, root: str, plan: Plan, user_ids: list[str]) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(person_id, identifiers) of each user id: stitch.persons' rows of their persons, read from the
    layer into a DuckDB table so pipelines/privacy.person_identifiers decides as on the warehouse."""
    import duckdb
    from pyspark.sql import functions as F

    con = duckdb.connect()
    try:
        path = layer_path(root, "stitch.persons")
        if swap.HadoopFS(spark, root).exists(path):
            persons = spark.read.parquet(path).select("person_id", "identifier_kind", "identifier")
            # any identifier, or the keyed hash of one stored hashed (the e-mail): person_identifiers picks
            wanted = sorted(set(user_ids) | {keyed_hash(u) for u in user_ids})
            pids = persons.filter(F.col("identifier").isin(wanted)).select("person_id").distinct()
            rows = persons.join(pids, "person_id", "left_semi").collect()
            con.execute("create schema stitch")
            con.execute("create table stitch.persons (person_id varchar, identifier_kind varchar, identifier varchar)")
            if rows:
                con.executemany("insert into stitch.persons values (?, ?, ?)", [tuple(r) for r in rows])
        return [person_identifiers(con, plan, uid) for uid in user_ids]
    finally:
        con.close()


def _tagger(conds: list[list[str]], ids: list[tuple], salt: str):
    """The mapInArrow function tagging each row with the first request whose person it is (TAG)."""
    case = (
        "case "
        + " ".join(
            f"when coalesce({' or '.join(f'({c})' for c in cs)}, false) then {i}" for i, cs in enumerate(conds) if cs
        )
        + " end"
    )

    def run(batches):
        import duckdb
        import pyarrow as pa

        from pipelines.warehouse import register_udfs

        con = duckdb.connect(config={"threads": 1})  # (the task is the unit of parallelism)
        con.execute("set TimeZone = 'UTC'")
        register_udfs(con, salt)
        con.execute("create table _forget_ids (n integer, kind varchar, identifier varchar, field varchar)")
        if ids:
            con.executemany("insert into _forget_ids values (?, ?, ?, ?)", [list(r) for r in ids])
        try:
            for batch in batches:
                t = pa.Table.from_batches([batch])
                con.register("_rows", t.append_column("__trackplan_i", pa.array(range(t.num_rows), pa.int64())))
                tag = con.sql(f"select ({case})::integer as t from _rows order by __trackplan_i").to_arrow_table()
                con.unregister("_rows")
                yield from t.append_column(TAG, tag.column("t")).to_batches()
        finally:
            con.close()

    return run


def forget_on_spark(spark, root: str, user_ids: list[str], plan: Plan) -> dict:
    """Erase each person behind `user_ids` from every layer under `root` and register them; returns
    {"results": one dict per id (rows, identifiers, audit_id, tables, person_id), "folders": the folders
    rewritten, "recovered": what an interrupted earlier swap left, finished}."""
    if not user_ids or any(not u or not u.strip() for u in user_ids):
        raise ErasureError("--user-id: empty; give the user id to erase")
    salt = hash_salt()  # the register holds keyed hashes: no salt, no erasure
    fs = swap.HadoopFS(spark, root)
    if not fs.exists(root):
        raise ErasureError(f"{root}: no Spark layers there (nothing erased, nothing created)")
    with swap.root_lock(root, "forget"):
        return _forget(spark, fs, root, user_ids, plan, salt)


def _forget(spark, fs, root: str, user_ids: list[str], plan: Plan, salt: str) -> dict:
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StructField, StructType

    recovered = swap.recover(fs, root)
    people = _people(spark, root, plan, user_ids)
    ids: list[tuple] = []
    for n, (person_id, idents) in enumerate(people):
        ids += [(n, *row) for row in erasure_ids(plan, idents)]
    relation = "(select kind, identifier, field from _forget_ids where n = {n})"

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    deleted: list[dict[str, int]] = [{} for _ in user_ids]
    staging = swap.staging_dir(root)
    units: list[tuple[str, str]] = []
    try:
        for schema, table in _layers(fs, root):
            path = layer_path(root, f"{schema}.{table}")
            if not any(f.endswith(".parquet") for f in fs.files(path)):
                continue  # a day-partitioned layer whose every day is gone: no rows, nothing to erase
            # (every file's columns: days written by different plan versions may differ)
            df = spark.read.option("mergeSchema", "true").parquet(path)
            cols = set(df.columns)
            if (schema, table) == ("quality", "check_results"):
                units += _scrub_results(spark, df, people, deleted, path, layer_path(staging, "quality.check_results"))
                continue
            conds = [
                erase_conditions((schema, table), cols, person_id, erasure_fields(plan, idents), relation.format(n=n))
                for n, (person_id, idents) in enumerate(people)
            ]
            if not any(conds):
                continue
            tagged = df.mapInArrow(
                _tagger(conds, ids, salt), StructType([*df.schema.fields, StructField(TAG, IntegerType())])
            ).persist()
            try:
                by_day = DAY in cols and any(c.startswith(f"{DAY}=") for c in fs.children(path))
                keys = [TAG, DAY] if by_day else [TAG]
                hits = tagged.filter(F.col(TAG).isNotNull()).groupBy(*keys).count().collect()
                if not hits:
                    continue
                for r in hits:
                    name = f"{schema}.{table}"
                    deleted[r[TAG]][name] = deleted[r[TAG]].get(name, 0) + r["count"]
                kept = tagged.filter(F.col(TAG).isNull()).drop(TAG)
                new = layer_path(staging, f"{schema}.{table}")
                if by_day:
                    days = sorted({r[DAY] for r in hits}, key=lambda d: (d is None, d))
                    kept = kept.filter(
                        F.col(DAY).isin([d for d in days if d is not None])
                        | (F.col(DAY).isNull() if None in days else F.lit(False))
                    )
                    kept.write.mode("overwrite").partitionBy(DAY).parquet(new)
                    units += [(f"{path}/{_folder(d)}", f"{new}/{_folder(d)}") for d in days]
                else:
                    kept.write.mode("overwrite").parquet(new)
                    units.append((path, new))
            finally:
                tagged.unpersist()
        results = [
            erasure_result(person_id, idents, deleted[n], uuid.uuid4().hex)
            for n, (person_id, idents) in enumerate(people)
        ]
        register = [
            row
            for r, (_, idents) in zip(results, people, strict=True)
            for row in register_rows(plan, idents, r["audit_id"], now)
        ]
        audit = [audit_row(uid, r, now) for uid, r in zip(user_ids, results, strict=True)]
        for table, rows in (("ingest.suppression", register), ("ingest.erasure_audit", audit)):
            units.append(_appended(spark, fs, root, staging, table, rows))
    except BaseException:
        fs.delete(staging)  # not committed: no layer touched yet
        raise
    # from here a failure leaves the committed staging for the next ingest's (or forget's) recover
    swap.replace(fs, staging, units)
    return {"results": results, "folders": [t for t, _ in units], "recovered": recovered}


def _folder(day) -> str:
    return f"{DAY}={'__HIVE_DEFAULT_PARTITION__' if day is None else day.isoformat()}"


def _appended(spark, fs, root: str, staging: str, table: str, rows: list[tuple]) -> tuple[str, str]:
    """The unit replacing layer `table` with its rows and `rows` (the register and the audit are small:
    rewritten whole, so the commit covers them with the rest)."""
    from .ingest import table_types

    ddl = ", ".join(f"`{c}` {t}" for c, t in table_types(table))
    path, new = layer_path(root, table), layer_path(staging, table)
    df = spark.createDataFrame(rows, ddl)
    if fs.exists(path):
        df = spark.read.schema(ddl).parquet(path).unionByName(df)
    df.coalesce(1).write.mode("overwrite").parquet(new)
    return path, new


def _scrub_results(spark, df, people, deleted: list[dict], path: str, new: str) -> list[tuple[str, str]]:
    """quality.check_results: the person's sample rows taken out of each check's metadata (the verdicts
    stay), on the driver: a row per check evaluation, small. The unit rewriting the layer, if any."""
    import pyarrow as pa

    from .python_marts import spark_frame

    arrow = df.toArrow()
    if "metadata" not in arrow.column_names or not arrow.num_rows:
        return []
    metas = arrow.column("metadata").to_pylist()
    memo: dict = {}
    changed = False
    for n, (person_id, idents) in enumerate(people):
        ids = {v for _, v in idents} | ({person_id} if person_id else set())
        for i, meta in enumerate(metas):
            if meta is None:
                continue
            doc, k = scrub_metadata(meta, ids, memo)
            if doc is not None:
                metas[i], changed = doc, True
                name = "quality.check_results (sample rows)"
                deleted[n][name] = deleted[n].get(name, 0) + k
    if not changed:
        return []
    i = arrow.column_names.index("metadata")
    arrow = arrow.set_column(i, arrow.schema.field(i), pa.array(metas, arrow.schema.field(i).type))
    spark_frame(spark, arrow).write.mode("overwrite").parquet(new)
    return [(path, new)]

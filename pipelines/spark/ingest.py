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

import os
import tempfile
from pathlib import PurePosixPath

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

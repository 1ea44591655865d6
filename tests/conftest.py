"""Shared by every test module: plain `pytest` (and `make test`) collect the whole suite from here.

tests/ is on sys.path (pytest's rootdir-relative import of this conftest), so test modules import
their helpers as `from support.<module> import ...` (tests/support/).

Suite-wide setup: the pipeline refuses to hash PII without a salt of its own (there is no built-in
one), so the tests set one; every subprocess they start inherits it. Tests of the refusal unset it.
"""

import os

import pytest

os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-test-suite-salt")


@pytest.fixture(scope="session")
def spark():
    """One SparkSession (one JVM) for the whole test session: the Spark tests share an xdist group, so
    one worker runs them all. Tiny inputs: two shuffle partitions, one per core (code generation on or
    off measured the same: 98 vs 107 JVM CPU-seconds for a first run of every model on the 20-user
    sample). Only the Spark tests ask for it; they skip, with the reason, where Java or pyspark is absent."""
    from pipelines.spark.session import spark_session

    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_sample(spark, tmp_path_factory):
    """One generated sample (40 users) built by both engines, stitch to Python marts, with every
    table's differences already computed (tests/support/spark.py: build_sample): built once per
    test session for the sample-based parity tests of the stitch, the SQL models and the Python
    marts, which read only its returned values."""
    from support.spark import build_sample

    return build_sample(spark, tmp_path_factory.mktemp("spark-sample"))


def pytest_xdist_node_collection_finished(node, ids):
    """With `--dist loadgroup` xdist suffixes a grouped test's node id with its group (`...@spark`), which
    is how its scheduler keeps the Spark tests on one worker (one JVM, one sample built once). pytest 9.2
    stopped honouring that suffix (pytest-dev/pytest-xdist#1386): the Spark tests then spread over both
    workers and each builds the sample, silently. Stop the run in one line instead."""
    if node.config.getoption("dist", None) != "loadgroup":
        return
    spark = [i for i in ids if i.startswith("tests/test_spark_") or "/test_spark_" in i]
    if spark and not any("@" in i for i in spark):
        pytest.exit(
            f"--dist loadgroup did not group the {len(spark)} Spark tests: this pytest and pytest-xdist drop "
            "xdist_group (pytest-dev/pytest-xdist#1386); install the pins of constraints.txt",
            returncode=4,
        )

"""The pipeline on Spark (`trackplan run --engine spark`): the same models and rules as the DuckDB path.

Nothing here imports pyspark at import time: pyspark (and a JVM) load only when the Spark engine runs.
`session` starts a SparkSession; `engine` is the Dagster resource (SparkEngine: master, conf, root);
`assets` the Spark-backed assets and checks (the DuckDB assets' keys); `run` is `trackplan run
--engine spark`; `ingest` validates landed files with the one DuckDB validator per file inside Spark
and builds the ingest layer (events, quarantine, ledger) by the DuckDB path's own SQL; `models` runs
the SQL models (transpiled by models.dialects) over Parquet layers; `databricks` and `pipes_entry`
run the ingest on Databricks through Dagster Pipes.
"""

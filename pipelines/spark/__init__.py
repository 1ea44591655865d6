"""The pipeline on Spark (`trackplan run --engine spark`): the same models and rules as the DuckDB path.

Nothing here is imported by the DuckDB path: pyspark (and a JVM) load only when the Spark engine is
chosen. `session` starts a SparkSession; `models` runs the SQL models (transpiled by models.dialects)
over Parquet layers; `ingest` validates landed files with the one DuckDB validator per file inside
Spark.
"""

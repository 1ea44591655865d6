"""The app shell: the `trackplan` command (cli.py), the report, the portfolio review and the demo data.

It may import every layer below it (pipelines, models, quality_checks, schemas, tracking_plan); nothing
imports it. See tests/support/layers.py.
"""

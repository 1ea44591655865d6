"""The staging layer: SQL models and the plan tables (plan_tables.py)."""

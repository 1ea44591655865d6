"""The quality layer in Dagster: assets (quality.*) and every asset check, over quality_checks/."""

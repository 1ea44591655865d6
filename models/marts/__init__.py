"""Python models of the marts layer: models/marts/<table>.py, each with build(con, plan) (see models/catalog.py)."""

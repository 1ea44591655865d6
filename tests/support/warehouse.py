"""Load a whole generated landing zone into a warehouse as the daily runs would (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.stitch.identity import build_identity


def load_landing(con, plan, landing: Path) -> None:
    """Ingest every landed partition (validated in groups) and stitch identities."""
    ingest_partitions(con, plan, Path(landing), landed_partitions(Path(landing)))
    build_identity(con, plan)

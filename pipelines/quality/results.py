"""A quality_checks CheckOutcome as a Dagster asset-check result (the warehouse and the UI say the same)."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from quality_checks.store import ERROR, CheckOutcome, _jsonable


def personal_rows(asset: str) -> bool:
    """Whether a check's sample rows may be a person's: rows of any layer but the quality layer's own
    aggregates (daily metrics, anomalies), which are no one's."""
    return not asset.startswith("quality.")


def to_dagster(o: CheckOutcome, asset_key=None) -> dg.AssetCheckResult:
    """The Dagster AssetCheckResult of an outcome (metadata values made Dagster-typed).

    The sample rows of a table that holds people's rows (user and device ids, raw lines) stay in the
    warehouse, in quality.check_results, where `trackplan forget` erases them: Dagster keeps check
    metadata in its own event log (and sends it to Dagster+ where runs report there), which an
    erasure cannot reach. Dagster gets their count and where to read them."""
    meta: dict[str, Any] = {}
    for k, v in o.metadata.items():
        if k == "samples" and personal_rows(o.asset):
            meta["sample_rows"] = len(v) if isinstance(v, list) else 0
            meta["samples"] = (
                "in the warehouse: select metadata->'samples' from quality.check_results "
                f"where asset = '{o.asset}' and check_name = '{o.check}' order by run_at desc limit 1"
            )
        elif k == "sql":
            meta[k] = dg.MetadataValue.md(f"```sql\n{v}\n```")
        elif isinstance(v, (bool, int, float, str)) or v is None:
            meta[k] = v if v is not None else dg.MetadataValue.null()
        else:
            meta[k] = dg.MetadataValue.json(json.loads(json.dumps(v, default=_jsonable)))
    if o.observed is not None:
        meta["observed"] = float(o.observed)
    if o.expected_low is not None or o.expected_high is not None:
        meta["expected_range"] = f"[{o.expected_low}, {o.expected_high}]"
    sev = dg.AssetCheckSeverity.ERROR if o.severity == ERROR else dg.AssetCheckSeverity.WARN
    kwargs = {"asset_key": asset_key} if asset_key is not None else {}
    return dg.AssetCheckResult(check_name=o.check, passed=bool(o.passed), severity=sev, metadata=meta, **kwargs)

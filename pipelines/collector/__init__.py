"""trackplan's HTTP collector (``trackplan serve``): real tracking SDKs send to it unchanged.

Routes
  POST /v1/batch (alias /v1/b), /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group,
       /v1/alias  Segment HTTP Tracking API. Write key: HTTP Basic username, else ``writeKey`` in
       the body. Bodies are gzip/deflate-decoded per Content-Encoding (or by gzip magic) and always
       parsed as JSON whatever the Content-Type (Rudder's Node SDK says x-www-form-urlencoded).
  POST /com.snowplowanalytics.snowplow/tp2, GET /i   Snowplow tracker protocol, mapped to Segment
       messages (see ``snowplow.py``). Snowplow trackers send no secret; their app id (``aid``)
       is looked up as the write key, unless a Basic username is sent.
  GET /health, GET /metrics (Prometheus text).

Answers
  200 only after the request's lines are written and fsynced (group commit). 400 only for a body
  that cannot be parsed at all; it is saved with a reason file under ``<landing>/_rejected/``.
  Bad or oversize messages inside a parseable body are landed verbatim (the ingestion quarantines
  them) and never fail the batch, because Segment-family SDKs drop a whole batch on any 4xx.
  401 for an unknown write key when keys are configured. 503 + Retry-After when the in-flight
  byte budget is spent, a body arrives too slowly, or the disk fails: every SDK retries 5xx, while
  Snowplow's tracker retries a 413 forever and Segment's drop it, so 413 is never used.

Write keys
  ``write_keys`` maps write key -> source name (the source names the landing files, sanitized to
  ``[a-z0-9_-]``; the key itself never reaches the filesystem). None accepts any key as source
  ``default``. :func:`serve` reads the file named by env ``TRACKPLAN_WRITE_KEYS`` when no mapping
  is passed: YAML or JSON, either a flat mapping ``{write_key: source}`` or
  ``{"sources": {source: [write_key, ...]}}``.

Landing zone: see ``landing.py``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from .app import Settings, Validator, create_app
from .landing import LandingWriter, recover_parts, sanitize_source

__all__ = ["LandingWriter", "Settings", "create_app", "load_write_keys", "recover_parts", "sanitize_source", "serve"]


def load_write_keys(path: str | os.PathLike) -> dict[str, str]:
    """Read a write-key file (YAML or JSON): ``{key: source}`` or ``{"sources": {source: [keys]}}``."""
    import yaml  # JSON is a subset of YAML, so one parser reads both

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{path}: expected a mapping")
    if isinstance(data.get("sources"), dict):
        keys: dict[str, str] = {}
        for source, listed in data["sources"].items():
            for key in [listed] if isinstance(listed, str) else listed or []:
                keys[str(key)] = str(source)
        return keys
    return {str(k): str(v) for k, v in data.items()}


def _plan_validator(plan: str) -> Validator:
    from tracking_plan.validate import collector_validator  # the one engine, as in ingest

    return collector_validator(plan)


def serve(
    host: str = "127.0.0.1",
    port: int = 8088,
    landing: str | os.PathLike = "landing",
    write_keys: dict[str, str] | None = None,
    validate_plan: str | None = None,
    max_message_bytes: int = 32768,
    roll_bytes: int = 64 << 20,
    roll_seconds: float = 60,
    **options: Any,
) -> None:
    """Run the collector with uvicorn until SIGINT/SIGTERM (which flush and close open files)."""
    import uvicorn

    if write_keys is None and os.environ.get("TRACKPLAN_WRITE_KEYS"):
        write_keys = load_write_keys(os.environ["TRACKPLAN_WRITE_KEYS"])
    validator = _plan_validator(validate_plan) if validate_plan else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # access lines are JSON already
    for name in ("trackplan.collector.access", "trackplan.collector"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        lg.propagate = False
    app = create_app(landing, write_keys, validator, max_message_bytes, roll_bytes, roll_seconds, **options)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,  # ours is structured JSON (trackplan.collector.access)
        log_level="info",
        timeout_graceful_shutdown=30,  # in-flight requests finish their fsync before files close
    )
    uvicorn.Server(config).run()

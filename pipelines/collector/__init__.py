"""trackplan's HTTP collector (``trackplan serve``): real tracking SDKs send to it unchanged.

Routes
  POST /v1/batch (aliases /v1/b: analytics.js batching; /v1/import), /v1/track, /v1/identify,
       /v1/page, /v1/screen, /v1/group, /v1/alias and analytics.js's short forms /v1/t, /v1/i,
       /v1/p, /v1/s, /v1/g, /v1/a  Segment HTTP Tracking API. Write key: HTTP Basic username, else ``writeKey`` in
       the body. Bodies are gzip/deflate-decoded per Content-Encoding (or by gzip magic) and always
       parsed as JSON whatever the Content-Type (Rudder's Node SDK says x-www-form-urlencoded).
  POST /com.snowplowanalytics.snowplow/tp2, GET /i   Snowplow tracker protocol, mapped to Segment
       messages (see ``snowplow.py``). Snowplow trackers send no secret; their app id (``aid``)
       is looked up as the write key, unless a Basic username is sent.
  GET /health, GET /metrics (Prometheus text).
  OPTIONS on every route: CORS preflight (see ``app.Cors``); answers echo the Origin with credentials.

Answers
  200 only after the request's lines are written and fsynced (group commit). 400 only for a body
  that cannot be parsed at all; it is saved with a reason file under ``<landing>/_rejected/``
  (capped in size and rate) once the sender is authenticated; nothing is stored before that (401).
  A message holding a value that re-writing would change is landed as its original text in a
  ``trackplan_unkept`` record (see ``segment.loads_checked``), never re-written.
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
from .protocol import HEADER_TIMEOUT, KEEP_ALIVE_TIMEOUT, protocol_class

__all__ = [
    "LandingWriter",
    "Settings",
    "create_app",
    "load_sources",
    "load_write_keys",
    "recover_parts",
    "sanitize_source",
    "serve",
]


def load_write_keys(path: str | os.PathLike) -> dict[str, str]:
    """Read a write-key file (YAML or JSON): ``{key: source}`` or ``{"sources": {source: [keys]}}``."""
    return load_sources(path)[0]


def load_sources(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, list[str]] | None]:
    """Read a write-key file: ``({write_key: source}, {source: allowed browser origins} or None)``.

    Formats (YAML or JSON): a flat ``{key: source}``; ``{"sources": {source: [keys]}}``; or per
    source ``{"sources": {source: {"write_keys": [...], "allowed_origins": [...]}}}``. A source
    without ``allowed_origins`` accepts every origin (``["*"]`` says so explicitly).
    """
    import yaml  # JSON is a subset of YAML, so one parser reads both

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{path}: expected a mapping")
    if not isinstance(data.get("sources"), dict):
        return {str(k): str(v) for k, v in data.items()}, None
    keys: dict[str, str] = {}
    origins: dict[str, list[str]] = {}
    for source, listed in data["sources"].items():
        if isinstance(listed, dict):
            unknown = set(listed) - {"write_keys", "allowed_origins"}
            if unknown:
                raise ValueError(f"{path}: sources.{source}: unknown option {min(unknown)!r}")
            allowed = listed.get("allowed_origins")
            if allowed is not None:
                origins[str(source)] = [
                    str(o).rstrip("/") for o in ([allowed] if isinstance(allowed, str) else allowed)
                ]
            listed = listed.get("write_keys")
        for key in [listed] if isinstance(listed, str) else listed or []:
            keys[str(key)] = str(source)
    return keys, origins or None


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
    header_timeout: float = HEADER_TIMEOUT,
    allowed_origins: dict[str, list[str]] | None = None,
    **options: Any,
) -> None:
    """Run the collector with uvicorn until SIGINT/SIGTERM (which flush and close open files)."""
    import uvicorn

    if not 0 <= int(port) <= 65535:  # (the socket layer would take it modulo 65536: 99999 listened on 34463)
        raise ValueError(f"port {port} is not a TCP port (0-65535; 0: any free one)")

    if write_keys is None and os.environ.get("TRACKPLAN_WRITE_KEYS"):
        write_keys, origins = load_sources(os.environ["TRACKPLAN_WRITE_KEYS"])
        allowed_origins = allowed_origins if allowed_origins is not None else origins
    validator = _plan_validator(validate_plan) if validate_plan else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # access lines are JSON already
    for name in ("trackplan.collector.access", "trackplan.collector"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        lg.propagate = False
    app = create_app(landing, write_keys, validator, max_message_bytes, roll_bytes, roll_seconds,
                     allowed_origins=allowed_origins, **options)  # fmt: skip
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,  # ours is structured JSON (trackplan.collector.access)
        log_level="info",
        timeout_graceful_shutdown=30,  # in-flight requests finish their fsync before files close
        http=protocol_class(header_timeout),  # slow or half-sent headers: closed after header_timeout
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        h11_max_incomplete_event_size=64 * 1024,  # header bytes, if h11 is ever used
    )
    uvicorn.Server(config).run()

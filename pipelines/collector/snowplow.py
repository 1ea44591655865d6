"""Map Snowplow tracker protocol (tp2) events to Segment-spec messages.

Field names follow the Snowplow tracker protocol: ``e`` event type (pv page view, pp page ping,
se structured, ue self-describing, tr/ti transaction), ``eid`` event id, ``uid``/``duid`` user and
domain user ids, ``sid``/``vid`` session id and index, ``dtm``/``stm``/``ttm`` device-created,
device-sent and true timestamps in epoch ms, ``ue_pr``/``ue_px`` the self-describing event as JSON
or URL-safe base64 JSON, ``co``/``cx`` the contexts likewise.

Nothing is dropped: every tp2 field without a Segment home lands in ``context.snowplow``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .segment import loads_checked

# tp2 fields consumed by the mapping below; everything else is kept under context.snowplow.
_MAPPED = {
    "e", "eid", "uid", "duid", "sid", "vid", "ip", "ua", "lang", "tz", "res", "vp",
    "url", "page", "refr", "dtm", "stm", "ttm", "ue_pr", "ue_px", "co", "cx", "tv",
    "se_ca", "se_ac", "se_la", "se_pr", "se_va", "pp_mix", "pp_max", "pp_miy", "pp_may",
}  # fmt: skip


class SnowplowError(ValueError):
    """A tp2 field could not be decoded (bad base64 or JSON)."""


def decode_json_field(event: dict, plain: str, b64: str) -> Any:
    """Decode ``event[plain]`` (JSON text) or ``event[b64]`` (URL-safe base64 of JSON); None if absent."""
    if event.get(b64):
        raw = str(event[b64]).strip()
        try:
            # Trackers strip '=' padding or send standard base64; accept both alphabets.
            text = base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_") + "=" * (-len(raw) % 4))
            return _exact(text, b64)
        except (binascii.Error, ValueError) as exc:
            raise SnowplowError(f"{b64}: {exc}") from exc
    if event.get(plain):
        try:
            return _exact(str(event[plain]).encode("utf-8", "surrogatepass"), plain)
        except ValueError as exc:
            raise SnowplowError(f"{plain}: {exc}") from exc
    return None


def _exact(text: bytes, field: str) -> Any:
    # A value that would change when re-written (NaN, a long float, a repeated key) is not
    # mapped: the event is landed as sent, its fields all strings, for the ingestion to quarantine.
    value, exact = loads_checked(text)
    if not exact:
        raise SnowplowError(f"{field} holds a value that cannot be kept exactly")
    return value


def schema_name(iglu_uri: str) -> str:
    """``iglu:com.acme/link_click/jsonschema/1-0-0`` -> ``link_click``."""
    parts = str(iglu_uri).removeprefix("iglu:").split("/")
    return parts[1] if len(parts) >= 2 else str(iglu_uri)


def _ms_to_iso(ms: Any) -> str | None:
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _num(value: Any) -> Any:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return int(f) if f.is_integer() and "." not in str(value) else f


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def to_segment(event: dict) -> dict:
    """Translate one tp2 event (a flat dict of strings) into a Segment-spec message."""
    e = event.get("e")
    msg: dict[str, Any] = {}
    props: dict[str, Any] = {}
    page = _drop_none({"url": event.get("url"), "title": event.get("page"), "referrer": event.get("refr")})
    if isinstance(event.get("url"), str):  # Segment's page fields path and search come from the URL
        parts = urlsplit(event["url"])
        page["path"] = parts.path or "/"
        if parts.query:
            page["search"] = "?" + parts.query
    snowplow: dict[str, Any] = {k: v for k, v in event.items() if k not in _MAPPED}

    if e == "pv":
        msg["type"] = "page"
        if event.get("page"):
            msg["name"] = event["page"]
        props.update(page)
    elif e == "pp":
        msg["type"] = "track"
        msg["event"] = "page_ping"
        props.update(page)
        for tp2, name in (("pp_mix", "min_x"), ("pp_max", "max_x"), ("pp_miy", "min_y"), ("pp_may", "max_y")):
            if tp2 in event:
                props[name] = _num(event[tp2])
    elif e == "se":
        msg["type"] = "track"
        # Structured events name an action within a category; the action is the event.
        msg["event"] = event.get("se_ac") or event.get("se_ca") or "structured"
        props.update(
            _drop_none(
                {
                    "category": event.get("se_ca"),
                    "action": event.get("se_ac"),
                    "label": event.get("se_la"),
                    "property": event.get("se_pr"),
                    "value": _num(event["se_va"]) if "se_va" in event else None,
                }
            )
        )
    elif e == "ue":
        envelope = decode_json_field(event, "ue_pr", "ue_px") or {}
        inner = envelope.get("data") if isinstance(envelope, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        schema = inner.get("schema", "")
        data = inner.get("data") if isinstance(inner.get("data"), dict) else {}
        name = schema_name(schema) if schema else "unstruct_event"
        snowplow["schema"] = schema
        if name == "screen_view":
            msg["type"] = "screen"
            if data.get("name"):
                msg["name"] = data["name"]
        else:
            msg["type"] = "track"
            msg["event"] = name
        props.update(data)
    else:
        # Transactions and anything newer: keep the raw code as the event name, fields as-is.
        msg["type"] = "track"
        msg["event"] = str(e) if e else "unknown"

    contexts = decode_json_field(event, "co", "cx")
    if isinstance(contexts, dict) and isinstance(contexts.get("data"), list):
        snowplow["contexts"] = contexts["data"]

    context: dict[str, Any] = _drop_none(
        {
            "ip": event.get("ip"),
            "userAgent": event.get("ua"),
            "locale": event.get("lang"),
            "timezone": event.get("tz"),
            "sessionId": event.get("sid"),
            "sessionIndex": _num(event["vid"]) if "vid" in event else None,
            "library": {"name": "snowplow", "version": event["tv"]} if "tv" in event else None,
        }
    )
    if page:
        context["page"] = page
    for field, key in (("res", "screen"), ("vp", "viewport")):
        if isinstance(event.get(field), str) and "x" in event[field]:
            w, _, h = event[field].partition("x")
            context[key] = {"width": _num(w), "height": _num(h)}
    context["snowplow"] = snowplow

    msg.update(
        _drop_none(
            {
                "messageId": event.get("eid"),
                "userId": event.get("uid"),
                "anonymousId": event.get("duid"),
                # True timestamp (set by the app) wins over the device clock.
                "timestamp": _ms_to_iso(event.get("ttm")) or _ms_to_iso(event.get("dtm")),
                "originalTimestamp": _ms_to_iso(event.get("dtm")),
                "sentAt": _ms_to_iso(event.get("stm")),
            }
        )
    )
    msg["properties"] = props
    msg["context"] = context
    return msg


def events_from_body(body: Any) -> list[dict]:
    """The tp2 events of a POST body (``{"schema": payload_data, "data": [...]}``)."""
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return body["data"]
    if isinstance(body, dict) and "e" in body:
        return [body]
    raise SnowplowError("not a payload_data body")

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

import orjson

from .exactjson import loads_checked

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
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


# --- Snowplow's enriched TSV (what its S3 loader writes and its dbt packages read) -----------------

# The 131 fields of an enriched event, in their order: as snowplow/snowplow-python-analytics-sdk's
# ENRICHED_EVENT_FIELD_TYPES (snowplow_analytics_sdk/event_transformer.py) lists them.
ENRICHED_FIELDS = (
    "app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "event", "event_id", "txn_id",
    "name_tracker", "v_tracker", "v_collector", "v_etl", "user_id", "user_ipaddress", "user_fingerprint",
    "domain_userid", "domain_sessionidx", "network_userid", "geo_country", "geo_region", "geo_city", "geo_zipcode",
    "geo_latitude", "geo_longitude", "geo_region_name", "ip_isp", "ip_organization", "ip_domain", "ip_netspeed",
    "page_url", "page_title", "page_referrer", "page_urlscheme", "page_urlhost", "page_urlport", "page_urlpath",
    "page_urlquery", "page_urlfragment", "refr_urlscheme", "refr_urlhost", "refr_urlport", "refr_urlpath",
    "refr_urlquery", "refr_urlfragment", "refr_medium", "refr_source", "refr_term", "mkt_medium", "mkt_source",
    "mkt_term", "mkt_content", "mkt_campaign", "contexts", "se_category", "se_action", "se_label", "se_property",
    "se_value", "unstruct_event", "tr_orderid", "tr_affiliation", "tr_total", "tr_tax", "tr_shipping", "tr_city",
    "tr_state", "tr_country", "ti_orderid", "ti_sku", "ti_name", "ti_category", "ti_price", "ti_quantity",
    "pp_xoffset_min", "pp_xoffset_max", "pp_yoffset_min", "pp_yoffset_max", "useragent", "br_name", "br_family",
    "br_version", "br_type", "br_renderengine", "br_lang", "br_features_pdf", "br_features_flash",
    "br_features_java", "br_features_director", "br_features_quicktime", "br_features_realplayer",
    "br_features_windowsmedia", "br_features_gears", "br_features_silverlight", "br_cookies", "br_colordepth",
    "br_viewwidth", "br_viewheight", "os_name", "os_family", "os_manufacturer", "os_timezone", "dvce_type",
    "dvce_ismobile", "dvce_screenwidth", "dvce_screenheight", "doc_charset", "doc_width", "doc_height",
    "tr_currency", "tr_total_base", "tr_tax_base", "tr_shipping_base", "ti_currency", "ti_price_base",
    "base_currency", "geo_timezone", "mkt_clickid", "mkt_network", "etl_tags", "dvce_sent_tstamp",
    "refr_domain_userid", "refr_device_tstamp", "derived_contexts", "domain_sessionid", "derived_tstamp",
    "event_vendor", "event_name", "event_format", "event_version", "event_fingerprint", "true_tstamp",
)  # fmt: skip

# enriched `event` values → tp2 `e` codes
_EVENT_CODES = {
    "page_view": "pv",
    "page_ping": "pp",
    "struct": "se",
    "unstruct": "ue",
    "transaction": "tr",
    "transaction_item": "ti",
}
# enriched field → tp2 field, for the fields `to_segment` maps; the rest go to context.snowplow
_TO_TP2 = {
    "event_id": "eid", "user_id": "uid", "domain_userid": "duid", "domain_sessionid": "sid",
    "domain_sessionidx": "vid", "user_ipaddress": "ip", "useragent": "ua", "br_lang": "lang",
    "os_timezone": "tz", "page_url": "url", "page_title": "page", "page_referrer": "refr", "v_tracker": "tv",
    "unstruct_event": "ue_pr", "contexts": "co", "se_category": "se_ca", "se_action": "se_ac",
    "se_label": "se_la", "se_property": "se_pr", "se_value": "se_va", "pp_xoffset_min": "pp_mix",
    "pp_xoffset_max": "pp_max", "pp_yoffset_min": "pp_miy", "pp_yoffset_max": "pp_may",
}  # fmt: skip
_TSTAMPS = {"dvce_created_tstamp": "dtm", "dvce_sent_tstamp": "stm", "true_tstamp": "ttm"}
_PAIRS = {("dvce_screenwidth", "dvce_screenheight"): "res", ("br_viewwidth", "br_viewheight"): "vp"}
_JSON_KEPT = ("derived_contexts",)  # JSON columns kept parsed under context.snowplow


def _tstamp_ms(text: str) -> int:
    """``2024-01-01 10:00:00.123`` (UTC, as the enriched format writes it) → epoch milliseconds."""
    t = datetime.fromisoformat(text.replace(" ", "T"))
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    return round(t.timestamp() * 1000)


def enriched_to_segment(line: str) -> dict:
    """One enriched TSV line → a Segment-spec message, through the collector's tp2 mapping.

    Fields are split on tabs and must be exactly the 131 of ENRICHED_FIELDS; the event type, ids,
    timestamps, page, user agent, structured-event fields, the self-describing event and the contexts
    become their tp2 fields and go through `to_segment`; collector_tstamp becomes receivedAt (the
    collector's own receipt time); every other non-empty field stays under context.snowplow by its
    enriched name. Raises SnowplowError (with the field) on a line it cannot read."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(ENRICHED_FIELDS):
        raise SnowplowError(
            f"expected {len(ENRICHED_FIELDS)} tab-separated fields of an enriched event, got {len(fields)}"
        )
    row = {k: v for k, v in zip(ENRICHED_FIELDS, fields, strict=True) if v != ""}
    tp2: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in row.items():
        if k == "event":
            tp2["e"] = _EVENT_CODES.get(v, v)
        elif k in _TO_TP2:
            tp2[_TO_TP2[k]] = v
        elif k in _TSTAMPS:
            try:
                tp2[_TSTAMPS[k]] = _tstamp_ms(v)
            except ValueError as exc:
                raise SnowplowError(f"{k}: not a timestamp ({v!r})") from exc
        elif k in _JSON_KEPT:
            try:
                doc = orjson.loads(v)
            except ValueError as exc:
                raise SnowplowError(f"{k}: {exc}") from exc
            extra[k] = doc.get("data", doc) if isinstance(doc, dict) else doc
        elif not any(k in pair for pair in _PAIRS):
            extra[k] = v
    for (w, h), key in _PAIRS.items():
        if w in row and h in row:
            tp2[key] = f"{row[w]}x{row[h]}"
        else:
            extra.update({f: row[f] for f in (w, h) if f in row})
    try:
        received = _ms_to_iso(_tstamp_ms(row["collector_tstamp"])) if "collector_tstamp" in row else None
    except ValueError as exc:
        raise SnowplowError(f"collector_tstamp: not a timestamp ({row['collector_tstamp']!r})") from exc
    msg = to_segment(tp2)
    msg["context"]["snowplow"].update(extra)
    if received:
        msg["receivedAt"] = received
    return msg

"""The tp2 → Segment mapping now lives in `tracking_plan.snowplow` (the landing reader maps Snowplow's
enriched TSV through the same function); re-exported here for the collector."""

from tracking_plan.snowplow import SnowplowError, decode_json_field, events_from_body, schema_name, to_segment

__all__ = ["SnowplowError", "decode_json_field", "events_from_body", "schema_name", "to_segment"]

"""Typed models of the tracking plan. The YAML format is documented in README.md ("The plan format")."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .quality_settings import QualitySettings  # plan.yaml `defaults: quality:` (tuning of the checks)

PropType = Literal["string", "integer", "number", "boolean", "timestamp", "object", "array"]
EventType = Literal["track", "page", "screen", "identify", "group", "alias"]
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
DATE = r"^\d{4}-\d{2}-\d{2}$"


class Strict(BaseModel):
    # Unknown keys are errors: a typo like `requried: true` must not silently mean "optional".
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Property(Strict):
    """One property: its type and constraints. `ref` points at a shared definition."""

    ref: str | None = None
    type: PropType | None = None
    description: str | None = None
    required: bool | None = None
    nullable: bool = False
    pii: bool = False
    enum: list[Any] | None = None
    pattern: str | None = None
    format: Literal["email", "uri", "uuid", "date", "date-time", "ipv4", "currency"] | None = None
    # int first: a bound like 9223372036854775807 stays exact (a float would round it up)
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    items: Property | None = None
    properties: dict[str, Property] | None = None
    additional_properties: bool | None = None
    examples: list[Any] | None = None

    @property
    def is_required(self) -> bool:
        return bool(self.required)


class Event(Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    owner: str | None = None
    status: Literal["active", "deprecated"] = "active"
    type: EventType = "track"
    version: str = Field(default="1-0-0", pattern=r"^\d+-\d+-\d+$")  # SchemaVer of this event
    consent: str | None = None
    sunset: str | None = Field(default=None, pattern=DATE)
    replaced_by: str | None = None
    tags: list[str] = []
    unexpected_properties: Literal["allow", "warn", "reject"] | None = None
    properties: dict[str, Property] = {}
    examples: list[dict[str, Any]] = []
    # set by the loader: where the event came from
    source_file: str | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name_fits_a_file_name(cls, v: str) -> str:
        # a name makes file names (the schema's folder, the catalog's page): file systems take 255 bytes
        if len(v.encode("utf-8")) > 200:
            raise ValueError(f"an event name is at most 200 bytes of UTF-8, not {len(v.encode('utf-8'))}")
        return v


class Owner(Strict):
    name: str
    email: str | None = None
    team: str | None = None


class Conventions(Strict):
    event_name: Literal["title_case_object_action", "any"] = "title_case_object_action"
    property_name: Literal["snake_case", "camel_case", "any"] = "snake_case"


class Defaults(Strict):
    unexpected_properties: Literal["allow", "warn", "reject"] = "warn"
    max_event_bytes: int = 32768  # Segment's own per-message limit
    max_future_hours: float = 24.0  # after clock-skew correction; beyond this the clock is wrong
    max_age_days: int = 730  # older events are backfills gone wrong, not traffic
    session_timeout_minutes: int = 30
    # a client session id longer than this is cut there (Snowplow's max_session_days: a tracker that
    # never rotates its session cookie, or a bot); later events of it are in no session
    max_session_days: int = 3
    dedup_lookback_days: int = 7
    activation_window_days: int = 7
    quality: QualitySettings = QualitySettings()


class PlanHeader(Strict):
    name: str
    version: str
    description: str | None = None
    owners: list[Owner | str] = []
    conventions: Conventions = Conventions()
    defaults: Defaults = Defaults()

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(str(v)):
            raise ValueError(f"version {v!r} is not semver MAJOR.MINOR.PATCH")
        return str(v)


class Identifier(Strict):
    name: str
    source: str  # a field path in the event: userId, anonymousId, traits.email, context.traits.email
    priority: int = 100  # lower wins when a person would hold too many identifiers
    max_per_person: int | None = None
    pii: bool = False
    description: str | None = None


# the JSON columns whose top-level keys the ingest stores hashed when identity.yaml names one as the
# source of a pii identifier (tracking_plan.validate.pii_identifiers, pipelines/ingest/load.py)
PII_COLUMNS = ("traits", "properties", "context.traits")
_HASHED_SOURCE = rf"({'|'.join(re.escape(c) for c in PII_COLUMNS)})\.[A-Za-z_][A-Za-z0-9_]*"


class Identity(Strict):
    identifiers: list[Identifier] = []
    alias_merges: bool = True
    anonymous_events: Literal["latest", "first"] = "latest"
    hash_pii_identifiers: bool = True

    @model_validator(mode="after")
    def _hashable(self) -> Identity:
        # a pii identifier is stored as its keyed hash (pipelines/ingest/load.py): a key at the top of
        # the traits, the properties or context.traits, which the ingest rewrites on every event
        if self.hash_pii_identifiers:
            for i in self.identifiers:
                if i.pii and not re.fullmatch(_HASHED_SOURCE, i.source):
                    raise ValueError(
                        f"identifier {i.name!r}: pii with source {i.source!r}: only a top-level key of traits, "
                        "properties or context.traits is stored hashed (e.g. traits.email); say pii: false, or "
                        "hash_pii_identifiers: false to store it as sent"
                    )
        return self


class ConsentCategory(Strict):
    description: str | None = None
    required: bool = False  # strictly necessary: no consent needed
    without_consent: Literal["drop", "strip_pii", "keep"] = "drop"


class Consent(Strict):
    field: str = "context.consent.categoryPreferences"
    default: Literal["granted", "denied"] = "granted"
    categories: dict[str, ConsentCategory] = {}

    @field_validator("field")
    @classmethod
    def _under_context(cls, v: str) -> str:
        # where SDKs put it (Segment: context.consent.categoryPreferences); read with the context
        if not re.fullmatch(r"context(\.[A-Za-z_][A-Za-z0-9_]*)+", v):
            raise ValueError(
                f"field {v!r} must be a path of plain names under context, e.g. context.consent.categoryPreferences"
            )
        return v

    @field_validator("categories")
    @classmethod
    def _distinct(cls, v: dict) -> dict:
        # a category is looked up in the preferences whatever its case (OneTrust sends "Analytics")
        seen: dict[str, str] = {}
        for name in v:
            if name.lower() in seen:
                raise ValueError(
                    f"categories {seen[name.lower()]!r} and {name!r} differ only in case: the preferences are read ignoring case"
                )
            seen[name.lower()] = name
        return v


class EventRef(Strict):
    event: str
    where: dict[str, Any] | None = None  # property equals value, e.g. {plan: pro}


class Activation(Strict):
    event: str
    window_days: int = 7
    min_count: int = 1


class FunnelExclusion(Strict):
    event: str
    between: tuple[int, int] | None = None  # 1-based step indices; default: anywhere in the funnel


class Funnel(Strict):
    key: str
    description: str | None = None
    steps: list[str] = Field(min_length=2)
    window_hours: float = 168
    exclusions: list[FunnelExclusion] = []


class Objective(Strict):
    key: str
    description: str | None = None
    owner: str | None = None


class KPI(Strict):
    key: str
    name: str | None = None
    objective: str | None = None
    owner: str | None = None
    definition: str | None = None
    measure: Literal[
        "activation_rate",
        "conversion_rate",
        "event_count",
        "active_persons",
        "revenue",
        "retention",
        "average_property",
    ] = "event_count"
    event: str | None = None
    property: str | None = None
    period_days: int | None = None
    unit: str | None = None
    target: float | None = None
    direction: Literal["increase", "decrease"] = "increase"
    deadline: str | None = Field(default=None, pattern=DATE)
    financial: bool = False


class Experiment(Strict):
    key: str
    hypothesis: str | None = None
    exposure_event: str = "Experiment Viewed"
    variants: list[str] = ["control", "treatment"]
    control: str = "control"
    allocation: dict[str, float] | None = None
    primary_metric: str  # a KPI key or an event name: conversion to it after exposure
    guardrail_metrics: list[str] = []
    mde: float = 0.05  # relative minimum detectable effect
    alpha: float = 0.05
    power: float = 0.8
    start: str | None = Field(default=None, pattern=DATE)
    planned_days: int | None = None
    sequential: bool = True

    @field_validator("mde")
    @classmethod
    def _mde(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):  # NaN fails too: no sample size detects "no effect"
            raise ValueError(f"mde must be > 0 (a relative lift: 0.05 is +5%), not {v:g}")
        return v

    @field_validator("alpha", "power")
    @classmethod
    def _probability(cls, v: float, info) -> float:
        if not 0 < v < 1:  # NaN fails too
            raise ValueError(f"{info.field_name} must be in (0, 1), not {v:g}")
        return v


class Costs(Strict):
    one_off: float = 0.0
    recurring_monthly: float = 0.0
    one_off_range: tuple[float, float] | None = None
    recurring_range: tuple[float, float] | None = None


class Evaluation(Strict):
    method: Literal["ab_test", "diff_in_diff", "matching", "interrupted_time_series", "before_after"]
    experiment: str | None = None
    segment_field: str | None = None  # event field path whose value puts a person in a segment
    treated: list[str] = []
    control: list[str] = []
    treatment_event: str | None = None  # matching: persons who did this event are treated
    treatment_where: dict[str, Any] | None = None  # ... with these property values, e.g. {integration: slack}
    covariates: list[str] = []
    window_days: int = 28


class Adoption(Strict):
    low: float = 0.5
    base: float = 1.0
    high: float = 1.5


class DecisionRules(Strict):
    scale_if_prob_npv_positive: float = 0.8
    stop_if_prob_npv_positive: float = 0.2
    min_evidence_to_scale: Literal["A", "B", "C", "D"] = "B"


class Initiative(Strict):
    key: str
    name: str | None = None
    hypothesis: str | None = None
    owner: str | None = None
    kpi: str
    start: str = Field(pattern=DATE)
    costs: Costs = Costs()
    value_per_conversion: float = 0.0
    horizon_months: int = 24
    discount_rate: float = 0.1
    evaluation: Evaluation
    adoption: Adoption = Adoption()
    non_financial_kpis: list[str] = []
    decision_rules: DecisionRules = DecisionRules()


class Retention(Strict):
    type: Literal["first_time", "recurring"] = "first_time"  # Amplitude's / PostHog's two cohortings
    target_event: str | None = None  # what puts a person in a cohort (default: the signup event)
    returning_event: str | None = None  # what counts as coming back (default: any event)


class Metrics(Strict):
    signup: EventRef | None = None
    activation: Activation | None = None
    purchase: EventRef | None = None
    churn: EventRef | None = None  # default: Subscription Cancelled
    gross_margin: float = Field(default=0.8, ge=0, le=1)  # for margin-adjusted CLV
    retention: Retention = Retention()
    objectives: list[Objective] = []
    kpis: list[KPI] = []
    funnels: list[Funnel] = []
    experiments: list[Experiment] = []
    initiatives: list[Initiative] = []
    costs_file: str | None = None  # CSV of marketing spend: month, channel, spend


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str
    header: PlanHeader
    events: dict[str, Event]
    shared_properties: dict[str, Property] = {}
    identity: Identity = Identity()
    consent: Consent = Consent()
    metrics: Metrics = Metrics()

    @property
    def version(self) -> str:
        return self.header.version

    def event(self, name: str) -> Event | None:
        return self.events.get(name)

    def events_of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events.values() if e.type == type_]


Property.model_rebuild()

"""Tracking bugs (at `bug_rate`) and data-quality incidents (only when asked for).

Bugs are what real instrumentation gets wrong every day; incidents are single, dated breakages
the quality checks must catch on the right event and day. Both are recorded in `_truth.json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

BUG_KINDS = ("wrong_type", "unknown_event", "missing_required", "duplicate", "clock_skew", "malformed")
# duplicates and clock skew leave the event valid (ingestion de-duplicates and corrects them)
BUG_WEIGHTS = (0.20, 0.15, 0.20, 0.20, 0.15, 0.10)
INVALID_KINDS = frozenset({"wrong_type", "unknown_event", "missing_required", "malformed"})

TYPE_NAMES = {
    "page": "Page Viewed",
    "screen": "Screen Viewed",
    "identify": "User Identified",
    "group": "Company Grouped",
}


def event_name(ev: dict) -> str:
    """The plan event a message is validated against (track: its name; other calls: by type)."""
    t = ev.get("type")
    return ev.get("event") if t == "track" else TYPE_NAMES.get(t, t)


def payload(ev: dict) -> dict | None:
    return ev.get("traits") if ev.get("type") in ("identify", "group") else ev.get("properties")


def misspell(name: str, u: float) -> str:
    """A believable wrong spelling: dropped last letter, lower case, or the object/action swapped."""
    words = name.split()
    if u < 0.4:
        return name[:-1]  # "Order Completed" -> "Order Complete"
    if u < 0.7 or len(words) < 2:
        return name.lower()
    return " ".join(words[::-1])


@dataclass(frozen=True)
class Incident:
    """One planted data-quality incident. Build them with the class methods."""

    kind: str  # volume_drop | type_change | new_event | null_spike | silence
    event: str
    day: date  # the day it happens (volume_drop, null_spike) or starts (the others)
    property: str | None = None
    name: str | None = None  # new_event: the misspelled name that appears
    share: float = 1.0  # volume_drop: share kept; null_spike: share nulled; new_event: rate per source event

    @classmethod
    def volume_drop(cls, event: str, day: date, keep: float = 0.05) -> Incident:
        return cls("volume_drop", event, day, share=keep)

    @classmethod
    def type_change(cls, event: str, property: str, from_day: date) -> Incident:
        return cls("type_change", event, from_day, property=property)

    @classmethod
    def new_event(cls, name: str, from_day: date, like: str = "Task Completed", rate: float = 0.3) -> Incident:
        """From `from_day`, `name` is also sent alongside a share `rate` of `like` events."""
        return cls("new_event", like, from_day, name=name, share=rate)

    @classmethod
    def null_spike(cls, event: str, property: str, day: date, share: float = 0.6) -> Incident:
        return cls("null_spike", event, day, property=property, share=share)

    @classmethod
    def silence(cls, event: str, from_day: date) -> Incident:
        return cls("silence", event, from_day)

    def active_on(self, d: date) -> bool:
        if self.kind in ("volume_drop", "null_spike"):
            return d == self.day
        return d >= self.day

    def to_dict(self) -> dict:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


def apply_incidents(entries: list, d: date, incidents: list[Incident], u, stats: dict, required: dict) -> list:
    """Apply the incidents active on `d` to a day's entries (t, sent, recv, flags, ev, valid)."""
    todays = [i for i in incidents if i.active_on(d)]
    if not todays:
        return entries
    out = []
    for ent in entries:
        ev = ent[4]
        name = event_name(ev)
        keep = True
        for inc in todays:
            if inc.event != name:
                continue
            key = f"{inc.kind}:{inc.event}"
            if inc.kind == "silence" or (inc.kind == "volume_drop" and u() >= inc.share):
                keep = False
                stats[key] = stats.get(key, 0) + 1
                break
            pl = payload(ev)
            if inc.kind == "type_change" and pl is not None and pl.get(inc.property) is not None:
                if not isinstance(pl[inc.property], str):
                    pl[inc.property] = str(pl[inc.property])
                    ent = (*ent[:5], False)
                stats[key] = stats.get(key, 0) + 1
            elif inc.kind == "null_spike" and pl is not None and u() < inc.share:
                pl[inc.property] = None
                if inc.property in required.get(name, ()):
                    ent = (*ent[:5], False)
                stats[key] = stats.get(key, 0) + 1
            elif inc.kind == "new_event" and ev.get("type") == "track" and u() < inc.share:
                twin = {**ev, "event": inc.name, "properties": dict(ev.get("properties") or {})}
                out.append((ent[0] + 1, ent[1] + 1, ent[2] + 1, ent[3], twin, False))
                stats[key] = stats.get(key, 0) + 1
        if keep:
            out.append(ent)
    out.sort(key=lambda e: e[2])
    return out

"""Turns a simulated day into landing files: delivery times, ids, incidents, bugs, JSON lines.

Layout: `<out>/date=YYYY-MM-DD/events-<n>.jsonl` where the date is the UTC date of `receivedAt`.
Some days are gzipped and one part is a Segment batch body, so every reader path is exercised.
"""

from __future__ import annotations

import gzip
import io
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson

from .faults import (
    BUG_KINDS,
    BUG_WEIGHTS,
    INVALID_KINDS,
    apply_incidents,
    event_name,
    misspell,
    payload,
)
from .rand import Stream, uuids
from .sim import DAY, FLAG_MKT_DECLINED, HOUR, IOS, SERVER, WEB

LINES_PER_FILE = 100_000  # keeps each file a few tens of MB: parallel-friendly, not too many files
CLOCK_SKEW_HOURS = (1, 14)  # device clocks off by this many hours (either way)


def _iso(ms: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").tolist()]


def _one_iso(ms: int) -> str:
    return _iso(np.array([ms], dtype=np.int64))[0]


class PlanFacts:
    """What the bug injector needs from the plan: required and scalar-typed properties per event."""

    def __init__(self, plan):
        self.required: dict[str, tuple[str, ...]] = {}
        self.scalar: dict[str, tuple[str, ...]] = {}
        for name, ev in plan.events.items():
            self.required[name] = tuple(k for k, p in ev.properties.items() if p.required)
            self.scalar[name] = tuple(k for k, p in ev.properties.items() if p.type in ("number", "integer", "boolean"))
        self.consent = {name: ev.consent for name, ev in plan.events.items()}


class DayWriter:
    def __init__(self, out: Path, rng: np.random.Generator, plan, days: int, bug_rate: float, incidents):
        self.out = Path(out)
        self.rng = rng
        self.r = Stream(rng)
        self.facts = PlanFacts(plan)
        self.days = days
        self.bug_rate = bug_rate
        self.incidents = list(incidents or [])
        self.carry: list = []
        self.batch_day = 1 if days > 1 else 0
        self.totals = {
            "lines": 0,
            "events_valid": 0,
            "events_invalid": 0,
            "duplicates": 0,
            "consent_dropped": 0,
            "clock_skewed": 0,
            "files": 0,
        }
        self.bugs = {k: 0 for k in BUG_KINDS}
        self.bugs_by_event: dict[str, dict[str, int]] = {}
        self.incident_stats: dict[str, int] = {}
        self.daily: dict[str, dict] = {}
        self.files: list[str] = []

    def _times(self, buf: list) -> list:
        """Delivery: sentAt after the event (mobile batches flush later), receivedAt after sentAt."""
        n = len(buf)
        if not n:
            return []
        t = np.fromiter((b[0] for b in buf), dtype=np.int64, count=n)
        lag = np.fromiter((b[1] for b in buf), dtype=np.int8, count=n)
        web = self.rng.integers(30, 2500, n)
        ios = (self.rng.exponential(45_000, n)).astype(np.int64) + 500
        srv = self.rng.integers(5, 300, n)
        sent = t + np.where(lag == WEB, web, np.where(lag == IOS, ios, srv))
        recv = sent + self.rng.integers(20, 1500, n)
        return [
            (int(a), int(b), int(c), f[2], f[3], True, f[1])
            for a, b, c, f in zip(t.tolist(), sent.tolist(), recv.tolist(), buf)
        ]

    def flush(self, k: int, d: date, day_end_ms: int, buf: list) -> None:
        """Write day `k` (date `d`): the buffered events received that day plus yesterday's late ones."""
        entries = self.carry + self._times(buf)
        today = [e for e in entries if e[2] < day_end_ms]
        self.carry = [e for e in entries if e[2] >= day_end_ms]
        today.sort(key=lambda e: e[2])
        lags = {id(e[4]): e[6] for e in today}
        today = [e[:6] for e in today]
        if self.incidents:
            today = apply_incidents(today, d, self.incidents, self.r.u, self.incident_stats, self.facts.required)
        n = len(today)
        mids = uuids(self.rng, n)
        ts = _iso(np.fromiter((e[0] for e in today), dtype=np.int64, count=n))
        ss = _iso(np.fromiter((e[1] for e in today), dtype=np.int64, count=n))
        rs = _iso(np.fromiter((e[2] for e in today), dtype=np.int64, count=n))
        n_parts = max(1, math.ceil(n / LINES_PER_FILE)) + (1 if k % 3 == 1 and n > 1 else 0)
        bounds = [round(j * n / n_parts) for j in range(n_parts + 1)]
        gz = k % 4 == 2
        bug_draw = self.rng.random(n) < self.bug_rate if self.bug_rate > 0 else np.zeros(n, dtype=bool)
        kinds = self.rng.choice(len(BUG_KINDS), size=n, p=np.asarray(BUG_WEIGHTS) / sum(BUG_WEIGHTS)).tolist()
        bug_idx = set(np.flatnonzero(bug_draw).tolist())
        counts: dict[str, int] = {}
        day_stats = {"lines": 0, "valid": 0, "invalid": 0, "duplicates": 0, "consent_dropped": 0}
        dumps = orjson.dumps
        r = self.r
        for part in range(n_parts):
            lo, hi = bounds[part], bounds[part + 1]
            is_batch = k == self.batch_day and part == n_parts - 1 and n_parts > 1
            lines: list[bytes] = []
            keys: list[float] = []
            for i in range(lo, hi):
                t, s, _rcv, flags, ev, valid = today[i]
                ev["messageId"] = mids[i]
                ev["timestamp"] = ts[i]
                ev["sentAt"] = ss[i]
                ev["receivedAt"] = rs[i]
                kind = None
                if i in bug_idx and not flags & FLAG_MKT_DECLINED and valid:
                    kind = self._inject(ev, BUG_KINDS[kinds[i]], lags.get(id(ev), WEB), is_batch, t, s)
                line = dumps(ev)
                if kind == "malformed":
                    line = line[: r.i(10, len(line) - 10)]
                lines.append(line)
                keys.append(i)
                if kind is not None:
                    self.bugs[kind] += 1
                    be = self.bugs_by_event.setdefault(
                        event_name(ev) if kind != "unknown_event" else ev.get("event"), {}
                    )
                    be[kind] = be.get(kind, 0) + 1
                ok = valid and kind not in INVALID_KINDS
                if kind == "duplicate":
                    lines.append(line)
                    keys.append(i + r.uni(0.5, hi - i))
                    day_stats["duplicates"] += 1
                if kind == "clock_skew":
                    self.totals["clock_skewed"] += 1
                if ok:
                    day_stats["valid"] += 1
                    name = event_name(ev)
                    counts[name] = counts.get(name, 0) + 1
                    if flags & FLAG_MKT_DECLINED:
                        day_stats["consent_dropped"] += 1
                else:
                    day_stats["invalid"] += 1
            order = sorted(range(len(lines)), key=keys.__getitem__)
            lines = [lines[j] for j in order]
            day_stats["lines"] += len(lines)
            self._write(d, part, lines, gz and not is_batch, is_batch, ss[hi - 1] if hi > lo else None)
        self.daily[d.isoformat()] = {**day_stats, "events": dict(sorted(counts.items()))}
        for key in ("lines", "duplicates", "consent_dropped"):
            self.totals[key] += day_stats[key]
        self.totals["events_valid"] += day_stats["valid"]
        self.totals["events_invalid"] += day_stats["invalid"]

    def _inject(self, ev: dict, kind: str, lag: int, is_batch: bool, t: int, s: int) -> str:
        """Break one event in the way `kind` says; falls back to a kind the event can carry."""
        name = event_name(ev)
        pl = payload(ev)
        r = self.r
        if kind == "malformed" and is_batch:
            kind = "unknown_event"
        if kind == "wrong_type":
            cand = [k for k in self.facts.scalar.get(name, ()) if pl and pl.get(k) is not None]
            if cand:
                key = r.ch(cand)
                pl[key] = str(pl[key]).lower()  # 49.0 -> "49.0", True -> "true"
                return kind
            kind = "missing_required"
        if kind == "missing_required":
            cand = [k for k in self.facts.required.get(name, ()) if pl and k in pl]
            if cand:
                del pl[r.ch(cand)]
                return kind
            kind = "unknown_event"
        if kind == "unknown_event":
            if ev.get("type") == "track":
                ev["event"] = misspell(ev["event"], r.u())
                return kind
            kind = "duplicate"
        if kind == "clock_skew":
            if lag == SERVER:
                return "duplicate"
            hours = r.i(*CLOCK_SKEW_HOURS)
            sign = 1 if r.u() < 0.5 else -1
            # minutes add to the hours' magnitude: -1 h + 59 min would be a one-minute "skew"
            off = sign * (hours * HOUR + r.i(0, 59) * 60_000)
            ev["timestamp"] = _one_iso(t + off)
            ev["sentAt"] = _one_iso(s + off)
        return kind

    def _write(self, d: date, part: int, lines: list[bytes], gz: bool, batch: bool, sent_at: str | None) -> None:
        folder = self.out / f"date={d.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        if batch:
            path = folder / f"events-{part}.json"
            body = b'{"batch":[' + b",".join(lines) + b'],"sentAt":' + orjson.dumps(sent_at) + b"}"
            path.write_bytes(body)
        else:
            data = b"\n".join(lines) + (b"\n" if lines else b"")
            if gz:
                path = folder / f"events-{part}.jsonl.gz"
                bio = io.BytesIO()
                # mtime=0 and no file name in the header: same input, same bytes
                with gzip.GzipFile(filename="", mode="wb", fileobj=bio, mtime=0, compresslevel=5) as fh:
                    fh.write(data)
                path.write_bytes(bio.getvalue())
            else:
                path = folder / f"events-{part}.jsonl"
                path.write_bytes(data)
        self.totals["files"] += 1
        self.files.append(str(path.relative_to(self.out)))


def day_of(start: date, k: int) -> date:
    return start + timedelta(days=k)


__all__ = ["DAY", "DayWriter", "day_of"]

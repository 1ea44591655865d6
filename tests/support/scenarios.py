"""Random scenarios for the incremental layers: a generated landing zone plus, on each later day, a
file of random events that hit what a daily run must get right, drawn from one seed:

- late events for the ids of earlier days, at a random gap from one of their events (the session
  timeout exactly, a second either side of it, the same instant, hours, a day before);
- identifies and aliases that merge persons first seen on earlier days (sent on time or late);
- re-sent messages (a later day, within the lookback) and copies within the same file;
- client session ids (context.sessionId) whose events span days, some of them sent late;
- a signup sent late from a campaign (the person moves to an earlier cohort), orders sent late;
- a day run again with one more file, or with one of its extra files gone;
- events with consent declined (analytics: kept, PII stripped; marketing: dropped), and a later
  copy of a dropped one with consent granted;
- a day whose folder arrives late (run after the last day);
- a person of the first day erased (`trackplan forget`) after the middle run.

`daily_then_full` runs every day in order as a schedule would (then the days run again), builds
the same landing at once, and returns every table that differs (tests/support/incremental.py)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path

from pipelines.ingest.load import landed_partitions
from pipelines.warehouse import connect
from support.incremental import (
    compared_tables,
    daily_run,
    difference,
    full_build,
    gate_counts,
    kept_parts_difference,
)
from support.pipeline import ev, iso, write_lines

T = dt.timedelta
TIMEOUT = T(minutes=30)  # the sample plan's session_timeout_minutes
# gaps from an existing event: the session boundary and either side of it, one instant, longer
GAPS = [T(0), TIMEOUT, TIMEOUT + T(seconds=1), TIMEOUT - T(seconds=1), -TIMEOUT, -TIMEOUT - T(seconds=1)]
GAPS += [T(minutes=5), -T(minutes=5), T(hours=3), -T(hours=3), -T(days=1)]
KINDS = ["late", "instant", "merge", "alias", "resend", "client", "signup", "order", "consent", "regranted"]
SIGNUP = {"signup_method": "email", "plan": "free", "workspace_id": "ws_r1"}


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts).replace(tzinfo=None)


def _sent(landing: Path, day: str) -> list[dict]:
    """The JSON objects of a day's files that carry an id and a timestamp (the generator's own lines:
    a few are broken on purpose and are skipped here)."""
    out = []
    for path in sorted((landing / f"date={day}").iterdir()):
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt") as f:
                text = f.read()
        elif path.suffix in (".jsonl", ".json"):
            text = path.read_text()
        else:
            continue
        docs = []
        if path.suffix == ".json":
            try:
                docs = json.loads(text).get("batch", [])
            except (ValueError, AttributeError):
                docs = []
        else:
            for line in text.splitlines():
                try:
                    docs.append(json.loads(line))
                except ValueError:
                    continue
        for d in docs:
            if not isinstance(d, dict) or not isinstance(d.get("timestamp"), str):
                continue
            if not (isinstance(d.get("anonymousId"), str) or isinstance(d.get("userId"), str)):
                continue
            try:
                d["_at"] = _parse(d["timestamp"])
            except ValueError:
                continue
            out.append(d)
    return out


class Scenario:
    """One random scenario: the landing zone, its days, what was added (for the failure message)."""

    def __init__(self, root: Path, seed: int, days: int = 5, users: int = 40, per_day: int = 14):
        from trackplan.demo.generate import generate

        self.seed, self.rng = seed, random.Random(seed)
        self.landing = root / "landing"
        generate(self.landing, days=days, users=users, seed=seed, bug_rate=0.01)
        self.days = landed_partitions(self.landing)
        self.log: list[str] = []
        seen = _sent(self.landing, self.days[0])
        # the person erased after the middle run (a user of the first day)
        self.forget = self.rng.choice(sorted({d["userId"] for d in seen if isinstance(d.get("userId"), str)}))
        self.extra: dict[str, list[Path]] = {}
        self.declined: list[dict] = []  # the messages sent with marketing consent declined (dropped)
        self._n = 0
        self.made: dict[str, list[dict]] = {}
        for day in self.days[1:]:
            # every kind of addition each day, then random ones
            kinds = KINDS + [self.rng.choice(KINDS) for _ in range(max(0, per_day - len(KINDS)))]
            self.rng.shuffle(kinds)
            lines = [x for kind in kinds for x in self._one(day, seen, kind)]
            # events of ours sent on time (never rejected): what a backfill below repeats for sure
            self.made[day] = [
                x
                for x in lines
                if x["messageId"].startswith(f"r{seed}-m") and _parse(x["timestamp"]) <= _parse(x["receivedAt"])
            ]
            if self.rng.random() < 0.3 and lines:  # the same message twice in one file
                lines.append(self.rng.choice(lines))
                self.log.append(f"{day}: a line twice in its file")
            self.write(day, lines)
            seen += _sent(self.landing, day)
        # days run again after the schedule: one with one more file, one without an extra file
        self.again: list[str] = []
        day = self.rng.choice(self.days[1:-1] or self.days)
        before = [s for s in seen if s["_at"] < _parse(day + "T23:59:59")]
        lines = [x for kind in self.rng.sample(KINDS, 4) for x in self._one(day, before, kind)]
        # a backfill: messages a later day loaded turn up in this earlier day's new file
        later = [s for d in self.days if d > day for s in _sent(self.landing, d)]
        # (not the erased person's: those are never loaded, so they would displace nothing)
        erased = self._erased_ids(seen)
        ours = [
            x
            for d in self.days
            if d > day
            for x in self.made.get(d, [])
            if not erased & {x.get(k) for k in ("userId", "anonymousId", "previousId")}
        ]
        for old in self.rng.sample(later, min(1, len(later))) + self.rng.sample(ours, min(1, len(ours))):
            lines.append({k: v for k, v in old.items() if k != "_at"})
            self.log.append(f"{day}: message {old.get('messageId')} of a later day, backfilled")
        self.more = (day, lines)  # written when the schedule has run (see daily_then_full)
        self.again.append(day)
        self.log.append(f"{day} run again with one more file")
        gone_day = self.rng.choice([d for d in self.extra if d != day] or list(self.extra))
        self.gone = self.extra[gone_day][0]
        self.again.append(gone_day)
        self.log.append(f"{gone_day} run again without {self.gone.name}")
        # a day whose folder arrives late: the schedule runs it after the last day
        late_day = self.rng.choice(self.days[1:-1] or self.days)
        self.order = [d for d in self.days if d != late_day] + [late_day]
        self.log.append(f"{late_day} arrives late: run after {self.days[-1]}")
        self.log.append(f"{self.forget} erased after the run of {self.order[len(self.order) // 2]}")

    def _ev(self, *args, **kw) -> dict:
        """support.pipeline.ev with a message id of this scenario's own (a seed draws the same
        landing zone whatever ran before it in the process)."""
        return ev(*args, **({"mid": self._id("m")} | kw))

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"r{self.seed}-{prefix}{self._n}"

    def _task(self) -> str:
        """A task id of this scenario's own that the plan's pattern (^tsk_[a-z0-9]+$) accepts."""
        self._n += 1
        return f"tsk_r{self.seed}n{self._n}"

    def _erased_ids(self, lines: list[dict]) -> set[str]:
        """Every id that `lines` put in one person with the erased user's (userId, anonymousId and
        previousId linked wherever a line carries two): a superset of what the stitch links."""
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        for line in lines:
            ids = [line.get(k) for k in ("userId", "anonymousId", "previousId")]
            ids = [i for i in ids if isinstance(i, str)]
            for other in ids[1:]:
                parent[root(other)] = root(ids[0])
        return {x for x in parent if root(x) == root(self.forget)}

    def write(self, day: str, lines: list[dict]) -> None:
        name = f"r-{len(self.extra.get(day, []))}.jsonl"
        self.extra.setdefault(day, []).append(write_lines(self.landing, day, name, lines))

    def _one(self, day: str, seen: list[dict], kind: str) -> list[dict]:
        """One addition of `kind` to `day`'s file (a few events), from the lines of earlier days `seen`."""
        rng = self.rng
        now = _parse(day + "T00:00:00") + T(hours=rng.uniform(0.5, 23))
        old = rng.choice(seen)
        ids = {"anon": old.get("anonymousId"), "user": old.get("userId")}
        if not isinstance(ids["anon"], str):
            ids["anon"] = None
        if not isinstance(ids["user"], str):
            ids["user"] = None
        late_at = old["_at"] + rng.choice(GAPS)
        if kind == "late":
            event = rng.choice(["Signed In", "page", "Task Completed"])
            self.log.append(f"{day}: late {event} for {ids} at {late_at} ({late_at - old['_at']} from {old['_at']})")
            if event == "page":
                return [self._ev("page", None, at=late_at, received_at=now, props={"path": f"/r{self._n}"}, **ids)]
            if event == "Task Completed":
                props = {"task_id": self._task(), "project_id": "prj_r1"}
                return [self._ev(event=event, at=late_at, received_at=now, props=props, **ids)]
            return [self._ev(at=late_at, received_at=now, **ids)]
        if kind == "instant":  # an event at the very instant of an earlier one of the same ids
            self.log.append(f"{day}: an event at the instant {old['_at']} of {ids}")
            return [self._ev(at=old["_at"], received_at=now, **ids)]
        if kind in ("merge", "alias"):
            users = [s["userId"] for s in seen if isinstance(s.get("userId"), str)]
            anons = [s["anonymousId"] for s in seen if isinstance(s.get("anonymousId"), str)]
            user = rng.choice(users) if users and rng.random() < 0.8 else self._id("usr")
            anon = rng.choice(anons) if anons else self._id("dev")
            at = rng.choice([now, late_at])
            self.log.append(f"{day}: {kind} of {user} and {anon} at {at}")
            if kind == "alias":
                return [self._ev("alias", None, user=user, anon=None, previousId=anon, at=at, received_at=now)]
            return [
                self._ev("identify", None, user=user, anon=anon, at=at, received_at=now, traits={"plan": "free"}),
                self._ev(user=user, anon=anon, at=at + T(seconds=rng.choice([0, 1, 60])), received_at=now),
            ]
        if kind == "resend":
            again = {k: v for k, v in old.items() if k != "_at"}
            again["receivedAt"] = iso(now)
            self.log.append(f"{day}: message {old.get('messageId')} of {old['_at']:%Y-%m-%d} sent again")
            return [again]
        if kind == "client":
            sid = self._id("cs")
            start = rng.choice([late_at, now - T(hours=rng.uniform(0, 30))])
            gaps = [T(minutes=rng.choice([1, 29, 31, 45, 90, 600])) for _ in range(rng.randint(1, 4))]
            ats = [start]
            for g in gaps:
                ats.append(ats[-1] + g)
            self.log.append(f"{day}: client session {sid} of {ids} at {[str(a) for a in ats]}")
            ctx = {"library": {"name": "test"}, "sessionId": sid}
            return [
                self._ev("page", None, at=a, received_at=max(now, a), props={"path": f"/c{i}"}, context=ctx, **ids)
                for i, a in enumerate(ats)
            ]
        if kind == "regranted" and self.declined:  # a copy of a dropped message, consent granted now
            again = dict(rng.choice(self.declined), receivedAt=iso(now))
            again["context"] = {"library": {"name": "test"}}
            self.log.append(f"{day}: message {again['messageId']}, dropped for its consent, sent again granted")
            return [again]
        if kind in ("consent", "regranted"):  # analytics declined (PII stripped, kept), marketing declined (dropped)
            ctx = {
                "library": {"name": "test"},
                "consent": {"categoryPreferences": {"analytics": False, "marketing": False}},
            }
            self.log.append(f"{day}: events of {ids} with consent declined at {late_at}")
            props = {"task_id": self._task(), "project_id": "prj_r1"}
            dropped = self._ev(
                event="Ad Clicked",
                at=now,
                received_at=now,
                props={"ad_id": "ad_r1", "network": "google"},
                context=ctx,
                mid=self._id("k"),
                **ids,
            )
            self.declined.append(dropped)
            return [
                self._ev(
                    event="Task Completed",
                    at=late_at,
                    received_at=now,
                    props=props,
                    context=ctx,
                    mid=self._id("k"),
                    **ids,
                ),
                dropped,
            ]
        if kind == "signup":
            anon = ids["anon"] or self._id("dev")
            ctx = {"library": {"name": "test"}, "campaign": {"source": "r-campaign", "medium": "email"}}
            at = late_at - T(days=rng.choice([0, 1, 6]))
            self.log.append(f"{day}: late signup of {anon} at {at} from a campaign")
            return [self._ev(event="Account Created", anon=anon, at=at, received_at=now, props=SIGNUP, context=ctx)]
        # an order sent late
        props = {
            "order_id": self._id("ord"),
            "revenue": round(rng.uniform(10, 500), 2),
            "currency": "EUR",
            "plan": "team",
            "billing_period": "monthly",
        }
        self.log.append(f"{day}: late order of {ids} at {late_at}")
        return [self._ev(event="Order Completed", at=late_at, received_at=now, props=props, **ids)]


def daily_then_full(root: Path, scenario: Scenario, plan, plan_dir) -> tuple[list[str], list[dict]]:
    """Every day of the scenario in order, a person erased (`trackplan forget`) after the middle one,
    then the days it runs again and a run with nothing new; and a full build of the landing as it
    ends, with the same erasure register from the start: (each table that differs, the runs' modes)."""
    from models.staging.plan_tables import write_plan_tables
    from pipelines.privacy import forget_people

    path = root / "inc.duckdb"
    inc = connect(path)
    write_plan_tables(inc, plan)
    modes = []
    try:
        for k, day in enumerate(scenario.order):
            modes.append(daily_run(inc, plan, plan_dir, scenario.landing, day))
            if k == len(scenario.order) // 2:
                inc.close()
                scenario.erased = forget_people(path, [scenario.forget], plan)[0]["rows"]
                inc = connect(path)
        for k, day in enumerate(scenario.again):
            if k == 0:
                scenario.write(*scenario.more)
            else:
                scenario.gone.unlink()
            modes.append(daily_run(inc, plan, plan_dir, scenario.landing, day))
        modes.append(daily_run(inc, plan, plan_dir, scenario.landing, None))
        full = full_build(root / "full.duckdb", plan, scenario.landing, register_of=inc)
        try:
            diffs = [d for d in (difference(inc, full, "ingest.events"),) if d]
            tables = compared_tables(full)
            if compared_tables(inc) != tables:
                diffs.append(f"tables: {compared_tables(inc)} incrementally, {tables} in a full run")
            diffs += [d for t in tables if (d := difference(inc, full, t))]
            if d := kept_parts_difference(inc, full):
                diffs.append(d)
            if d := difference(inc, full, "quality.daily_metrics"):
                diffs.append(d)
            for table in ("ingest.events", "stitch.events"):
                got, want = gate_counts(inc, plan, table, by_partition=True), gate_counts(full, plan, table)
                if got != want:
                    diffs.append(f"gates of {table}: {got} incrementally, {want} in a full run")
            return diffs, modes
        finally:
            full.close()
    finally:
        inc.close()

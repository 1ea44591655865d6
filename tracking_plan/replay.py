"""`trackplan diff --replay`: what would the proposed plan newly reject, measured on real events.

A semver verdict says a change *can* break producers; a replay says whether it *does*. A sample of
recent events (from the warehouse, or from event files) is validated under the base plan and under
the proposed plan with the one validation engine, and every event that passes today but would be
quarantined tomorrow is counted per event × library version, with the rules that would reject it.

From a warehouse the sample is the most recent rows of ``ingest.events`` plus ``ingest.quarantine``
(quarantined lines are replayed verbatim, so a loosened rule shows what it would newly accept). A
loaded event is replayed from its landing line when the file is still there (``source_file`` and
``line_no``), otherwise rebuilt from the typed columns; rebuilt events carry hashed PII and
consent-stripped properties, which is why only a change between the two plans' verdicts counts.
"""

from __future__ import annotations

import errno
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from .model import Plan
from .reader import is_input_file, read_file
from .validate import Validator

SEED = 42  # a fixed reservoir seed: the same files give the same PR comment on every CI re-run


@dataclass
class ReplayRow:
    """One event × library version with any change of verdict between the plans."""

    event: str
    library: str
    sampled: int
    newly_rejected: int
    newly_accepted: int
    newly_warned: int
    reasons: list[dict] = field(default_factory=list)  # [{rule, path, message, count}] of newly rejected

    @property
    def share(self) -> float:
        return self.newly_rejected / self.sampled if self.sampled else 0.0

    def why(self, top: int = 3) -> str:
        return ", ".join(f"{r['rule']}: {_short(r['path'])}" for r in self.reasons[:top])

    def sentence(self) -> str:
        return f"would reject {self.share:.1%} of {self.event} from {self.library} ({self.why()})"

    def to_dict(self) -> dict:
        return {**asdict(self), "share": self.share}


@dataclass
class ReplayResult:
    source: str
    sampled: int = 0
    from_raw: int = 0  # replayed from the original landing line or a quarantined line
    rebuilt: int = 0  # rebuilt from ingest.events columns (landing file gone)
    base_rejected: int = 0
    head_rejected: int = 0
    newly_rejected: int = 0
    newly_accepted: int = 0
    newly_warned: int = 0
    base_version: str = ""
    head_version: str = ""
    rows: list[ReplayRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "rows"}
        d["rows"] = [r.to_dict() for r in self.rows]
        return d

    def render(self, format: str = "text") -> str:
        """text | markdown | json, the way `render_diff` appends it."""
        if format == "json":
            return json.dumps(self.to_dict(), indent=2)
        if format == "markdown":
            return _markdown(self)
        if format == "text":
            return _text(self)
        raise ValueError(f"unknown format {format!r} (text, markdown or json)")


def _short(path: str) -> str:
    for prefix in ("$.properties.", "$.traits."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


# ------------------------------------------------------------------------------------- sampling


def _sample_files(con: duckdb.DuckDBPyConnection, files: list[Path], sample: int, max_bytes: int) -> tuple[int, int]:
    con.execute("create or replace temp table replay_in (line_no bigint, raw varchar, pre_reason varchar)")
    for f in files:
        for batch in read_file(f, max_bytes=max_bytes):
            con.register("replay_batch", batch)
            con.execute("insert into replay_in select line_no, raw, pre_reason from replay_batch").fetchall()
            con.unregister("replay_batch")
    n = con.execute("select count(*) from replay_in").fetchall()[0][0]
    if n > sample:  # files carry no reliable order: a seeded uniform sample stands for "recent"
        con.execute(
            f"create or replace temp table replay_in as select * from replay_in "
            f"using sample reservoir({int(sample)} rows) repeatable ({SEED})"
        ).fetchall()
    con.execute(
        "create or replace temp table replay_in as "
        "select 'replay' as source_file, row_number() over (order by line_no, raw) as line_no, raw, pre_reason "
        "from replay_in"
    ).fetchall()
    return min(n, sample), 0


# Rebuilds a Segment message from the typed columns of ingest.events. The original device time is
# sent as `timestamp` with the original sentAt and receivedAt, so the validator's clock-skew
# correction lands on the same corrected time the warehouse holds.
REBUILD = """
json_object(
    'messageId', message_id, 'type', type, 'event', event, 'name', page_name,
    'anonymousId', anonymous_id, 'userId', user_id, 'previousId', previous_id, 'groupId', group_id,
    'timestamp', strftime(coalesce(original_timestamp, "timestamp"), '%Y-%m-%dT%H:%M:%S.%gZ'),
    'sentAt', strftime(sent_at, '%Y-%m-%dT%H:%M:%S.%gZ'),
    'receivedAt', strftime(received_at, '%Y-%m-%dT%H:%M:%S.%gZ'),
    'context', context,
    'properties', case when type in ('identify', 'group') then null else properties end,
    'traits', case when type in ('identify', 'group') then coalesce(traits, properties) else traits end
)::varchar
"""


def _sample_warehouse(con: duckdb.DuckDBPyConnection, path: Path, sample: int, max_bytes: int) -> tuple[int, int]:
    con.execute(f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as wh (read_only)")
    have = {
        (s, t)
        for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'wh'"
        ).fetchall()
    }
    parts = []
    if ("ingest", "events") in have:
        parts.append(
            f"select 'e' as src, source_file, line_no, received_at, {REBUILD} as rebuilt from wh.ingest.events"
        )
    if ("ingest", "quarantine") in have:
        parts.append("select 'q' as src, source_file, line_no, received_at, raw as rebuilt from wh.ingest.quarantine")
    if not parts:
        raise FileNotFoundError(f"{path} has no ingest.events or ingest.quarantine table to replay")
    con.execute(
        f"create or replace temp table replay_pick as select row_number() over () as line_no, * from "
        f"(select src, source_file, line_no as src_line, rebuilt from ({' union all '.join(parts)}) "
        f"order by received_at desc nulls last, source_file, line_no limit {int(sample)})"
    ).fetchall()
    # Re-read the original lines of loaded events whose landing file still exists: they carry the
    # unhashed values and the properties consent stripping removed.
    con.execute(
        "create or replace temp table replay_raw (source_file varchar, src_line bigint, raw varchar, pre_reason varchar)"
    )
    files = [r[0] for r in con.execute("select distinct source_file from replay_pick where src = 'e'").fetchall()]
    for f in files:
        if not f or not Path(f).is_file():
            continue
        wanted = con.execute(
            "select list(src_line) from replay_pick where src = 'e' and source_file = ?", [f]
        ).fetchall()[0][0]
        for batch in read_file(f, max_bytes=max_bytes):
            con.register("replay_batch", batch)
            con.execute(
                "insert into replay_raw select ?, line_no, raw, pre_reason from replay_batch "
                "where list_contains(?, line_no)",
                [f, wanted],
            ).fetchall()
            con.unregister("replay_batch")
    con.execute("""
        create or replace temp table replay_in as
        select 'replay' as source_file, p.line_no, coalesce(r.raw, p.rebuilt) as raw, r.pre_reason,
               p.src = 'q' or r.raw is not null as from_raw
        from replay_pick p left join replay_raw r on p.src = 'e' and r.source_file = p.source_file and r.src_line = p.src_line
    """).fetchall()
    n, raw = con.execute("select count(*), count(*) filter (where from_raw) from replay_in").fetchall()[0]
    return raw, n - raw


def _input_files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and is_input_file(p))
    return [source]


# -------------------------------------------------------------------------------------- replay


def replay(base_plan: Plan, head_plan: Plan, source: str | Path, sample: int = 100_000) -> ReplayResult:
    """Validate up to ``sample`` recent events from ``source`` (a warehouse ``.duckdb``, an events
    file or a landing folder) under both plans; report what the head plan would newly reject."""
    source = Path(source)
    if not source.exists():
        # errno and file name set: the CLI says "<path>: no such file or directory" in one line
        raise FileNotFoundError(errno.ENOENT, "replay source does not exist", str(source))
    max_bytes = head_plan.header.defaults.max_event_bytes
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")
    result = ReplayResult(source=str(source), base_version=base_plan.version, head_version=head_plan.version)
    if source.suffix in (".duckdb", ".db"):
        result.from_raw, result.rebuilt = _sample_warehouse(con, source, sample, max_bytes)
    else:
        result.from_raw, result.rebuilt = _sample_files(con, _input_files(source), sample, max_bytes)
    Validator(base_plan).run(con, "replay_in", "replay_base")
    Validator(head_plan).run(con, "replay_in", "replay_head")
    con.execute("""
        create or replace temp table replay_cmp as
        select h.line_no, coalesce(h.event_name, b.event_name, '(unknown)') as event,
               coalesce(h.library_name, '(no library)') || coalesce(' ' || h.library_version, '') as library,
               b.valid as base_valid, h.valid as head_valid,
               len(h.warnings) > 0 and len(b.warnings) = 0 as newly_warned,
               list_filter(h.reasons, lambda r: not list_contains(b.reasons, r)) as new_reasons
        from replay_head h join replay_base b using (line_no)
    """).fetchall()
    totals = con.execute("""
        select count(*), count(*) filter (where not base_valid), count(*) filter (where not head_valid),
               count(*) filter (where base_valid and not head_valid), count(*) filter (where not base_valid and head_valid),
               count(*) filter (where newly_warned)
        from replay_cmp""").fetchall()[0]
    (
        result.sampled,
        result.base_rejected,
        result.head_rejected,
        result.newly_rejected,
        result.newly_accepted,
        result.newly_warned,
    ) = totals
    groups = con.execute("""
        select event, library, count(*) as sampled,
               count(*) filter (where base_valid and not head_valid) as rejected,
               count(*) filter (where not base_valid and head_valid) as accepted,
               count(*) filter (where newly_warned) as warned
        from replay_cmp group by all
        having rejected + accepted + warned > 0
        order by rejected desc, accepted desc, warned desc, event, library""").fetchall()
    reasons = con.execute("""
        select event, library, r.rule, r.path, any_value(r.message) as message, count(*) as n
        from (select event, library, unnest(new_reasons) as r from replay_cmp where base_valid and not head_valid)
        group by all order by n desc, r.rule, r.path""").fetchall()
    by_group: dict[tuple[str, str], list[dict]] = {}
    for ev, lib, rule, path, msg, n in reasons:
        by_group.setdefault((ev, lib), []).append({"rule": rule, "path": path, "message": msg, "count": n})
    result.rows = [
        ReplayRow(ev, lib, n, rej, acc, warn, by_group.get((ev, lib), [])) for ev, lib, n, rej, acc, warn in groups
    ]
    con.close()
    return result


# ------------------------------------------------------------------------------------- render


def _header(r: ReplayResult) -> str:
    origin = f"{r.from_raw:,} original lines" + (f", {r.rebuilt:,} rebuilt from warehouse columns" if r.rebuilt else "")
    return (
        f"Replayed {r.sampled:,} recent events from {r.source} ({origin}) under {r.base_version} and {r.head_version}"
    )


def _text(r: ReplayResult) -> str:
    lines = [_header(r)]
    rejected = [row for row in r.rows if row.newly_rejected]
    for row in rejected:
        lines.append(f"  {row.sentence()}  [{row.newly_rejected:,} of {row.sampled:,}]")
    for row in r.rows:
        if row.newly_accepted:
            lines.append(f"  would newly accept {row.newly_accepted:,} of {row.event} from {row.library}")
        if row.newly_warned:
            lines.append(f"  would newly warn on {row.newly_warned:,} of {row.event} from {row.library}")
    if not rejected:
        lines.append("  no sampled event would be newly rejected")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(r: ReplayResult) -> str:
    icon = "⚠️" if r.newly_rejected else "✅"
    share = r.newly_rejected / r.sampled if r.sampled else 0.0
    md = [
        f"#### {icon} Replay: {r.newly_rejected:,} of {r.sampled:,} recent events ({share:.1%}) would be newly rejected",
        "",
        _md(_header(r)) + ".",
        "",
    ]
    rows = [row for row in r.rows if row.newly_rejected or row.newly_accepted]
    if rows:
        md += [
            "| event | library | sampled | would newly reject | why | would newly accept |",
            "|---|---|---:|---:|---|---:|",
        ]
        for row in rows:
            why = "; ".join(f"{x['rule']} `{_short(x['path'])}` ({x['count']:,})" for x in row.reasons[:3])
            md.append(
                f"| {_md(row.event)} | {_md(row.library)} | {row.sampled:,} | "
                f"{row.newly_rejected:,} ({row.share:.1%}) | {_md(why)} | {row.newly_accepted:,} |"
            )
        md.append("")
        md += [f"- {_md(row.sentence())}" for row in r.rows if row.newly_rejected]
    else:
        md.append("No sampled event would be newly rejected or newly accepted.")
    if r.newly_warned:
        md += ["", f"{r.newly_warned:,} sampled events would newly get a warning (e.g. a deprecation)."]
    return "\n".join(md) + "\n"

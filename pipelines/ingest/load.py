"""Load one landing partition: validate, quarantine, de-duplicate, apply consent and PII rules.

Every file under the landing root gets an ingest.ingestion_log row: read, or skipped with its reason
(wrong extension, bad date folder, subfolder, symlink, unreadable...; a file outside any date folder
has no partition_date). Every line of a read file ends in exactly one bucket:
    lines = loaded + quarantined + duplicates + consent_dropped + suppressed
where `lines` is what the reader counted from the file's bytes (a run stops if they disagree), and
the whole partition is replaced in one transaction, so a re-run gives identical tables and a run
killed midway leaves the warehouse as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from quality_checks.partition_state import partition_runs
from tracking_plan.landing import scan as scan_landing
from tracking_plan.model import Plan
from tracking_plan.reader import LandingEntry, ReadStats, is_url, read_files
from tracking_plan.validate import Validator, context_pii_traits, hashed_keys, json_path, lit

from ..privacy import mark_suppressed
from ..warehouse import transaction


@dataclass
class PartitionResult:
    partition: str
    files: int = 0
    lines: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    consent_dropped: int = 0
    suppressed: int = 0
    skipped: int = 0  # files of the partition that were not read (their reasons are in the log)
    seconds: float = 0.0
    because: str | None = None  # run again, not asked for: why (see ingest_partitions)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)


def partition_dir(landing: Path, partition: str) -> Path:
    return Path(landing) / f"date={partition}"


def landed_partitions(landing: Path | str, layout: str | None = None) -> list[str]:
    """Every partition of the landing zone that holds anything (a folder holding only skipped files is
    still run, so its files get their log rows). `landing` may be an object-store URL; see
    tracking_plan.landing for the layouts."""
    return sorted({e.partition for e in scan_landing(landing, layout) if e.partition})


def _stamp(e: LandingEntry) -> tuple[str | None, int | None]:
    """(ETag, size) of an entry as the manifest keeps it: the store's ETag for an object, the
    modification time for a local file."""
    if e.etag is not None or e.size is not None or is_url(e.path):
        return e.etag, e.size
    try:
        st = os.lstat(e.path)
    except OSError:
        return None, None
    return f"mtime:{st.st_mtime_ns}", st.st_size


def changed_partitions(con: duckdb.DuckDBPyConnection, scan: list[LandingEntry]) -> list[str]:
    """Partitions whose objects (key, ETag, size) differ from the manifest of the last ingest: a new
    object, a rewritten one (new ETag or size) or a removed one. Only these need reading again."""
    listed: dict[str, set] = {}
    for e in scan:
        if e.partition:
            listed.setdefault(e.partition, set()).add((str(e.path), *_stamp(e)))
    known: dict[str, set] = {}
    for p, key, etag, size in con.execute(
        "select partition_date::varchar, source_file, etag, size from ingest.landing_manifest"
    ).fetchall():
        known.setdefault(p, set()).add((key, etag, size))
    return sorted(p for p in listed.keys() | known.keys() if listed.get(p) != known.get(p))


def _pii_keys(plan: Plan, column: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The top-level keys of `column` the PII rules hash (or remove): ({plan event with `pii: true`
    properties of its own: the keys of its rows}, {"track" / "identify": the keys of any other row of
    that kind}); an identify or group call's properties column is its traits, so the traits' keys
    there too (tracking_plan.validate.pii_identifiers)."""

    def always(kind: str) -> set[str]:
        return hashed_keys(plan, column, kind)

    events: dict[str, set[str]] = {}
    for ev in plan.events.values():
        own = {n for n, p in ev.properties.items() if p.pii}
        if own:
            events.setdefault(ev.name, own | always(ev.type))  # (`case event_name`: the first one named so)
    return events, {"track": always("track"), "identify": always("identify")}


def _pii_expr(plan: Plan, column: str) -> str:
    """SQL replacing each top-level PII property by its keyed hash (or removing it if stripping): an
    event's own `pii: true` properties, and on every event the keys identity.yaml reads a `pii: true`
    identifier from (`_pii_keys`)."""
    events, kinds = _pii_keys(plan, column)

    def patch(keys: set[str], strip: bool) -> str:
        if not keys:
            return column
        pairs = ", ".join(
            f"{lit(n)}, " + ("null" if strip else f"pii_hash({column} ->> {lit(json_path(n))})") for n in sorted(keys)
        )
        return f"json_merge_patch({column}, json_object({pairs}))"

    def by_type(strip: bool) -> str:
        plain, called = patch(kinds["track"], strip), patch(kinds["identify"], strip)
        return plain if plain == called else f"case when type in ('identify', 'group') then {called} else {plain} end"

    if not events and by_type(False) == column:
        return column

    def by_event(strip: bool) -> str:
        other = by_type(strip)  # any other event, known to the plan or not
        whens = " ".join(f"when {lit(name)} then {patch(keys, strip)}" for name, keys in events.items())
        return f"case event_name {whens} else {other} end" if whens else other

    return f"case when {column} is null then null when _strip then {by_event(True)} else {by_event(False)} end"


def shared_pii_sql(plan: Plan) -> str | None:
    """SQL true of a validated row whose properties the PII rules turn into exactly what they make of
    its traits: an identify or group call (the validator's properties of one are its traits, the same
    text: `properties = traits`) of an event whose keys are the same in both columns (`_pii_keys`).
    Such a row's properties are then taken from its traits' result rather than hashed a second time
    (the ingest's insert; 1.07M events of the 10M bench, both columns 0.87-0.96 -> 0.44-0.48 CPU-s, the
    same values). None when no such call's keys agree."""
    p_events, p_kinds = _pii_keys(plan, "properties")
    t_events, t_kinds = _pii_keys(plan, "traits")
    if p_kinds["identify"] != t_kinds["identify"] or p_events.keys() != t_events.keys():
        return None
    differ = sorted(n for n in p_events if p_events[n] != t_events[n])
    return "type in ('identify', 'group') and properties = traits" + (
        f" and event_name not in ({', '.join(lit(n) for n in differ)})" if differ else ""
    )


def _context_expr(plan: Plan) -> str:
    """context without readable personal data: the identify event's PII traits that SDKs copy into
    context.traits are hashed like the traits themselves, and the IP is truncated (IPv4 to /24,
    IPv6 to /48, as Google Analytics anonymizes it: still good for geography, no longer a person).
    Without consent the IP and context.traits go entirely.

    The validator already read context.ip and whether context.traits holds PII (context_ip,
    context_pii), so the common row (an IP, no PII traits) has its IP replaced in the JSON text where
    appears verbatim as "ip":"<value>" (the validator re-serialized context compactly, so the top-level
    key is always written that way unless the value needed escaping); anything else takes the JSON
    merge."""
    pii = context_pii_traits(plan)
    ip = (
        "case when context_ip like '%:%' "
        "then regexp_replace(context_ip, '^(([0-9a-fA-F]*:){3}).*$', '\\1:') "
        "else regexp_replace(context_ip, '\\.[0-9]+$', '.0') end"
    )
    ip_only = merged = f"json_merge_patch(context, json_object('ip', {ip}))"
    if pii:
        pairs = ", ".join(f"{lit(n)}, pii_hash(context ->> {lit(json_path('traits', n))})" for n in pii)
        merged = f"json_merge_patch({merged}, json_object('traits', json_object({pairs})))"
    verbatim = "'\"ip\":\"' || context_ip || '\"'"
    fast = f"replace(context, {verbatim}, '\"ip\":\"' || ({ip}) || '\"')::json"
    return (
        "case when context is null then null "
        'when _strip then json_merge_patch(context, \'{"ip": null, "traits": null}\') '
        "when context_pii then " + merged + " "
        "when context_ip is null then context "
        f"when contains(context, {verbatim}) then {fast} "
        f"else {ip_only} end"
    )


def _consent_sql(plan: Plan) -> tuple[str, str]:
    """(granted expression, action-without-consent expression) over the validated rows."""
    cats = plan.consent.categories
    required = [c for c, v in cats.items() if v.required]
    default = "true" if plan.consent.default == "granted" else "false"
    granted = (
        f"case when consent_category is null then true "
        f"when consent_category in ({', '.join(lit(c) for c in required) or 'null'}) then true "
        f"when consent_pref is null then {default} "
        f"else lower(consent_pref) = 'true' end"
    )
    actions = " ".join(f"when {lit(c)} then {lit(v.without_consent)}" for c, v in cats.items())
    action = f"case consent_category {actions} else 'drop' end" if actions else "'drop'"
    return granted, action


# ---- the ingest's rules as SQL fragments, shared by this DuckDB path and the Spark engine
# (pipelines/spark/ingest.py runs the very same SQL in DuckDB inside its tasks): one definition each


def event_columns(plan: Plan) -> list[tuple[str, str]]:
    """(column, expression) of ingest.events' event columns over a validated row with a boolean `_strip`
    (consent withheld, PII to be stripped): the envelope as validated, context/properties/traits with
    the consent and PII rules applied (pipelines/privacy.py's keyed hash)."""
    plain = lambda *cols: [(c, c) for c in cols]
    return [
        *plain("message_id", "type", "event_name", "event", "page_name", "anonymous_id", "user_id"),
        *plain("previous_id", "group_id", '"timestamp"', "original_timestamp", "sent_at", "received_at"),
        ("context", _context_expr(plan)),
        ("properties", _pii_expr(plan, "properties")),
        ("traits", _pii_expr(plan, "traits")),
        *plain("library_name", "library_version", "utm_source", "utm_medium", "utm_campaign", "utm_term"),
        *plain("utm_content", "page_url", "page_path", "page_referrer", "session_id", "region", "consent_category"),
    ]


def strip_sql(plan: Plan) -> str:
    """Whether a validated row's PII is stripped (its consent is withheld and its category says strip_pii)."""
    granted, action = _consent_sql(plan)
    return f"(not ({granted}) and ({action}) = 'strip_pii')"


def late_reasons_sql(plan: Plan) -> str:
    """The reasons of a quarantined line (g: its validated row, c: its classification): the validator's,
    or those of a re-send beyond dedup_lookback_days (rule `duplicate`)."""
    lookback = int(plan.header.defaults.dedup_lookback_days)
    return (
        "case when c._late_from is null then g.reasons else [{'rule': 'duplicate', 'path': '$.messageId', "
        "'message': 'messageId ' || g.message_id || ' was already loaded from partition ' || c._late_from::varchar || ', ' "
        f"|| abs(c._pdate - c._late_from)::varchar || ' days from this one (beyond dedup_lookback_days, {lookback}): a late "
        "re-send, not loaded again'}] end"
    )


def classify_sql(
    plan: Plan,
    prior: str,
    warned: str = "len(p.warnings) > 0",
    suppressed: str = "p._rid in (select _rid from _suppressed_rids)",
) -> str:
    """The bucket of every validated row of `_part` (p: _rid, _pdate, source_file, line_no, valid,
    message_id, consent columns): suppressed, quarantined (invalid, or a re-send beyond the lookback:
    `_late_from`), consent_dropped, duplicate or loaded; `prior` selects (message_id, _day) of the
    events already loaded from other partitions.

    A copy that is rejected, or dropped for its consent, is never the event: the event is the earliest
    copy that can be loaded, and only such copies repeat one another. So whether a copy loads depends
    only on the copies that load, which is all a daily run remembers of other days (ingest.events):
    a day run alone and a full build agree however the copies' consent differs."""
    granted, action = _consent_sql(plan)
    lookback = int(plan.header.defaults.dedup_lookback_days)
    return f"""
with prior as (
    -- messageIds already loaded from partitions outside this group, of any day: a re-send is never
    -- loaded twice, however late
    {prior}
), k as (
    select p.*, {granted} as _granted, {action} as _action,
           p.valid and not (not {granted} and {action} = 'drop') as _loadable
    from _part p
), repeated as (
    -- the copies of a messageId the group holds more than once (a few): only they are ordered; the
    -- others are their id's one copy (1M lines: ordering every line cost ~0.17 CPU-s per 450k, this ~0.07)
    select p._rid,
           -- loadable copies first: a fixed retry after a rejected copy is the event, not its duplicate
           row_number() over w as _rn, first_value(p._pdate) over w as _kept_day
    from k p
    where p.message_id in (select message_id from _part group by message_id having count(*) > 1)
    window w as (partition by p.message_id order by p._loadable desc, p._pdate, p.source_file, p.line_no)
), v as (
    select p._rid, p._pdate, p.source_file, p.valid, {warned} as _warned, p._granted, p._action, p._loadable,
           coalesce(r._rn, 1) as _rn, coalesce(r._kept_day, p._pdate) as _kept_day,
           pr._day as _prior_day,
           {suppressed} as _suppressed
    from k p left join repeated r on r._rid = p._rid
    left join prior pr on p._loadable and pr.message_id = p.message_id
), d as (
    -- the day of the copy this one repeats: a stored one of an earlier day, or the first one in this
    -- group. A stored copy of a later day does not make this one a repeat: the earliest copy is the
    -- event, whichever day was run first (a full build's answer); that later day is then run again
    -- (`_displaces`), where this copy makes its own a repeat
    select *, case when _prior_day < _kept_day then _prior_day when _rn > 1 then _kept_day end as _first_day,
           case when _prior_day > _kept_day and _rn = 1 then _prior_day end as _displaces
    from v
)
select _rid, _pdate, source_file, _warned, _displaces,
    case
        -- first: an erased person's lines must not come back, not even as quarantined raw text
        when _suppressed then 'suppressed'
        when not valid then 'quarantined'
        when not _loadable then 'consent_dropped'
        -- a re-send within dedup_lookback_days is a retry, counted as a duplicate; a later one is
        -- quarantined with its reason (rule `duplicate`), so it is seen, never loaded twice
        when _first_day is not null and abs(_pdate - _first_day) > {lookback} then 'quarantined'
        when _first_day is not null then 'duplicate'
        else 'loaded' end as _bucket,
    case when _loadable and not _suppressed and abs(_pdate - _first_day) > {lookback} then _first_day end as _late_from,
    (not _granted and _action = 'strip_pii') as _strip
from d
"""


# why a day runs again that was not asked for (see _dependents)
DISPLACED = "it had loaded a message that an earlier day holds too"
REPEATS_MOVED = "a message it holds a repeat of is no longer loaded from the day it was judged against"

# landing bytes validated and loaded in one DuckDB run: each run costs ~0.2 s of planning and
# larger inserts write faster (10M events: 128 MB groups 165 s, 256 MB 115 s; peak 2.5 GB)
GROUP_BYTES = 256 << 20


def partition_files(landing: Path | str, partition: str, layout: str | None = None) -> list[Path | str]:
    """The files of a partition to read (never a symlink: see tracking_plan.reader.scan_landing)."""
    return [e.path for e in scan_landing(landing, layout) if e.partition == partition and e.skip is None]


def _log_skipped(con: duckdb.DuckDBPyConnection, plan: Plan, entries: list[LandingEntry], day: dt.date | None) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for e in entries:
        con.execute(
            "insert into ingest.ingestion_log by name select ?::date as partition_date, ? as source_file, "
            "? as plan_version, ? as started_at, ? as finished_at, 0.0 as seconds, 'skipped' as status, "
            "? as skip_reason",
            [day, str(e.path), plan.version, now, now, e.skip],
        ).fetchall()


def log_outside_partitions(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    landing: Path | str,
    scan: list[LandingEntry] | None = None,
    layout: str | None = None,
) -> int:
    """Replace the log rows of the landing files outside any date folder (no partition_date)."""
    outside = [e for e in (scan if scan is not None else scan_landing(landing, layout)) if e.partition is None]
    with transaction(con):
        con.execute("delete from ingest.ingestion_log where partition_date is null").fetchall()
        _log_skipped(con, plan, outside, None)
    return len(outside)


def ingest_partitions(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    landing: Path | str,
    partitions: list[str],
    validator: Validator | None = None,
    on_done=None,
    layout: str | None = None,
    scan: list[LandingEntry] | None = None,
    depth: int = 0,
    because: dict[str, str] | None = None,
) -> list[PartitionResult]:
    """Ingest many partitions: consecutive partitions are validated together (one query run per
    ~256 MB of landing files) and replaced together in one transaction. The next group's files are
    read on a second thread while DuckDB classifies and loads the current one. `landing` is a folder
    or an object-store URL, read in `layout` (detected when None: see tracking_plan.landing).

    A message's earliest copy is loaded and its later ones are its repeats, whichever day runs first:
    a day whose rows another day's load changed (see _dependents) runs again in the same call, its
    result's `because` saying why (a full build of the landing zone gives the same tables)."""
    from quality_checks.rules import plan_rules, property_layer

    validator = validator or Validator(plan)
    judged = property_layer("ingest.events", plan_rules(plan))  # (what the loaded rows are known to pass)
    d = plan.header.defaults
    scan = scan if scan is not None else scan_landing(landing, layout)
    landed = {e.partition for e in scan if e.partition}
    dependents: dict[str, str] = {}
    skipped: dict[str, list[LandingEntry]] = {p: [] for p in partitions}
    to_read: dict[str, list[LandingEntry]] = {p: [] for p in partitions}
    for e in scan:
        if e.partition in to_read:
            (to_read if e.skip is None else skipped)[e.partition].append(e)
    sizes = [sum(f.size if f.size is not None else (_stamp(f)[1] or 0) for f in to_read[p]) for p in partitions]
    groups = [[(partitions[i], to_read[partitions[i]]) for i in g] for g in partition_runs(sizes, GROUP_BYTES)]

    def read(group: list[tuple[str, list[LandingEntry]]]):
        part_of = {str(f.path): p for p, fs in group for f in fs}
        logs: dict[str, dict] = {p: {} for p, _ in group}
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None)

        def file_done(path: str, stats: ReadStats) -> None:
            logs[part_of[path]][path] = (stats, started)

        files = [f for _, fs in group for f in fs]
        # lines keep their terminator (the parser ignores it); only quarantined lines are trimmed
        tables = list(
            read_files(files, max_bytes=d.max_event_bytes, batch_lines=1 << 62, on_file_done=file_done, strip=False)
        )
        return part_of, logs, tables

    results = []
    # With several groups, each group's de-duplication looks for its messageIds among the events of
    # every other partition; scanning all of ingest.events for them made the ingest's cost grow with
    # the square of its size (30 groups at 10M events read ~150M stored messageIds). _seen mirrors
    # ingest.events' (hash of messageId, partition) as the groups replace partitions, so each group
    # reads only the partitions that may hold one of its messageIds (a hash collision costs a
    # partition read, never a wrong answer: the stored messageIds decide).
    seen = len(groups) > 1
    if seen:
        con.execute(
            "create or replace temp table _seen as select hash(message_id) as h, partition_date from ingest.events"
        ).fetchall()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trackplan-read") as pool:
        pending = pool.submit(read, groups[0]) if groups else None
        for i, group in enumerate(groups):
            t0 = time.time()
            still = {p for g in groups[i + 1 :] for p, _ in g}
            part_of, logs, tables = pending.result()
            pending = None
            if tables:
                con.register("_batch_in", tables[0])
                # the lines stay in the Arrow table (registered until the group is loaded): the
                # quarantine and the erasure register read the few they need from there. The validated
                # rows are written in any order (DuckDB's threads append their chunks as they finish):
                # everything after joins them on their rowid or orders them itself (1M events: pass 1
                # 7.8-8.1 -> 6.8-7.1 CPU-s, the ingest's wall time 11.0 -> 8.9 s)
                con.execute("set preserve_insertion_order = false")
                try:
                    validator.run(con, "_batch_in", "_group", raw=False)
                finally:
                    con.execute("reset preserve_insertion_order")
                # Snowplow TSV: the quarantine keeps the line as it was, not its mapped JSON
                has_verbatim = "verbatim" in tables[0].column_names
                con.execute(
                    "create or replace temp table _verbatim as select source_file, line_no, verbatim "
                    + (
                        "from _batch_in where verbatim is not null"
                        if has_verbatim
                        else "from (select ''::varchar as source_file, 0::bigint as line_no, ''::varchar as "
                        "verbatim) where false"
                    )
                ).fetchall()
                con.register("_part_of", pa.table({"source_file": list(part_of), "_partition": list(part_of.values())}))
                # which partition each line belongs to; the validated rows stay where the validator wrote them
                con.execute(
                    "create or replace temp table _part_of_t as select source_file, _partition::date as _pdate "
                    "from _part_of"
                ).fetchall()
                con.unregister("_part_of")
                con.execute(
                    "create or replace temp view _part as select g.*, g.rowid as _rid, m._pdate from _group g "
                    "join _part_of_t m using (source_file)"
                ).fetchall()
            # the next group is read while this one is classified and loaded, not while it is validated:
            # both groups' lines mapped beside the first pass's table made the ingest's peak. Whole
            # runs at 10M events, two of each alternated: peak 2,848-2,969 -> 2,678-2,685 MiB, for
            # 280.7-281.1 -> 288.5-289.1 CPU-s (the read now overlaps the insert). Reading a group
            # takes a third of the time classifying and loading one does: it is done before needed
            if i + 1 < len(groups):
                pending = pool.submit(read, groups[i + 1])
            has_rows = bool(tables)
            listed = {p: [(str(e.path), *_stamp(e)) for e in to_read[p] + skipped[p]] for p, _ in group}
            try:
                group_results, later = _load_group(
                    con,
                    plan,
                    [p for p, _ in group],
                    logs,
                    has_rows=has_rows,
                    skipped=skipped,
                    listed=listed,
                    seen=seen,
                    judged=judged,
                )
                # (a day of a later group runs anyway)
                dependents.update({p: why for p, why in later.items() if p not in still})
            finally:
                if has_rows:
                    con.unregister("_batch_in")
            del tables
            per_part = (time.time() - t0) / len(group)
            for res in group_results:
                res.seconds = per_part
                res.because = (because or {}).get(res.partition)
                results.append(res)
                if on_done:
                    on_done(res)
    if seen:
        con.execute("drop table if exists _seen").fetchall()
    # the days whose rows this run's changed the meaning of run again (a message's first copy moved)
    again = runs_again(dependents, landed, depth)
    if again:
        results += ingest_partitions(
            con, plan, landing, sorted(again), validator, on_done, layout, scan, depth=depth + 1, because=again
        )
    if depth == 0:
        log_outside_partitions(con, plan, landing, scan)
    return results


def ingest_partition(
    con: duckdb.DuckDBPyConnection, plan: Plan, landing: Path, partition: str, validator: Validator | None = None
) -> PartitionResult:
    """Replace partition `partition` of the ingest tables with the content of its landing folder."""
    return ingest_partitions(con, plan, landing, [partition], validator=validator)[0]


def _load_group(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    partitions: list[str],
    logs: dict,
    has_rows: bool,
    skipped: dict[str, list[LandingEntry]] | None = None,
    listed: dict[str, list[tuple]] | None = None,
    seen: bool = False,
    judged: tuple[str, str, int] | None = None,
) -> list[PartitionResult]:
    """Classify the validated rows of temp table _part (column _pdate) and replace these partitions
    of the ingest tables in one transaction: a run killed midway leaves them as they were. With them,
    that the plan's property gates fail on none of their rows (quality_checks.rules.loaded_partitions_pass;
    `judged`: its layer, kept by the caller)."""
    dates = [dt.date.fromisoformat(p) for p in partitions]
    results = {p: PartitionResult(partition=p, files=len(logs[p])) for p in partitions}
    first = not has_rows or con.execute("select count(*) = 0 from _part").fetchall()[0][0]
    exprs = dict(event_columns(plan))
    names = ", ".join(exprs)  # (person_id stays NULL: the stitch writes it)
    # an identify or group call's properties are its traits: hashed once, in the subquery (shared_pii_sql)
    shared, traits_pii = shared_pii_sql(plan), ""
    if shared and exprs["traits"] != "traits":
        traits_pii = f", {exprs['traits']} as _pii_traits"
        exprs["properties"] = f"case when {shared} then _pii_traits else {exprs['properties']} end"
        exprs["traits"] = "_pii_traits"
    columns = ", ".join(exprs.values())
    late_reasons = late_reasons_sql(plan)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.register("_dates", pa.table({"d": pa.array(dates, pa.date32())}))

    with transaction(con):
        # the messages these partitions had loaded: one they no longer load may have copies that
        # other days set aside as its repeats, judged against this day's copy (see _dependents)
        con.execute(
            "create or replace temp table _was_loaded as select message_id, partition_date from ingest.events "
            "where partition_date in (select d from _dates)"
        ).fetchall()
        for table in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log", "ingest.landing_manifest"):
            con.execute(f"delete from {table} where partition_date in (select d from _dates)").fetchall()
        if seen:  # (a temp table: rolled back with the rest)
            con.execute("delete from _seen where partition_date in (select d from _dates)").fetchall()
        if not first:
            # the erasure register (temp table _suppressed_rids) matches a rejected row on its line's text
            con.execute(
                "create or replace temp view _part_lines as select p.* replace (b.raw as raw) from _part p "
                "left join _batch_in b on b.source_file = p.source_file and b.line_no = p.line_no and not p.valid"
            ).fetchall()
            mark_suppressed(con, plan, "_part_lines")
            # the classification is narrow (row id, partition, bucket): the wide validated rows are read
            # once more only by the inserts, never copied
            where = ""
            if seen:  # only the partitions that may hold one of this group's messageIds
                days = [
                    r[0]
                    for r in con.execute(
                        "select distinct partition_date from _seen "
                        "where h in (select hash(message_id) from _group where valid) order by 1"
                    ).fetchall()
                ]
                where = f"partition_date in ({', '.join(lit(d.isoformat()) + '::date' for d in days) or 'null'}) and "
            prior = (
                f"select message_id, min(partition_date) as _day from ingest.events where {where}"
                "partition_date not in (select d from _dates) "
                "and message_id in (select message_id from _group where valid) group by message_id"
            )
            con.execute(f"create or replace temp table _classified as {classify_sql(plan, prior)}").fetchall()
            con.execute(
                "create or replace temp table _exceptions as select _rid, _bucket, _strip from _classified "
                "where _bucket <> 'loaded' or _strip"
            ).fetchall()
            con.execute(
                f"""
insert into ingest.events ({names}, consent_stripped, plan_version, partition_date, source_file, line_no, loaded_at)
select {columns}, coalesce(_strip, false) as _strip, ?, _pdate, source_file, line_no, ?
-- the few rows that are not simply loaded (or are loaded stripped) are looked up; the rest stream through
from (select g.*, m._pdate, e._strip{traits_pii} from _group g join _part_of_t m using (source_file)
      left join _exceptions e on e._rid = g.rowid
      where coalesce(e._bucket, 'loaded') = 'loaded') as g
""",
                [plan.version, now],
            ).fetchall()
            if seen:
                con.execute(
                    "insert into _seen select hash(g.message_id), c._pdate from _classified c "
                    "join _group g on g.rowid = c._rid where c._bucket = 'loaded'"
                ).fetchall()
            con.execute(
                f"""
insert into ingest.quarantine
select c._pdate, g.source_file, g.line_no, coalesce(v.verbatim, rtrim(b.raw, chr(13) || chr(10))), {late_reasons},
       list_transform({late_reasons}, lambda r: r.rule),
       message_id, event_name, received_at, library_name, library_version, ?, ?
from _group g join _classified c on g.rowid = c._rid
-- the line as it was read (the validated rows do not copy it)
join _batch_in b on b.source_file = g.source_file and b.line_no = g.line_no
left join _verbatim v on v.source_file = g.source_file and v.line_no = g.line_no
where c._bucket = 'quarantined'
""",
                [plan.version, now],
            ).fetchall()
            counts = {
                r[0]: r[1:]
                for r in con.execute("""
select source_file, count(*), count(*) filter (where _bucket = 'loaded'),
       count(*) filter (where _bucket = 'quarantined'), count(*) filter (where _bucket = 'duplicate'),
       count(*) filter (where _bucket = 'consent_dropped'), count(*) filter (where _bucket = 'suppressed'),
       count(*) filter (where _bucket = 'loaded' and _warned)
from _classified group by source_file""").fetchall()
            }
        else:
            counts = {}
        finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = []
        for p in partitions:
            res = results[p]
            for name, (stats, started) in logs[p].items():
                c = counts.get(name, (0, 0, 0, 0, 0, 0, 0))
                if c[0] != stats.lines:  # the reader's count from the bytes against what was classified
                    raise RuntimeError(
                        f"{name}: the reader counted {stats.lines} lines but {c[0]} were classified; "
                        "the partition was not replaced"
                    )
                if not stats.opened:  # could not even be opened: skipped, with the reason
                    res.files -= 1
                    res.skipped += 1
                rows.append(
                    (
                        dt.date.fromisoformat(p),
                        name,
                        c[0],
                        c[1],
                        c[2],
                        c[3],
                        c[4],
                        c[5],
                        c[6],
                        stats.bytes,
                        stats.file_error,
                        plan.version,
                        started,
                        finished,
                        (finished - started).total_seconds(),
                        "read" if stats.opened else "skipped",
                        None if stats.opened else stats.file_error,
                    )
                )
                res.lines += c[0]
                res.loaded += c[1]
                res.quarantined += c[2]
                res.duplicates += c[3]
                res.consent_dropped += c[4]
                res.suppressed += c[5]
        for row in rows:
            con.execute(
                "insert into ingest.ingestion_log (partition_date, source_file, lines, loaded, quarantined, "
                "duplicates, consent_dropped, suppressed, warnings, bytes, file_error, plan_version, "
                "started_at, finished_at, seconds, status, skip_reason) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                list(row),
            ).fetchall()
        for p in partitions:
            entries = (skipped or {}).get(p, [])
            results[p].skipped += len(entries)
            _log_skipped(con, plan, entries, dt.date.fromisoformat(p))
            # the manifest: what this partition was built from (key, ETag, size), in the same transaction
            for key, etag, size in (listed or {}).get(p, []):
                con.execute(
                    "insert into ingest.landing_manifest values (?, ?, ?, ?, ?)",
                    [dt.date.fromisoformat(p), key, etag, size, finished],
                ).fetchall()
        if not first:
            from quality_checks.rules import loaded_partitions_pass

            loaded_partitions_pass(con, plan, dates, layer=judged)
        dependents = _dependents(con, plan, first)
    con.unregister("_dates")  # (after a failure the next register replaces it)
    if any(r.quarantined for r in results.values()):
        top: dict[str, list] = {}
        for p, rule, n in con.execute(f"""
select _pdate::varchar, rule, count(*) from (select c._pdate, unnest(list_transform({late_reasons}, lambda r: r.rule)) as rule
from _group g join _classified c on g.rowid = c._rid where c._bucket = 'quarantined') group by all order by 3 desc""").fetchall():
            top.setdefault(p, []).append((rule, n))
        for p, res in results.items():
            res.top_reasons = top.get(p, [])[:5]
    return [results[p] for p in partitions], dependents


def _dependents(con: duckdb.DuckDBPyConnection, plan: Plan, first: bool) -> dict[str, str]:
    """The other partitions whose rows this group's load changed the meaning of, with why (rerun_reasons):
    the later days whose loaded copy this group's now repeats (`_displaces`), and, for the messages
    these partitions had loaded and no longer load (its file gone or changed, or an earlier copy
    found), the days that judged a repeat of one against a copy that moved."""
    displaced = []
    if not first:
        displaced = [
            d
            for (d,) in con.execute(
                "select distinct _displaces from _classified where _displaces is not null and _bucket = 'loaded'"
            ).fetchall()
        ]
    moved = "select message_id, partition_date from _was_loaded"
    if not first:  # (no rows: the group's partitions hold nothing now, every message they had moved)
        moved += (
            " except select g.message_id, c._pdate from _classified c join _group g on g.rowid = c._rid "
            "where c._bucket = 'loaded'"
        )
    moved_days, duplicate_days, late_days = [], [], []
    # (a first load, as every day of a full build, had loaded nothing: no message moved)
    if con.execute("select count(*) from _was_loaded").fetchall()[0][0]:
        con.execute(f"create or replace temp table _moved as {moved}").fetchall()
        moved_days = [d for (d,) in con.execute("select distinct partition_date from _moved").fetchall()]
    if moved_days:
        duplicate_days = [
            d
            for (d,) in con.execute(
                "select distinct partition_date from ingest.ingestion_log where duplicates > 0"
            ).fetchall()
        ]
        late_days = [
            d
            for (d,) in con.execute(
                "select distinct partition_date from ingest.quarantine where list_contains(rules, 'duplicate') "
                "and message_id in (select message_id from _moved)"
            ).fetchall()
        ]
    mine = {d for (d,) in con.execute("select d from _dates").fetchall()}
    return rerun_reasons(plan, mine, displaced, moved_days, duplicate_days, late_days)


def rerun_reasons(plan: Plan, mine, displaced, moved_days, duplicate_days, late_days) -> dict[str, str]:
    """The days other than `mine` (the days just loaded) to run again, {day: why}, on both engines. A
    message's earliest loadable copy (valid, not dropped for its consent) is the event and the later
    ones its repeats (duplicates within
    dedup_lookback_days of it, late re-sends beyond), whichever day ran first, as a full build
    decides (classify_sql): a later day whose loaded copy is now a repeat (`displaced`); and, where messages of
    `moved_days` are no longer loaded from there, the days within the lookback after one of them
    that set a duplicate aside (`duplicate_days`: any) and those that quarantined one of the moved
    messages as a late re-send (`late_days`)."""
    lookback = dt.timedelta(days=int(plan.header.defaults.dedup_lookback_days))
    out = {d.isoformat(): DISPLACED for d in sorted(set(displaced) - set(mine))}
    near = {d for d in duplicate_days if d is not None and any(f < d <= f + lookback for f in moved_days)}
    for d in sorted((near | set(late_days)) - set(mine)):
        out.setdefault(d.isoformat(), REPEATS_MOVED)
    return out


def runs_again(dependents: dict[str, str], landed: set[str], depth: int) -> dict[str, str]:
    """The days of `dependents` that landed (a day with no files left is not run to be emptied) and
    so run again; an error if days kept sending each other to run again (`depth` runs deep)."""
    again = {p: why for p, why in dependents.items() if p in landed}
    if again and depth >= len(landed):
        raise RuntimeError(f"ingest: partitions kept sending each other to run again ({sorted(again)})")
    return again

"""CPU of the sessions model (models/staging/sessions.sql) of two checkouts on the same events.

A warehouse built once (`trackplan run --landing L --warehouse W`) is opened read-only; a share of
its persons' events (`--slice`: one in N persons) is copied into a temp table, and a share of those
persons get client session ids (`--with-ids`: none, some or all), some of them longer than
max_session_days so the cap applies. Each checkout's model SQL then runs over that table, the two
alternated `--repeat` times in this one process (load falls on both alike); printed: the CPU seconds
of each run, their medians, b's as a ratio of a's, and whether the two produce the same rows (a hash
of every column). Generated landings carry no client session ids, where DuckDB drops the model's work
on them by itself: hence the synthetic ids.

    python benchmarks/sessions_cpu.py WAREHOUSE --a MAIN_CHECKOUT --b . [--slice 8] [--with-ids some] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# client session ids, by person: 2-hour ids for a third of the persons, 10-day ids (beyond the
# default max_session_days of 3) for another third, none for the rest
IDS = {
    "none": "null",
    "some": """case hash(person_id) % 3
        when 0 then person_id || '-' || (epoch("timestamp")::bigint // 864000)::varchar
        when 1 then person_id || '-' || (epoch("timestamp")::bigint // 7200)::varchar end""",
    "all": """case hash(person_id) % 2
        when 0 then person_id || '-' || (epoch("timestamp")::bigint // 864000)::varchar
        else person_id || '-' || (epoch("timestamp")::bigint // 7200)::varchar end""",
}
COLUMNS = (
    "session_id, person_id, started_at, ended_at, event_count, page_views, landing_page, referrer, "
    "utm_source, utm_medium, utm_campaign, anonymous_id, client_session_id"
)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--a", type=Path, required=True, help="a checkout (the baseline)")
    ap.add_argument("--b", type=Path, default=REPO, help="another checkout (default: this one)")
    ap.add_argument("--slice", type=int, default=8, help="one in N persons' events (default 8)")
    ap.add_argument("--with-ids", choices=sorted(IDS), default="some")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from pipelines.stitch.state import over
    from pipelines.warehouse import connect

    if not args.warehouse.exists():
        raise SystemExit(f"{args.warehouse}: no such warehouse (build one with `trackplan run`)")
    con = connect(args.warehouse, read_only=True)
    con.execute(
        f"create temp table _events as select * replace ({IDS[args.with_ids]} as session_id) "
        f"from stitch.events where hash(person_id) % {args.slice} = 0"
    ).fetchall()
    n, with_ids = con.execute("select count(*), count(session_id) from _events").fetchall()[0]
    print(f"{n:,} events, {with_ids:,} of them with a client session id")
    models = {
        name: over((tree / "models/staging/sessions.sql").read_text(), "_events", str(tree))
        for name, tree in (("a", args.a), ("b", args.b))
    }
    times: dict[str, list[float]] = {"a": [], "b": []}
    rows: dict[str, tuple] = {}
    for _ in range(args.repeat):
        for name, sql in models.items():
            c0 = cpu()
            got = con.execute(f"select count(*), sum(hash({COLUMNS})) from ({sql})").fetchall()[0]
            times[name].append(cpu() - c0)
            rows[name] = got
            print(f"  {name}: {times[name][-1]:.2f} CPU-s, {got[0]:,} sessions")
    a, b = statistics.median(times["a"]), statistics.median(times["b"])
    print(f"median CPU-s: a {a:.2f}, b {b:.2f}; b / a {b / a:.2f}")
    same = rows["a"] == rows["b"]
    print("the same rows" if same else f"DIFFERENT rows: a {rows['a']}, b {rows['b']}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

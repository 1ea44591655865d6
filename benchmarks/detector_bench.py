"""`make bench` (detectors): how often the anomaly detectors cry wolf, and how big an incident must be.

    .venv/bin/python benchmarks/detector_bench.py --quick   # 1 size x 2 seeds, about a minute
    .venv/bin/python benchmarks/detector_bench.py           # 300 and 1200 users x 6 seeds, 3000 x 3 (README)

For each traffic size (generator users) and seed: bug-free traffic is generated, loaded and stitched
once (support.warehouse.load_landing); then quality.daily_metrics is built by the pipeline's own
`build_daily_metrics` and scored by `detect`:
  - clean: every alert is a false alert. Series-days are counted per detector from the day the
    detectors may first score (`min_history_days`), so cold-start days do not dilute the rate;
  - partial last day: the data cut at a random hour of its last day (a run in the middle of a day);
    any alert on that day is false;
  - incidents: per magnitude (small, medium, large) one variant where every kind is planted on its
    own randomly drawn event (or property), all starting on one random day 5 to 8 days before the
    end (quality_checks.planted). Recall: an alert from the kind's detectors on the planted
    event/property on or after that day; delay: days from the planted day to the first such alert;
  - the recall target's own sample ("drop50 busy"): a 50% drop planted at once on every event of
    >= 100 a day, each from its own random day 5 to 8 days before the end (~2.4 per run);
  - after an incident: the same lasting drop from 19 to 21 days before the end, followed for those
    three weeks: the days with an alert on it, the last one (quiet since: the new level learned),
    its series-days not scored, and the alerts on the other events against the clean data's.
Targets (issue 22): clean <= 1 false alert per 10,000 series-days; recall >= 95% for a 50% volume drop
of an event with >= 100 events/day, a silent event, and a type change reaching 20% of values.
Nothing here is tuned to a seed: seeds are 1..N for every size.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "tests"),
]  # support.warehouse

from quality_checks.detectors import UNSCORED, _prepared, _scored_series, complete_days, decisions, detect
from quality_checks.metrics import build_daily_metrics, last_seen
from quality_checks.planted import (
    DETECTORS,
    LEVELS,
    Planted,
    caught,
    choose,
    plant,
    restore,
    snapshot,
    sunset_plan,
)
from tracking_plan.quality_settings import QualitySettings, settings_for

UNITS = {
    "volume_drop": "{:.0%} fewer",
    "volume_spike": "+{:.0%}",
    "silence": "all",
    "null_drift": "{:.0%} nulled",
    "type_change": "{:.0%} of values",
    "enum_shift": "{:.0%} moved",
    "new_event": "{:.0%} of host",
    "late_data": "{:g} h late",
    "sunset": "{:.0%} still sent",
}
TARGET_LEVEL = "drop50 busy"  # the variant with a 50% drop on every event of >= 100 a day
DROP_TARGET = 0.5
AFTER_DAYS = (19, 21)  # the lasting drop of `after_incident` starts this many days before the end


def _pre_volume(m: pd.DataFrame, before) -> pd.Series:
    v = m[(m["metric"] == "volume") & (pd.to_datetime(m["day"]) < pd.Timestamp(before))]
    return v.groupby("event_name")["value"].median()


def busy_events(m: pd.DataFrame, plan, before) -> list[str]:
    """Events of the plan with a median of >= 100 a day before `before` (sorted: deterministic)."""
    v = _pre_volume(m, before)
    return sorted(e for e, x in v.items() if x >= 100 and e in plan.events)


def busy_volume(m: pd.DataFrame, event: str, before) -> float:
    return float(_pre_volume(m, before).get(event, 0.0))


def generator():
    """The sample traffic generator (moves to trackplan.demo with issue 17: the one import to fix)."""
    from trackplan.demo.generate import generate

    return generate


def series_days(m: pd.DataFrame, plan, first_scored) -> dict[str, int]:
    """Decisions each detector makes over the scored days: one per series and day."""
    return decisions(m, first_scored)


def build(users: int, seed: int, days: int, tmp: Path, plan, levels) -> dict:
    """The metrics every variant of one (size, seed) gives: clean, partial last day, incidents."""
    from support.warehouse import load_landing

    from pipelines.warehouse import connect

    generator()(tmp / "landing", days=days, users=users, seed=seed, bug_rate=0, plan=plan)
    con = connect(tmp / "w.duckdb")
    load_landing(con, plan, tmp / "landing")
    snapshot(con)

    def metrics(p=plan):
        build_daily_metrics(con, p)
        return con.execute("select * from quality.daily_metrics").df(), last_seen(con)

    case = {"users": users, "seed": seed, "clean": metrics()}
    m = case["clean"][0]
    cal = sorted(pd.to_datetime(m["day"]).unique())
    rng = np.random.default_rng([seed, users, days])
    # partial last day: the data as a run at a random hour of the last day would see it
    hour = int(rng.integers(4, 22))
    cut = pd.Timestamp(cal[-1]) + pd.Timedelta(hours=hour)
    for table in ("ingest.events", "ingest.quarantine"):  # (stitch.events is a view of ingest.events)
        con.execute(f"delete from {table} where received_at > ?", [cut.to_pydatetime()])
    case["partial"], case["partial_hour"] = metrics(), hour
    case["variants"] = []
    for level in levels:
        restore(con)
        start = (pd.Timestamp(cal[-1]) - pd.Timedelta(days=int(rng.integers(5, 9)))).date()
        incs = choose(m, plan, level, start, rng)
        for inc in incs:
            plant(con, inc, plan)
        p = sunset_plan(plan, incs)
        case["variants"].append((level, incs, p, metrics(p)))
    # the recall target's own sample: a 50% drop planted on every event of >= 100 a day at once
    # (each its own series, each from its own random day 5 to 8 days before the end); one variant
    # per case gives ~3x the busy drops the levels give, at the cost of one more metrics build
    restore(con)
    drops = []
    for ev in busy_events(m, plan, pd.Timestamp(cal[-1]) - pd.Timedelta(days=8)):
        start = (pd.Timestamp(cal[-1]) - pd.Timedelta(days=int(rng.integers(5, 9)))).date()
        inc = Planted("volume_drop", ev, start, DROP_TARGET, facts={"daily_volume": busy_volume(m, ev, start)})
        plant(con, inc, plan)
        drops.append(inc)
    case["variants"].append((TARGET_LEVEL, drops, plan, metrics()))
    # after an incident: a lasting 50% drop on every event of >= 100 a day, each from its own day 19 to
    # 21 days before the end, so that the weeks after it are seen (drawn after every draw above: the
    # other variants are what they were without it)
    restore(con)
    lasting = []
    for ev in busy_events(m, plan, pd.Timestamp(cal[-1]) - pd.Timedelta(days=AFTER_DAYS[1])):
        start = (pd.Timestamp(cal[-1]) - pd.Timedelta(days=int(rng.integers(AFTER_DAYS[0], AFTER_DAYS[1] + 1)))).date()
        inc = Planted("volume_drop", ev, start, DROP_TARGET, facts={"daily_volume": busy_volume(m, ev, start)})
        plant(con, inc, plan)
        lasting.append(inc)
    case["after"] = (lasting, metrics())
    con.close()
    return case


def after_incident(case: dict, plan, s: QualitySettings) -> dict:
    """What the series detectors do in the weeks after a lasting drop (case["after"]): per planted
    event, the days from its start with an alert on it (volume, persons), and its series-days not
    scored from its start on, by reason; and the alerts on the other events over the same days, with
    the clean data's on the same events and days."""
    incs, (mv, seen) = case["after"]
    found = detect(mv, plan, s, last_seen=seen)
    found["day"] = pd.to_datetime(found["day"])
    m, cal = _prepared(mv)
    series = {
        metric: (index, r)
        for metric, index, _v, r in _scored_series(m, s, cal, complete_days(cal, seen, s))
        if metric in DETECTORS["volume_drop"]
    }
    out = {"incidents": [], "others": {}}
    for inc in incs:
        t0 = pd.Timestamp(inc.day)
        d0 = int(np.flatnonzero(cal == np.datetime64(inc.day, "D"))[0])
        sel = found[(found["event_name"] == inc.event) & found["detector"].isin(DETECTORS["volume_drop"])]
        days = sorted({int((d - t0).days) for d in sel.loc[sel["day"] >= t0, "day"]})
        unscored: dict[str, int] = defaultdict(int)
        for index, r in series.values():
            rows = [i for i, key in enumerate(index) if key[0] == inc.event]
            for i in rows:
                for code in r.reason[i, d0:][r.basis[i, d0:] == 0]:
                    unscored[UNSCORED.get(int(code), str(code))] += 1
        out["incidents"].append(
            {
                "event": inc.event,
                "daily_volume": inc.facts.get("daily_volume", 0.0),
                "observed_days": len(cal) - d0,
                "alert_days": days,
                "before": int((sel["day"] < t0).sum()),
                "series_days": sum(len(cal) - d0 for _ in series),
                "unscored": dict(unscored),
            }
        )
    # the other events over the same days: their alerts against the clean data's
    first = min((pd.Timestamp(i.day) for i in incs), default=None)
    if first is not None:
        planted = {i.event for i in incs}
        clean = detect(case["clean"][0], plan, s, last_seen=case["clean"][1])
        clean["day"] = pd.to_datetime(clean["day"])
        rest = mv[~mv["event_name"].isin(planted)]
        n = sum(decisions(rest, first).values())
        for name, f in (("after", found), ("clean", clean)):
            out["others"][name] = int(((f["day"] >= first) & ~f["event_name"].isin(planted)).sum())
        out["others"]["decisions"] = n
    return out


def evaluate(case: dict, plan, s: QualitySettings) -> dict:
    """Score one case's variants with settings `s`."""
    users, seed = case["users"], case["seed"]
    m, seen = case["clean"]
    found = detect(m, plan, s, last_seen=seen)
    cal = sorted(pd.to_datetime(m["day"]).unique())
    first_scored = cal[min(s.min_history_days, len(cal) - 1)]
    res = {"series_days": series_days(m, plan, first_scored), "clean": found.to_dict("records"), "incidents": []}
    mp, seen_p = case["partial"]
    found = detect(mp, plan, s, last_seen=seen_p)
    last = pd.Timestamp(cal[-1]).date()
    res["partial"] = [r for r in found.to_dict("records") if r["day"] == last]
    res["partial_series"] = series_days(mp[pd.to_datetime(mp["day"]) == pd.Timestamp(last)], plan, last)
    res["partial_hour"] = case["partial_hour"]
    if "after" in case:  # (a case cached before it had no such variant)
        res["after"] = after_incident(case, plan, s)
    for level, incs, p, (mv, seen_v) in case["variants"]:
        found = detect(mv, p, s, last_seen=seen_v)
        for inc in incs:
            hit, delay, dets = caught(found, inc)
            res["incidents"].append(
                {
                    "level": level,
                    "kind": inc.kind,
                    "size": inc.size,
                    "event": inc.event,
                    "property": inc.property,
                    "daily_volume": inc.facts.get("daily_volume", 0.0),
                    "caught": hit,
                    "delay": delay,
                    "detectors": dets,
                    "seed": seed,
                    "users": users,
                }
            )
    return res


def report(runs: list[dict], s: QualitySettings) -> None:
    print("\n== clean data: false alerts (bug-free traffic; every alert is false) ==")
    fa = defaultdict(int)
    sd = defaultdict(int)
    for r in runs:
        for a in r["clean"]:
            fa[a["detector"]] += 1
        for k, v in r["series_days"].items():
            sd[k] += v
    print(f"{'detector':<18}{'series-days':>12}{'alerts':>8}{'per 1,000':>11}")
    for k in sorted(sd, key=lambda k: -sd[k]):
        print(f"{k:<18}{sd[k]:>12,}{fa[k]:>8}{1000 * fa[k] / max(sd[k], 1):>11.3f}")
    tot_a, tot_s = sum(fa.values()), sum(sd.values())
    print(
        f"{'all detectors':<18}{tot_s:>12,}{tot_a:>8}{1000 * tot_a / max(tot_s, 1):>11.3f}"
        f"   = {10000 * tot_a / max(tot_s, 1):.2f} per 10,000 (target <= 1)"
    )
    # a one-sided 95% upper bound on the rate (exact Poisson): what the figures can claim
    from scipy.stats import chi2

    up = chi2.ppf(0.95, 2 * (tot_a + 1)) / 2
    print(f"  95% upper bound: {10000 * up / max(tot_s, 1):.2f} per 10,000 series-days")
    for a in [a for r in runs for a in r["clean"]][:20]:
        print(f"    false: {a['day']} {a['event_name']} [{a['detector']}] {a['message']}")

    pa = sum(len(r["partial"]) for r in runs)
    ps = sum(sum(r["partial_series"].values()) for r in runs)
    print(f"\n== partial last day (cut at a random hour): {pa} false alerts in {ps:,} series on that day ==")
    for r in runs:
        for a in r["partial"][:5]:
            print(f"    false (cut at {r['partial_hour']}:00): {a['event_name']} [{a['detector']}] {a['message']}")

    inc = pd.DataFrame([i for r in runs for i in r["incidents"]])
    if inc.empty:
        return
    print("\n== planted incidents: recall and detection delay (days from the planted day) ==")
    inc["busy"] = np.where(inc["daily_volume"] >= 100, ">=100/day", "<100/day")
    print(
        f"{'kind':<14}{'level':<8}{'magnitude':<18}{'events':<11}{'n':>4}{'recall':>8}{'same day':>9}"
        f"{'delay med':>10}{'max':>5}  detectors that fired"
    )
    for kind in DETECTORS:
        for level in LEVELS:
            g0 = inc[(inc["kind"] == kind) & (inc["level"] == level)]
            groups = (
                [(b, g0[g0["busy"] == b]) for b in (">=100/day", "<100/day")]
                if kind.startswith(("volume", "silence"))
                else [("", g0)]
            )
            for busy, g in groups:
                if g.empty:
                    continue
                hit = g[g["caught"]]
                delays = list(hit["delay"])
                fired = defaultdict(int)
                for ds in hit["detectors"]:
                    for d_ in ds:
                        fired[d_] += 1
                print(
                    f"{kind:<14}{level:<8}{UNITS[kind].format(LEVELS[level][kind]):<18}{busy:<11}{len(g):>4}"
                    f"{len(hit) / len(g):>8.0%}{sum(x == 0 for x in delays) / len(g):>9.0%}"
                    f"{(statistics.median(delays) if delays else float('nan')):>10.1f}"
                    f"{(max(delays) if delays else float('nan')):>5}  "
                    + ", ".join(f"{k} {v}" for k, v in sorted(fired.items(), key=lambda x: -x[1]))
                )
    tgt = inc[inc["level"] == TARGET_LEVEL]
    if not tgt.empty:
        from scipy.stats import beta

        k, n = int(tgt["caught"].sum()), len(tgt)
        lo = beta.ppf(0.05, k, n - k + 1) if k else 0.0  # one-sided 95% (Clopper-Pearson)
        delays = list(tgt[tgt["caught"]]["delay"])
        print(
            f"\n== recall target: a {DROP_TARGET:.0%} drop on every event of >= 100/day "
            f"(own variant, own start day 5-8 days before the end) ==\n"
            f"  caught {k} of {n} = {k / n:.1%} (95% lower bound {lo:.1%}; target >= 95%); "
            f"delay: " + ", ".join(f"{d} d: {sum(x == d for x in delays)}" for d in sorted(set(delays)))
        )
        by = tgt.groupby("event").agg(n=("caught", "size"), caught=("caught", "sum"), volume=("daily_volume", "median"))
        for ev, row in by.iterrows():
            print(f"    {ev:<24} ~{row['volume']:>5.0f}/day  {int(row['caught'])}/{int(row['n'])}")
        for _, x in tgt[~tgt["caught"]].head(10).iterrows():
            print(f"    missed: {x['event']} (~{x['daily_volume']:.0f}/day, users {x['users']}, seed {x['seed']})")
    _report_after(runs)
    missed = inc[~inc["caught"] & (inc["level"] == "large")]
    for _, x in missed.head(10).iterrows():
        print(
            f"    missed (large): {x['kind']} on {x['event']} {x['property'] or ''} "
            f"(~{x['daily_volume']:.0f}/day, users {x['users']}, seed {x['seed']})"
        )


def _report_after(runs: list[dict]) -> None:
    """The weeks after a lasting drop (after_incident), over every run."""
    rows = [i for r in runs if "after" in r for i in r["after"]["incidents"]]
    if not rows:
        return
    print(
        f"\n== after an incident: a lasting {DROP_TARGET:.0%} drop on every event of >= 100/day, from "
        f"{AFTER_DAYS[0]}-{AFTER_DAYS[1]} days before the end (volume and persons detectors) =="
    )
    caught = [i for i in rows if i["alert_days"]]
    n_days = [len(i["alert_days"]) for i in caught]
    last = [max(i["alert_days"]) for i in caught]
    quiet = sum(1 for i in caught if max(i["alert_days"]) < i["observed_days"] - 7)
    print(
        f"  {len(rows)} incidents in {sum('after' in r for r in runs)} runs, {len(caught)} alerted on "
        f"(first alert: "
        + ", ".join(
            f"day {d}: {sum(min(i['alert_days']) == d for i in caught)}"
            for d in sorted({min(i["alert_days"]) for i in caught})
        )
        + ")"
    )
    if caught:
        print(
            f"  days with an alert after the start: median {statistics.median(n_days):g}, 90th percentile "
            f"{np.percentile(n_days, 90):g}, max {max(n_days)} (of {statistics.median([i['observed_days'] for i in rows]):g} days seen)"
        )
        print(
            f"  the last alert, days after the start: median {statistics.median(last):g}, max {max(last)}; "
            f"{quiet} of {len(caught)} quiet for the last 7 days (the new level learned)"
        )
    sd = sum(i["series_days"] for i in rows)
    un: dict[str, int] = defaultdict(int)
    for i in rows:
        for k, v in i["unscored"].items():
            un[k] += v
    print(
        f"  series-days not scored from the start on: {sum(un.values())} of {sd:,}"
        + ("" if not un else " (" + "; ".join(f"{k}: {v}" for k, v in sorted(un.items(), key=lambda kv: -kv[1])) + ")")
    )
    o = [r["after"]["others"] for r in runs if "after" in r and r["after"]["others"]]
    dec, a, c = sum(x["decisions"] for x in o), sum(x["after"] for x in o), sum(x["clean"] for x in o)
    print(
        f"  the other events over the same days: {a} alerts in {dec:,} decisions ({10000 * a / max(dec, 1):.2f} "
        f"per 10,000); the clean data, same events and days: {c} ({10000 * c / max(dec, 1):.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 size x 2 seeds: a check that it runs (~1 min)")
    ap.add_argument(
        "--sizes",
        default="300,1200,3000:3",
        help="generator users, comma-separated; USERS:N runs that size on seeds 1..N only",
    )
    ap.add_argument("--seeds", type=int, default=6, help="seeds 1..N for every size without its own N")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=1,
        help="start the seeds here: a held-out check of settings tuned on seeds 1..N uses seeds N+1..",
    )
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--dump", type=Path, help="also write every run's alerts and incidents here (JSON)")
    ap.add_argument(
        "--cache",
        type=Path,
        help="keep each (size, seed)'s metrics here and reuse them: re-scoring "
        "with other settings then takes seconds (delete the folder after changing the metrics SQL, "
        "the generator or the incidents)",
    )
    a = ap.parse_args()
    plan_sizes = (
        [(1200, 2)]
        if a.quick
        else [(int(x.split(":")[0]), int(x.split(":")[1]) if ":" in x else a.seeds) for x in a.sizes.split(",")]
    )
    from tracking_plan.loader import load_plan

    plan = load_plan()
    s = settings_for(plan)
    runs = []
    t0 = time.perf_counter()
    for users, seeds in plan_sizes:
        for seed in range(a.first_seed, a.first_seed + seeds):
            t = time.perf_counter()
            cached = a.cache / f"u{users}-s{seed}-d{a.days}.pkl" if a.cache else None
            if cached and cached.exists():
                case = pickle.loads(cached.read_bytes())
            else:
                with tempfile.TemporaryDirectory(prefix="detector_bench_") as tmp:
                    case = build(users, seed, a.days, Path(tmp), plan, list(LEVELS))
                if cached:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.write_bytes(pickle.dumps(case))
            runs.append(evaluate(case, plan, s))
            print(
                f"users {users:>5} seed {seed:>3}: {len(runs[-1]['clean'])} false alerts, "
                f"{time.perf_counter() - t:.1f} s",
                flush=True,
            )
    print(
        f"\n{len(runs)} runs ({', '.join(f'{u} users x seeds 1..{n}' for u, n in plan_sizes)}, {a.days} days each) "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    report(runs, s)
    if a.dump:
        import json

        a.dump.write_text(json.dumps(runs, default=str, indent=1))


if __name__ == "__main__":
    main()

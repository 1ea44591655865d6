"""CPU cost of the collector's request hot path (parse + exactness check + prepare) per body.

In-process microbenchmark, CPU time (``time.process_time``, so a shared machine's load counts
less than in wall-clock figures), on realistic Segment batch bodies of 100 messages:

* ``bench``: the body ``collector_load.py`` posts (compact, as orjson writes it);
* ``ajs``: analytics.js style (``JSON.stringify``: compact; context.page, userAgent, non-ASCII);
* ``python``: segment-analytics-python style (``json.dumps``: ``", "``/``": "``, ``\\uXXXX``);
* ``ids``: python style with 19-digit order ids in strings and ``0.0`` amounts.

Each is timed with this checkout's ``pipelines/collector/segment.py`` and with the one of a
baseline git ref (default ``main``), in the same run, interleaved; the figures are ratios.

    python benchmarks/collector_parse.py                 # ~20 s
    python benchmarks/collector_parse.py --quick         # ~3 s: checks it runs
    python benchmarks/collector_parse.py --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tracking_plan import exactjson as segment  # what the collector re-exports

RECEIVED = "2026-11-22T19:23:46.000Z"


def _message(i: int, style: str, rng: random.Random) -> dict:
    if style == "bench":  # exactly collector_load.make_body's message
        mid = f"s0-b0-m{i}"
        return {"type": "track", "event": "Order Completed", "userId": f"user-{i % 97}", "messageId": mid,
                "timestamp": "2026-11-22T19:23:45.137Z",
                "properties": {"order_id": mid, "revenue": 12.5, "currency": "USD"},
                "context": {"library": {"name": "bench", "version": "1"}}}  # fmt: skip
    msg = {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "messageId": f"ajs-next-1764790000{i:03d}-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "timestamp": "2026-11-22T19:23:45.137Z",
        "properties": {"product_id": f"sku-{i}", "name": "Crème brûlée", "price": 18.99, "quantity": 1 + i % 3},
        "context": {
            "library": {"name": "analytics.js", "version": "npm:next-1.84.0"},
            "page": {
                "path": "/p/creme",
                "referrer": "https://www.example.com/search?q=cr%C3%A8me",
                "title": "Crème brûlée – shop",
                "url": "https://shop.example.com/p/creme?utm_source=news",
            },
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
        },
    }
    if style == "ids":
        msg["properties"].update(order_id=f"{1764790000123456789 + i}", discount=0.0, tax=0.0)
    return msg


def make_body(style: str, n: int = 100) -> bytes:
    rng = random.Random(f"{style}-{n}")  # random uuids (their "e-123" must not look like exponents)
    batch = [_message(i, style, rng) for i in range(n)]
    body = {"batch": batch, "sentAt": "2026-11-22T19:23:45.200Z"}
    if style in ("python", "ids"):
        return json.dumps(body).encode()  # the Python SDK's own json.dumps defaults
    if style == "ajs":
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()  # as JSON.stringify
    return orjson.dumps(body)


def baseline_module(ref: str, tmp: Path):
    # the exact-JSON code lives in tracking_plan/exactjson.py; refs before it moved keep it in segment.py
    for where in ("tracking_plan/exactjson.py", "pipelines/collector/segment.py"):
        got = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:{where}"], capture_output=True, check=False)
        if got.returncode == 0 and b"def loads_checked" in got.stdout:
            src = got.stdout
            break
    else:
        raise SystemExit(f"{ref}: no loads_checked in tracking_plan/exactjson.py or pipelines/collector/segment.py")
    path = tmp / "segment_baseline.py"
    path.write_bytes(src)
    spec = importlib.util.spec_from_file_location("segment_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["segment_baseline"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def hot_path(mod):
    def run(data: bytes):
        body, exact = mod.loads_checked(data)
        items, envelope = mod.messages_of(body, None)
        if not exact:
            items = mod.exact_items(data, items)
        return mod.prepare(items, envelope, received_at=RECEIVED)

    return run


def cpu_us(fn, data: bytes, reps: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(reps):
            fn(data)
        best = min(best, (time.process_time() - t0) / reps)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main", help="git ref whose segment.py is the baseline")
    ap.add_argument("--quick", action="store_true", help="few repetitions: checks it runs, not a measurement")
    args = ap.parse_args()
    reps, rounds = (20, 2) if args.quick else (200, 7)
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_module(args.baseline, Path(tmp))
    rows = []
    for style in ("bench", "ajs", "python", "ids"):
        data = make_body(style)
        same = base.loads_checked(data)[1] == segment.loads_checked(data)[1]
        t = {name: cpu_us(fn, data, reps, rounds) for name, fn in [
            ("orjson_loads", orjson.loads),
            ("check_base", base.loads_checked), ("check_new", segment.loads_checked),
            ("path_base", hot_path(base)), ("path_new", hot_path(segment)),
        ]}  # fmt: skip
        rows.append({
            "body": style, "bytes": len(data), "same_verdict": same,
            **{k + "_us": round(v, 1) for k, v in t.items()},
            "check_new/base": round(t["check_new"] / t["check_base"], 2),
            "path_new/base": round(t["path_new"] / t["path_base"], 2),
            "check_overhead_new_us": round(t["check_new"] - t["orjson_loads"], 1),
            "check_overhead_base_us": round(t["check_base"] - t["orjson_loads"], 1),
        })  # fmt: skip
    print(json.dumps({"baseline": args.baseline, "cpu": "process_time, best of rounds", "rows": rows}, indent=1))
    if args.quick:
        print("quick run: not a measurement")


if __name__ == "__main__":
    main()

"""Load test of the HTTP collector on 127.0.0.1: sustained events/s and latency percentiles.

Starts ``trackplan serve`` (the real uvicorn server, one process) on a free local port with a
temporary landing zone, runs N concurrent senders posting Segment batches for a fixed duration,
stops the server with SIGTERM, and checks that the landed messageIds equal the acknowledged ones.

    python benchmarks/collector_load.py [--senders 8] [--seconds 10] [--batch 100]
    python benchmarks/collector_load.py --quick      # 2 s, 2 senders: checks it runs, not the target

Target (issue 6): >= 20,000 events/s with p99 < 50 ms on a 2-core machine, batches of 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipelines.collector.local import free_port

KEY = "bench-key"


def start_server(landing: Path, port: int, log) -> subprocess.Popen:
    code = f"from pipelines.collector import serve; serve(port={port}, landing={str(landing)!r}, write_keys={{{KEY!r}: 'bench'}})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("collector did not start")


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process so far (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def make_body(sender: int, seq: int, size: int) -> tuple[bytes, list[str]]:
    ids = [f"s{sender}-b{seq}-m{i}" for i in range(size)]
    batch = [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"user-{i % 97}",
            "messageId": mid,
            "timestamp": "2026-11-22T19:23:45.137Z",
            "properties": {"order_id": mid, "revenue": 12.5, "currency": "USD"},
            "context": {"library": {"name": "bench", "version": "1"}},
        }
        for i, mid in enumerate(ids)
    ]
    return orjson.dumps({"batch": batch, "sentAt": "2026-11-22T19:23:45.200Z"}), ids


async def sender(
    n: int, url: str, until: float, batch: int, latencies: list[float], acked: list[str], errors: list[int]
):
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(auth=(KEY, ""), limits=limits, timeout=10) as client:
        seq = 0
        while time.monotonic() < until:
            body, ids = make_body(n, seq, batch)
            seq += 1
            t0 = time.perf_counter()
            r = await client.post(url, content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 200:
                acked.extend(ids)
            else:
                errors.append(r.status_code)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="2 s with 2 senders: a smoke run, not a measurement")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.senders = 2.0, 2
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "access.log", "w") as log:
        landing = Path(tmp) / "landing"
        port = free_port()
        # The access log goes to a file: a terminal or pipe would become the bottleneck measured.
        proc = start_server(landing, port, log)
        latencies: list[float] = []
        acked: list[str] = []
        errors: list[int] = []
        cpu_before = cpu_seconds(proc.pid)
        cpu_after = None
        try:
            start = time.monotonic()
            until = start + args.seconds
            url = f"http://127.0.0.1:{port}/v1/batch"

            async def run():
                await asyncio.gather(
                    *(sender(i, url, until, args.batch, latencies, acked, errors) for i in range(args.senders))
                )

            asyncio.run(run())
            elapsed = time.monotonic() - start
            cpu_after = cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        landed = set()
        for f in landing.glob("date=*/*.jsonl"):
            landed.update(orjson.loads(line)["messageId"] for line in f.read_bytes().splitlines())
        result = {
            "senders": args.senders,
            "batch": args.batch,
            "seconds": round(elapsed, 2),
            "requests": len(latencies),
            "events_acked": len(acked),
            "events_per_s": round(len(acked) / elapsed),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2),
            "non_200": len(errors),
            "landed_equals_acked": landed == set(acked),
            # the collector's own CPU per request: less sensitive to the machine's load than events/s
            "server_cpu_ms_per_request": (
                round((cpu_after - cpu_before) * 1000 / max(1, len(latencies)), 3)
                if cpu_before is not None and cpu_after is not None
                else None
            ),
            # the machine is shared: its load says how much of it this run had
            "cpus": os.cpu_count(),
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        }
        print(json.dumps(result, indent=1))
        if args.quick:
            print("quick run: not a measurement of the target")
            return
        target_ok = result["events_per_s"] >= 20_000 and result["p99_ms"] < 50 and result["landed_equals_acked"]
        print("target (>= 20k events/s, p99 < 50 ms, landed == acked):", "met" if target_ok else "NOT met")


if __name__ == "__main__":
    main()

"""Nothing silent, nothing lost, nothing leaked (issue 15, items 1-3): a corpus of bad landing input
beside good traffic. For every entry under the landing root the ledger (ingest.ingestion_log) has a
row, read or skipped with its reason; for every read file, loaded + quarantined + duplicates +
consent-dropped + suppressed equals the line count computed here from the file's own bytes (Python's
gzip/zlib/json, not the reader), and nothing outside the landing root is ever read."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from support.pipeline import BASE, DAY, ev, iso, plan

from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.warehouse import connect

SECRET = "corpus-secret-7f3a9c"  # in a file outside the landing root, reached only through symlinks
T = dt.timedelta
BOM = b"\xef\xbb\xbf"


def _jl(*events) -> bytes:
    return b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)


def _physical(data: bytes) -> int:
    """Lines as a person counts them: newline-terminated ones plus a non-empty last fragment."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _partial_gunzip(data: bytes) -> bytes:
    """What can be decompressed from a (cut or damaged) gzip file, member after member, one byte at
    a time so that everything before a damaged block comes out."""
    out, rest = [], data
    while rest:
        d = zlib.decompressobj(wbits=31)
        i = 0
        try:
            for i in range(len(rest)):
                out.append(d.decompress(rest[i : i + 1]))
                if d.eof:
                    break
        except zlib.error:
            break
        if not d.eof:
            break
        rest = rest[i + 1 :]
    return b"".join(out)


def _batch(msgs: list, **shared) -> bytes:
    return orjson.dumps({"batch": msgs, **shared})


def _ev(mid: str, **kw) -> dict:
    return ev(mid=mid, **kw)


def _no_times(mid: str, ts: str | None = None, sent: str | None = None) -> dict:
    e = ev(mid=mid)
    del e["receivedAt"]
    del e["timestamp"]
    if ts:
        e["timestamp"] = ts
    if sent:
        e["sentAt"] = sent
    return e


@dataclass
class Case:
    kind: str
    rel: str  # path under the landing root
    data: bytes | None = None  # None: made by `make`
    skip: str | None = None  # expected skip reason kind (text before ':'), None when read
    lines: int | None = None  # expected line count when it is not the plain count of the bytes
    quarantined: int | None = None
    loaded: int | None = None
    unit: bool = False  # a damaged .gz: the rest after the damage is one more (quarantined) unit


D = f"date={DAY}"
NAN_BATCH = (
    b'{"batch": ['
    + orjson.dumps(_ev("nb1"))
    + b", "
    + orjson.dumps(_ev("nb2"))[:-1]
    + b', "bad": NaN}, '
    + orjson.dumps(_ev("nb3"))
    + b"]}"
)
CUT_BATCH_MSGS = [_ev(f"cb{i}", props={"method": "password", "pad": "p" * 50}) for i in range(40)]
CUT_BATCH = _batch(CUT_BATCH_MSGS)

CASES = [
    # -- skipped, each with its reason
    Case("txt extension", f"{D}/notes.txt", b"hello\n", skip="unsupported extension"),
    Case("upper-case .JSONL", f"{D}/upper.JSONL", _jl(_ev("u1")), skip="unsupported extension"),
    Case(".log", f"{D}/app.log", b"log line\n", skip="unsupported extension"),
    Case(".csv", f"{D}/t.csv", b"a,b\n1,2\n", skip="unsupported extension"),
    Case(".jsonl.bz2", f"{D}/x.jsonl.bz2", b"BZh91AY&SY", skip="unsupported extension"),
    Case(".jsonl.zst", f"{D}/x.jsonl.zst", b"\x28\xb5\x2f\xfd", skip="unsupported extension"),
    Case("date=not-a-date", "date=not-a-date/a.jsonl", _jl(_ev("nd1")), skip="bad date folder"),
    Case("date=2026-13-45", "date=2026-13-45/a.jsonl", _jl(_ev("bd1")), skip="bad date folder"),
    Case("hour=10 subfolder", f"{D}/hour=10/a.jsonl", _jl(_ev("h1")), skip="unexpected subfolder"),
    Case("nested subfolders", f"{D}/a/b/c.jsonl", _jl(_ev("h2")), skip="unexpected subfolder"),
    Case("file at the root", "root.jsonl", _jl(_ev("r1")), skip="not in a date folder"),
    Case("folder that is not a date", "misc/a.jsonl", _jl(_ev("m1")), skip="not in a date folder"),
    Case("hidden file", f"{D}/.hidden.jsonl", _jl(_ev("hd1")), skip="hidden or metadata file"),
    Case("metadata file", f"{D}/_meta.json", b"{}", skip="hidden or metadata file"),
    Case("collector .part", f"{D}/c.jsonl.part", _jl(_ev("p1")), skip="being written"),
    Case("symlink to /proc/self/environ", f"{D}/environ.jsonl", skip="symlink"),
    Case("symlink to a file outside", f"{D}/outside.jsonl", skip="symlink"),
    Case("symlink to a folder outside", f"{D}/linkdir", skip="symlink"),
    Case("symlinked date folder", "date=2026-03-03", skip="symlink"),
    Case("relative symlink escaping", f"{D}/up.jsonl", skip="symlink"),
    Case("FIFO", f"{D}/pipe.jsonl", skip="not a regular file"),
    # -- read: lines counted from the bytes, each in one bucket
    Case("good jsonl", f"{D}/good.jsonl", _jl(*[_ev(f"g{i}", at=BASE + T(minutes=i)) for i in range(5)]), loaded=5),
    Case("ndjson", f"{D}/n.ndjson", _jl(_ev("nj1")), loaded=1),
    Case("ndjson.gz", f"{D}/n.ndjson.gz", gzip.compress(_jl(_ev("nz1"), _ev("nz2"))), loaded=2),
    Case("empty file", f"{D}/empty.jsonl", b"", lines=0),
    Case("empty .gz", f"{D}/empty.jsonl.gz", b"", lines=0),
    Case("gzip of nothing", f"{D}/nothing.jsonl.gz", gzip.compress(b""), lines=0),
    Case("BOM at file start", f"{D}/bom.jsonl", BOM + _jl(_ev("bom1"), _ev("bom2")), loaded=2),
    Case("BOM in a .gz", f"{D}/bom.jsonl.gz", gzip.compress(BOM + _jl(_ev("bomz1"))), loaded=1),
    Case(
        "CRLF line ends",
        f"{D}/crlf.jsonl",
        _jl(_ev("cr1")).replace(b"\n", b"\r\n") * 1 + orjson.dumps(_ev("cr2")) + b"\r\n",
        loaded=2,
    ),
    Case("no final newline", f"{D}/nofinal.jsonl", _jl(_ev("nf1")) + orjson.dumps(_ev("nf2")), loaded=2),
    Case("blank lines", f"{D}/blank.jsonl", _jl(_ev("bl1")) + b"\n\n" + _jl(_ev("bl2")), loaded=2, quarantined=2),
    Case("whitespace tail", f"{D}/wstail.jsonl", _jl(_ev("ws1")) + b"   ", loaded=1, quarantined=1),
    Case(
        "bad UTF-8",
        f"{D}/latin.jsonl",
        b'{"type":"track","event":"Sign\xff In","messageId":"l1"}\n' + _jl(_ev("l2")),
        loaded=1,
        quarantined=1,
    ),
    Case("broken JSON", f"{D}/broken.jsonl", b'{"type": "track", "messageId": "x"\n' + _jl(_ev("br2")), quarantined=1),
    Case("JSON that is not an object", f"{D}/notobj.jsonl", b'[1, 2]\n"text"\n42\nnull\n', quarantined=4),
    Case("NaN in a line", f"{D}/nan.jsonl", orjson.dumps(_ev("nan1"))[:-1] + b', "x": NaN}\n' + _jl(_ev("nan2"))),
    Case(
        "too large line",
        f"{D}/big.jsonl",
        _jl(_ev("big", props={"method": "password", "pad": "x" * 40000}), _ev("sm")),
        loaded=1,
        quarantined=1,
    ),
    Case("plain text named .jsonl.gz", f"{D}/fake.jsonl.gz", _jl(_ev("fk1"), _ev("fk2")), lines=1, quarantined=1),
    Case("truncated .jsonl.gz", f"{D}/cut.jsonl.gz"),
    Case("corrupt .jsonl.gz midway", f"{D}/corrupt.jsonl.gz", unit=True),
    Case(
        "garbage after a gzip member",
        f"{D}/trail.jsonl.gz",
        gzip.compress(_jl(_ev("tg1"))) + b"garbage!",
        lines=2,
        loaded=1,
        quarantined=1,
    ),
    Case(
        "multi-member gzip",
        f"{D}/multi.jsonl.gz",
        gzip.compress(_jl(_ev("mm1"))) + gzip.compress(_jl(_ev("mm2"))),
        loaded=2,
    ),
    Case(
        "batch body", f"{D}/batch.json", _batch([_ev("b1"), _ev("b2"), _ev("b3")], sentAt=iso(BASE)), lines=3, loaded=3
    ),
    Case("batch with a NaN message", f"{D}/nanbatch.json", NAN_BATCH, lines=3, loaded=2, quarantined=1),
    Case("batch with a BOM", f"{D}/bombatch.json", BOM + _batch([_ev("bb1"), _ev("bb2")]), lines=2, loaded=2),
    Case(
        "pretty-printed batch",
        f"{D}/pretty.json",
        json.dumps({"batch": [_ev("pp1"), _ev("pp2")]}, indent=2).encode(),
        lines=2,
        loaded=2,
    ),
    Case(
        "batch with a non-object message",
        f"{D}/nonobj.json",
        _batch([_ev("no1"), 42, "x"]),
        lines=3,
        loaded=1,
        quarantined=2,
    ),
    Case(
        "batch with trailing garbage",
        f"{D}/trailbatch.json",
        _batch([_ev("tb1")]) + b" }}oops",
        lines=2,
        loaded=1,
        quarantined=1,
    ),
    Case("empty batch", f"{D}/emptybatch.json", b'{"batch": []}', lines=0),
    Case("batch.gz", f"{D}/batch.json.gz", gzip.compress(_batch([_ev("bz1"), _ev("bz2")])), lines=2, loaded=2),
    Case("truncated .json.gz batch", f"{D}/cutbatch.json.gz"),
    Case("batch cut mid-message", f"{D}/cutplain.json", CUT_BATCH[: len(CUT_BATCH) * 2 // 3]),
    Case(".json holding lines", f"{D}/lines.json", _jl(_ev("lj1"), _ev("lj2")), loaded=2),
    Case(".json with bad UTF-8", f"{D}/latin.json", b'{"batch": [{"a": "\xff"}]}\n', lines=1, quarantined=1),
    Case("duplicate messageIds", f"{D}/dups.jsonl", _jl(_ev("dup1"), _ev("dup1"), _ev("dup1"))),
    Case(
        "timestamp 9999 without receivedAt",
        f"{D}/y9999.jsonl",
        _jl(_no_times("y9999", "9999-12-31T23:59:59Z")),
        quarantined=1,
    ),
    Case(
        "timestamp 0001 without receivedAt",
        f"{D}/y0001.jsonl",
        _jl(_no_times("y0001", "0001-01-01T00:00:00Z")),
        quarantined=1,
    ),
    Case(
        "timestamp and sentAt 9999",
        f"{D}/s9999.jsonl",
        _jl(_no_times("s9999", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z")),
        quarantined=1,
    ),
    Case(
        "receivedAt and timestamp 9999",
        f"{D}/r9999.jsonl",
        _jl(_ev("r9999", at=dt.datetime(9999, 12, 31), received_at=dt.datetime(9999, 12, 31))),
        quarantined=1,
    ),
    Case("no time at all", f"{D}/notime.jsonl", _jl(_no_times("nt1")), loaded=1),
    Case(
        "valid alias call",
        f"{D}/alias.jsonl",
        _jl(
            {
                "type": "alias",
                "previousId": "anon-9",
                "userId": "u-9",
                "messageId": "al1",
                "timestamp": iso(BASE),
                "receivedAt": iso(BASE),
            }
        ),
        loaded=1,
    ),
]


def _make(root: Path, outside: Path) -> None:
    for c in CASES:
        p = root / c.rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if c.data is not None:
            p.write_bytes(c.data)
    d = root / D
    (outside / "secret.jsonl").write_text(json.dumps({"type": "track", "messageId": SECRET, "event": SECRET}) + "\n")
    (outside / "dir").mkdir()
    (outside / "dir" / "x.jsonl").write_text(json.dumps({"messageId": SECRET}) + "\n")
    os.symlink("/proc/self/environ", d / "environ.jsonl")
    os.symlink(outside / "secret.jsonl", d / "outside.jsonl")
    os.symlink(outside / "dir", d / "linkdir")
    os.symlink(outside / "dir", root / "date=2026-03-03")
    os.symlink(os.path.relpath(outside / "secret.jsonl", d), d / "up.jsonl")
    os.mkfifo(d / "pipe.jsonl")
    full = gzip.compress(_jl(*[_ev(f"cz{i}") for i in range(300)]))
    (d / "cut.jsonl.gz").write_bytes(full[: len(full) // 2])
    bad = bytearray(gzip.compress(_jl(*[_ev(f"cc{i}", props={"method": "password", "n": i}) for i in range(300)])))
    mid = len(bad) // 2
    bad[mid : mid + 64] = b"\x00" * 64  # a damaged block: zlib stops there
    (d / "corrupt.jsonl.gz").write_bytes(bytes(bad))
    zb = gzip.compress(CUT_BATCH)
    (d / "cutbatch.json.gz").write_bytes(zb[: len(zb) * 2 // 3])


def _expected_lines(c: Case, path: Path) -> int:
    """The line (message) count of a read file, from its bytes, by Python's own parsers."""
    if c.lines is not None:
        return c.lines
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = _partial_gunzip(data)
    if path.name.endswith((".json", ".json.gz")):
        text = data.decode("utf-8-sig")
        try:
            body = json.loads(text)
            if isinstance(body, dict) and isinstance(body.get("batch"), list):
                return len(body["batch"])
        except ValueError:
            if text.lstrip().startswith('{"batch"'):
                # a cut body: the messages that are whole before the cut, then the rest as one unit
                whole = sum(1 for m in CUT_BATCH_MSGS if orjson.dumps(m).decode() in text)
                return whole + 1
    return _physical(data) + case_unit(c)


def case_unit(c: Case) -> int:
    return 1 if c.unit else 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    root, outside = base / "landing", base / "outside"
    root.mkdir()
    outside.mkdir()
    _make(root, outside)
    os.environ["CORPUS_SECRET_ENV"] = SECRET  # what a followed /proc/self/environ link would leak
    wh = base / "w.duckdb"
    con = connect(wh)
    days = landed_partitions(root)
    results = ingest_partitions(con, plan(), root, days)
    log = {
        r[0]: r[1:]
        for r in con.execute(
            "select source_file, status, skip_reason, lines, loaded, quarantined, duplicates, consent_dropped, "
            "suppressed, partition_date from ingest.ingestion_log"
        ).fetchall()
    }
    q = con.execute("select source_file, line_no, raw, rules from ingest.quarantine").fetchall()
    events = con.execute('select message_id, type, "timestamp", received_at, source_file from ingest.events').fetchall()
    dump = "\n".join(
        str(r)
        for t in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log")
        for r in con.execute(f"select * from {t}").fetchall()
    )
    con.close()
    return {"root": root, "days": days, "results": results, "log": log, "q": q, "events": events, "dump": dump}


def test_the_corpus_has_at_least_40_kinds():
    assert len({c.kind for c in CASES}) == len(CASES) >= 40


def test_every_entry_under_the_landing_root_has_a_ledger_row(corpus):
    root = corpus["root"]
    entries = set()
    for d, dirs, files in os.walk(root):  # (os.walk does not follow links: a linked folder is one entry)
        entries |= {os.path.join(d, f) for f in files}
        entries |= {os.path.join(d, x) for x in dirs if os.path.islink(os.path.join(d, x))}
    assert set(corpus["log"]) == entries
    assert corpus["days"] == [DAY]  # the bad date folders are not partitions; their files are logged
    outside = [f for f, r in corpus["log"].items() if r[8] is None]
    assert {Path(f).relative_to(root).parts[0] for f in outside} == {
        "date=not-a-date",
        "date=2026-13-45",
        "root.jsonl",
        "misc",
        "date=2026-03-03",
    }


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_where_every_line_went(corpus, case):
    path = corpus["root"] / case.rel
    status, reason, lines, loaded, quarantined, dups, consent, suppressed, _ = corpus["log"][str(path)]
    if case.skip:
        assert status == "skipped" and reason.split(":")[0] == case.skip, reason
        assert lines is None and loaded is None
        return
    assert status == "read" and reason is None
    expected = _expected_lines(case, path)
    assert lines == expected
    assert loaded + quarantined + dups + consent + suppressed == expected
    assert sum(1 for r in corpus["q"] if r[0] == str(path)) == quarantined
    if case.loaded is not None:
        assert loaded == case.loaded
    if case.quarantined is not None:
        assert quarantined == case.quarantined
    if expected:
        assert lines > 0  # never `lines 0` for a file that holds bytes


def test_unreadable_parts_are_kept_verbatim_or_as_one_unit(corpus):
    root = corpus["root"] / D
    q = {(Path(f).name, no): (raw, rules) for f, no, raw, rules in corpus["q"]}
    raw, rules = q[("fake.jsonl.gz", 1)]
    assert rules == ["corrupt"] and raw.encode() == (root / "fake.jsonl.gz").read_bytes().rstrip(b"\n")
    cut = [k for k in q if k[0] == "cut.jsonl.gz"]
    assert len(cut) == 1 and q[cut[0]][1] == ["truncated"]
    corrupt = sorted(no for name, no in q if name == "corrupt.jsonl.gz")
    assert q[("corrupt.jsonl.gz", corrupt[-1])][1] == ["corrupt"]
    # the batch with one NaN message: that message alone, with its index, verbatim
    assert [(no, rules) for (name, no), (_, rules) in q.items() if name == "nanbatch.json"] == [(2, ["json"])]
    assert "NaN" in q[("nanbatch.json", 2)][0]
    assert {m for m, *_ in corpus["events"]} >= {"nb1", "nb3", "bb1", "bb2", "pp1", "pp2"}
    last = max(no for name, no in q if name == "cutbatch.json.gz")
    assert q[("cutbatch.json.gz", last)][1] == ["truncated"]


def test_nothing_outside_the_landing_root_is_read(corpus):
    assert SECRET not in corpus["dump"]
    salt = os.environ.get("TRACKPLAN_HASH_SALT")
    if salt:
        assert salt not in corpus["dump"]
    assert "PATH=" not in corpus["dump"]


def test_no_event_outside_the_time_window_is_loaded(corpus):
    loaded = {m: (ts, rec) for m, _, ts, rec, _ in corpus["events"]}
    for mid in ("y9999", "y0001", "s9999", "r9999"):
        assert mid not in loaded
    lo, hi = dt.datetime(2024, 1, 1), dt.datetime(2026, 3, 5)
    assert all(lo < ts < hi and lo < rec < hi for ts, rec in loaded.values())
    # without receivedAt, sentAt or a timestamp, the receipt time is the partition day
    assert loaded["nt1"] == (dt.datetime.fromisoformat(DAY), dt.datetime.fromisoformat(DAY))


def test_skipped_files_are_counted_per_partition(corpus):
    (res,) = corpus["results"]
    in_day = [f for f, r in corpus["log"].items() if r[8] is not None and r[0] == "skipped"]
    assert res.skipped == len(in_day) > 10


def test_an_older_warehouse_gets_the_new_ledger_columns(tmp_path):
    import duckdb

    p = tmp_path / "old.duckdb"
    con = duckdb.connect(str(p))
    con.execute("create schema ingest")
    con.execute("""create table ingest.ingestion_log (
        partition_date date not null, source_file varchar not null, lines bigint, loaded bigint, quarantined bigint,
        duplicates bigint, consent_dropped bigint, suppressed bigint, warnings bigint, bytes bigint,
        file_error varchar, plan_version varchar, started_at timestamp, finished_at timestamp, seconds double)""")
    con.execute("insert into ingest.ingestion_log (partition_date, source_file, lines) values ('2026-01-01', 'a', 3)")
    con.close()
    con = connect(p)
    con.execute("insert into ingest.ingestion_log (source_file, status, skip_reason) values ('b', 'skipped', 'x: y')")
    assert con.execute("select source_file, status from ingest.ingestion_log order by 1").fetchall() == [
        ("a", "read"),
        ("b", "skipped"),
    ]
    con.close()


def test_a_file_that_cannot_be_opened_is_logged_as_skipped(tmp_path, monkeypatch):
    """Permission denied (not testable by chmod when the suite runs as root): the open is refused."""
    import errno

    from tracking_plan import reader

    root = tmp_path / "landing"
    (root / D).mkdir(parents=True)
    (root / D / "ok.jsonl").write_bytes(_jl(_ev("ok1")))
    (root / D / "locked.jsonl").write_bytes(_jl(_ev("lk1")))
    real = reader._open

    def refuse(path):
        if Path(path).name == "locked.jsonl":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    monkeypatch.setattr(reader, "_open", refuse)
    con = connect(tmp_path / "w.duckdb")
    (res,) = ingest_partitions(con, plan(), root, [DAY])
    rows = dict(con.execute("select source_file, (status, skip_reason, lines) from ingest.ingestion_log").fetchall())
    con.close()
    assert rows[str(root / D / "locked.jsonl")] == ("skipped", "unreadable: Permission denied", 0)
    assert rows[str(root / D / "ok.jsonl")] == ("read", None, 1)
    assert (res.files, res.skipped, res.loaded) == (1, 1, 1)

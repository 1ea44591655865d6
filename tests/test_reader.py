"""The streaming reader (tracking_plan/reader.py): every physical line comes out exactly once, with
a pre-reason where it cannot be handed to the JSON parser."""

import gzip

import orjson
import pytest

from tracking_plan.reader import ReadStats, is_input_file, read_file, read_files


def _rows(path, **kw) -> tuple[list[dict], ReadStats]:
    stats = ReadStats()
    rows = [r for t in read_file(path, stats=stats, **kw) for r in t.to_pylist()]
    return rows, stats


def test_every_line_once_across_chunks_and_batches(tmp_path, monkeypatch):
    from tracking_plan import reader

    monkeypatch.setattr(reader, "CHUNK", 64)  # tiny chunks: lines straddle every chunk boundary
    lines = [orjson.dumps({"i": i, "pad": "x" * (i % 50)}) for i in range(500)]
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"\n".join(lines))  # no final newline: the last line still counts
    rows, stats = _rows(p, batch_lines=37)
    assert [r["line_no"] for r in rows] == list(range(1, 501))
    assert [r["raw"].encode() for r in rows] == lines
    assert stats.lines == 500 and stats.file_error is None


def test_interleaved_readers_share_the_newline_mask_safely(tmp_path, monkeypatch):
    """The reader finds newlines with one mask buffer per thread (no fresh pages per chunk): two files
    read in turn on the same thread, chunk by chunk, with chunks of every length, still give every
    line of each once."""
    from tracking_plan import reader

    monkeypatch.setattr(reader, "CHUNK", 97)
    a_lines = [orjson.dumps({"a": i, "pad": "x" * (i % 70)}) for i in range(400)]
    b_lines = [orjson.dumps({"b": i}) for i in range(900)]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(a_lines) + b"\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(b_lines)))
    ga = read_file(tmp_path / "a.jsonl", batch_lines=3)
    gb = read_file(tmp_path / "b.jsonl.gz", batch_lines=5)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    live = {"a": ga, "b": gb}
    while live:  # one batch of each in turn until both are read
        for k, g in list(live.items()):
            t = next(g, None)
            if t is None:
                del live[k]
            else:
                got[k] += [r.encode() for r in t.column("raw").to_pylist()]
    assert got == {"a": a_lines, "b": b_lines}


def test_crlf_blank_and_bad_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a":1}\r\n\n{"b":2}\n\xff\xfe\n' + b'{"c":"' + b"y" * 100 + b'"}\n')
    rows, stats = _rows(p, max_bytes=50)
    assert [(r["line_no"], r["raw"][:7], (r["pre_reason"] or "").split(":")[0]) for r in rows] == [
        (1, '{"a":1}', ""),
        (2, "", ""),
        (3, '{"b":2}', ""),
        (4, "\\xff\\xf", "encoding"),
        (5, '{"c":"y', "too_large"),
    ]
    assert stats.lines == 5  # line 4 shows as its escaped bytes (first 7 characters compared)


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    body = b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(20000))
    full = gzip.compress(body)
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(full[: len(full) // 2])
    rows, stats = _rows(p)
    assert stats.file_error.startswith("truncated")
    assert 5000 < len(rows) < 20000
    assert all(r["pre_reason"] is None for r in rows[:-1])
    assert rows[-1]["pre_reason"].startswith("truncated")  # the line the file ends inside
    assert [r["raw"] for r in rows[:-1]] == [orjson.dumps({"i": i}).decode() for i in range(len(rows) - 1)]


def test_multi_member_gzip_and_empty_files(tmp_path):
    part = gzip.compress(b'{"a":1}\n')
    (tmp_path / "m.jsonl.gz").write_bytes(part + part)  # `cat a.gz b.gz` is one valid gzip file
    (tmp_path / "e.jsonl.gz").write_bytes(b"")
    (tmp_path / "e.jsonl").write_bytes(b"")
    (tmp_path / "z.jsonl.gz").write_bytes(gzip.compress(b""))
    assert len(_rows(tmp_path / "m.jsonl.gz")[0]) == 2
    for name in ("e.jsonl.gz", "e.jsonl", "z.jsonl.gz"):
        rows, stats = _rows(tmp_path / name)
        assert rows == [] and stats.lines == 0 and stats.file_error is None, name


def test_not_gzip_is_reported(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(b'{"a":1}\n')
    rows, stats = _rows(p)
    assert stats.file_error.startswith("corrupt") and stats.lines == 1  # one unit, never `lines 0`
    assert [(r["raw"], r["pre_reason"].split(":")[0]) for r in rows] == [('{"a":1}\n', "corrupt")]
    assert "8 bytes" in rows[0]["pre_reason"]


def test_batch_body(tmp_path):
    p = tmp_path / "b.json"
    p.write_bytes(
        orjson.dumps(
            {
                "batch": [{"type": "track", "event": "A"}, {"type": "page", "context": {"x": 1}}],
                "context": {"library": {"name": "lib"}},
                "sentAt": "2026-01-01T00:00:00Z",
            }
        )
    )
    rows, stats = _rows(p)
    msgs = [orjson.loads(r["raw"]) for r in rows]
    assert [r["line_no"] for r in rows] == [1, 2] and stats.lines == 2
    assert msgs[0]["context"] == {"library": {"name": "lib"}} and msgs[0]["sentAt"] == "2026-01-01T00:00:00Z"
    assert msgs[1]["context"] == {"x": 1}  # a message's own context wins
    empty = tmp_path / "e.json"
    empty.write_bytes(b'{"batch": []}')
    assert _rows(empty)[0] == [] and _rows(empty)[1].lines == 0


def test_json_file_that_is_not_a_batch_is_read_as_lines(tmp_path):
    p = tmp_path / "l.json"
    p.write_bytes(b'{"a":1}\n{"b":2}')
    rows, stats = _rows(p)
    assert [r["raw"] for r in rows] == ['{"a":1}', '{"b":2}'] and stats.lines == 2


def test_read_files_tags_each_row_with_its_file(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"1\n2\n")
    b.write_bytes(b"3\n")
    done = []
    rows = [
        r
        for t in read_files([a, b], batch_lines=2, on_file_done=lambda f, st: done.append((f, st.lines)))
        for r in t.to_pylist()
    ]
    assert [(r["source_file"], r["line_no"], r["raw"]) for r in rows] == [
        (str(a), 1, "1"),
        (str(a), 2, "2"),
        (str(b), 1, "3"),
    ]
    assert done == [(str(a), 2), (str(b), 1)]


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a.jsonl", True),
        ("a.jsonl.gz", True),
        ("a.json", True),
        ("a.ndjson", True),
        ("_truth.json", False),
        (".tmp.jsonl", False),
        ("a.csv", False),
    ],
)
def test_input_file_names(tmp_path, name, ok):
    assert is_input_file(tmp_path / name) is ok


def test_a_symlink_or_missing_file_is_never_opened(tmp_path):
    """Even handed a symlink directly (a file swapped for a link after the landing scan), the reader
    refuses it (O_NOFOLLOW): what is outside the landing root is never read."""
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(b'{"messageId": "secret"}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(secret)
    for p in (link, tmp_path / "gone.jsonl"):
        rows, stats = _rows(p)
        assert rows == [] and not stats.opened and stats.file_error.startswith("unreadable"), p
    assert "symlink" in _rows(link)[1].file_error


def test_landing_scan_lists_every_entry_with_a_reason(tmp_path):
    from tracking_plan.reader import scan_landing

    day = tmp_path / "date=2026-03-02"
    (day / "hour=10").mkdir(parents=True)
    (day / "a.jsonl").write_bytes(b"1\n")
    (day / "b.JSONL").write_bytes(b"1\n")
    (day / "hour=10" / "c.jsonl").write_bytes(b"1\n")
    (tmp_path / "date=2026-02-30").mkdir()
    (tmp_path / "date=2026-02-30" / "d.jsonl").write_bytes(b"1\n")
    got = {
        str(e.path.relative_to(tmp_path)): (e.partition, (e.skip or "").split(":")[0]) for e in scan_landing(tmp_path)
    }
    assert got == {
        "date=2026-03-02/a.jsonl": ("2026-03-02", ""),
        "date=2026-03-02/b.JSONL": ("2026-03-02", "unsupported extension"),
        "date=2026-03-02/hour=10/c.jsonl": ("2026-03-02", "unexpected subfolder"),
        "date=2026-02-30/d.jsonl": (None, "bad date folder"),
    }


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path):
    """(It failed the whole ingest: DuckDB cannot take the name, not even into the log.)"""
    import os

    from tracking_plan.reader import scan_landing

    day = tmp_path / "date=2026-03-02"
    day.mkdir()
    (day / "ok.jsonl").write_text("{}\n")
    with open(os.path.join(os.fsencode(day), b"bad\xff.jsonl"), "wb") as f:
        f.write(b"{}\n")
    got = {str(e.path): e.skip for e in scan_landing(tmp_path)}
    assert got == {
        str(day / "ok.jsonl"): None,
        str(day / "bad\\xff.jsonl"): "name is not UTF-8 (shown with \\x escapes): rename it",
    }
    for path in got:
        path.encode("utf-8")  # every name as listed can be stored

"""Streaming reader of landing files: JSONL, JSONL.gz and Segment batch bodies.

Every physical input line comes out exactly once, as (line_no, raw, pre_reason): a line that cannot
even be handed to the JSON parser (not UTF-8, too large, cut off by a truncated .gz) carries its
reason here so the validator quarantines it verbatim instead of losing it. What cannot be split
into lines (a .gz that is not gzip, the unreadable rest of a batch body) comes out as one unit with
its byte size, never as nothing. A batch body comes out message by message (its index as line_no).

`scan_landing` lists every entry under a landing root, each either to read (in its partition) or
skipped with its reason; it never follows a symlink, and `read_file` refuses to open one, so nothing
outside the landing root is read.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import json
import mmap
import os
import re
import stat as stat_mod
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 16 << 20  # bytes read per step: large enough to amortize, small enough to stay bounded
BATCH_LINES = 250_000  # lines handed to DuckDB at once
STORE_LIMIT = 64 << 20  # a single line longer than this is kept only up to here (and says so)
SCHEMA = pa.schema([("line_no", pa.int64()), ("raw", pa.string()), ("pre_reason", pa.string())])
SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".json", ".json.gz")
UNIT_LIMIT = 1 << 20  # bytes of an unsplittable unit (a corrupt .gz, a batch body's unreadable rest) kept
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some Windows tools write: not part of the first line


def is_input_file(path: Path) -> bool:
    name = path.name
    return not name.startswith((".", "_")) and name.endswith(SUFFIXES)


@dataclass
class ReadStats:
    lines: int = 0
    bytes: int = 0
    file_error: str | None = None
    opened: bool = False  # False: the file could not be opened at all (a skipped file, not a read one)


def _open(path: Path):
    """Open a regular file for reading, never through a symlink (O_NOFOLLOW) and never blocking on a
    FIFO or device: a link to /proc/self/environ or a secret elsewhere is refused, not read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "symlink: not followed (nothing outside the landing root is read)") from None
        raise
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class LandingEntry:
    """One entry under the landing root: read it (skip is None) or skip it for the reason given.
    `partition` is its date=YYYY-MM-DD folder's day when it is inside one."""

    path: Path | str  # a local Path, or an object's URL (s3://bucket/key) as a str
    partition: str | None
    skip: str | None = None
    fmt: str | None = None  # lines | batch | snowplow; None: from the name (.json[.gz] is a batch body)
    size: int | None = None  # an object's size and ETag as listed (the manifest's key); None for local files
    etag: str | None = None


DATE_DIR = re.compile(r"date=(.*)")


def _bad_name(name: str) -> str | None:
    if name.endswith(".part"):
        return "being written: a .part file is read once the collector renames it"
    if name.startswith((".", "_")):
        return "hidden or metadata file: the name starts with '.' or '_'"
    if not name.endswith(SUFFIXES):
        low = name.lower()
        if low.endswith(SUFFIXES):
            return "unsupported extension: names are case-sensitive, expected lowercase " + ", ".join(SUFFIXES)
        return "unsupported extension: expected " + ", ".join(SUFFIXES)
    return None


def printable(name: str) -> str:
    """A file name as text that can be stored and printed: bytes that are not UTF-8 (kept by Python as
    lone surrogates) written as `\\xff`. The CLI's error lines use it too (trackplan/cli_errors.shown)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def scan_landing(root: Path | str) -> list[LandingEntry]:
    """Every file (and link, FIFO, unreadable folder) under the landing root, sorted by path, each
    either to read or skipped with its reason. Symlinks are listed, never followed."""
    root = Path(root)
    out: list[LandingEntry] = []

    def walk(d: Path, partition: str | None, why: str | None) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            out.append(LandingEntry(d, partition, f"unreadable folder: {exc.strerror or exc}"))
            return
        for e in entries:
            p = Path(e.path)
            shown = printable(e.path)
            if shown != e.path:  # a name that is not UTF-8 cannot be stored, or opened by DuckDB: say so
                out.append(
                    LandingEntry(Path(shown), partition, "name is not UTF-8 (shown with \\x escapes): rename it")
                )
                continue
            if e.is_symlink():
                out.append(
                    LandingEntry(p, partition, "symlink: not followed (nothing outside the landing root is read)")
                )
            elif e.is_dir(follow_symlinks=False):
                if d == root:
                    m = DATE_DIR.fullmatch(e.name)
                    if m:
                        day = _day(m.group(1))
                        if day:
                            walk(p, day, None)
                        else:
                            walk(p, None, f"bad date folder: {e.name!r} is not date=YYYY-MM-DD with a real date")
                    else:
                        walk(p, None, f"not in a date folder: {e.name!r} is not date=YYYY-MM-DD")
                else:
                    walk(
                        p,
                        partition,
                        why
                        or f"unexpected subfolder: {e.name!r} in {d.name!r} (files must be "
                        "directly in their date=YYYY-MM-DD folder)",
                    )
            elif not e.is_file(follow_symlinks=False):
                out.append(LandingEntry(p, partition, "not a regular file: a FIFO, socket or device"))
            elif why:
                out.append(LandingEntry(p, partition, why))
            elif partition is None:
                hidden = e.name.startswith((".", "_"))  # e.g. the generator's _truth.json
                out.append(
                    LandingEntry(
                        p,
                        None,
                        _bad_name(e.name) if hidden else "not in a date folder: directly under the landing root",
                    )
                )
            else:
                out.append(LandingEntry(p, partition, _bad_name(e.name)))

    if root.is_dir():
        walk(root, None, None)
    return sorted(out, key=lambda x: str(x.path))


def _day(text: str) -> str | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return None


class _Batcher:
    """Collects lines into arrow tables. The common case (a chunk of valid UTF-8 lines under the
    size limit) is built from the chunk's own buffer with numpy offsets: no Python per line."""

    def __init__(self, max_bytes: int, batch_lines: int = BATCH_LINES, strip: bool = True):
        self.max_bytes = max_bytes
        self.strip = strip
        self.batch_lines = batch_lines
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.nos: list[int] = []
        self.raws: list[str] = []
        self.reasons: list[str | None] = []

    def add_block(self, block: bytes | memoryview, first_no: int, ends: np.ndarray | None = None) -> int:
        """Add a block of complete lines (each ending in \\n); return how many lines it held. `ends`:
        the offsets of its newlines when the caller already found them (one scan of the bytes)."""
        if ends is None:
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        n = len(ends)
        if n == 0:
            return 0
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts
        if (lengths > self.max_bytes).any():
            for i in range(n):  # rare: a chunk holding an oversized line goes line by line
                self.add_one(bytes(block[starts[i] : ends[i]]).rstrip(b"\r"), first_no + i)
            return n
        offsets = np.empty(n + 1, dtype=np.int32)
        offsets[:n] = starts
        offsets[n] = len(block)
        arr = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
        try:
            text = pc.cast(arr, pa.string())
        except pa.ArrowInvalid:
            for i in range(n):  # rare: a chunk holding a non-UTF-8 line goes line by line
                self.add_one(bytes(block[starts[i] : ends[i]]).rstrip(b"\r"), first_no + i)
            return n
        if self.strip:  # (a JSON parser ignores the line terminator: callers that never show the line skip this)
            text = pc.utf8_rtrim(text, characters="\r\n")
        self._flush_py()
        self.tables.append(
            pa.table(
                [pa.array(np.arange(first_no, first_no + n, dtype=np.int64)), text, pa.nulls(n, pa.string())],
                schema=SCHEMA,
            )
        )
        self.rows += n
        return n

    def add_one(self, line: bytes, no: int, reason: str | None = None) -> None:
        if reason is None and len(line) > self.max_bytes:
            reason = f"too_large: line is {len(line)} bytes, the limit is {self.max_bytes}"
        if len(line) > STORE_LIMIT:
            line = line[:STORE_LIMIT]
            reason = (reason or "") + f" (stored first {STORE_LIMIT} bytes only)"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = line.decode("utf-8", errors="backslashreplace")
            reason = reason or f"encoding: not UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start})"
        self.nos.append(no)
        self.raws.append(text)
        self.reasons.append(reason)
        self.rows += 1

    def _flush_py(self) -> None:
        if self.nos:
            self.tables.append(
                pa.table(
                    [
                        pa.array(self.nos, pa.int64()),
                        pa.array(self.raws, pa.string()),
                        pa.array(self.reasons, pa.string()),
                    ],
                    schema=SCHEMA,
                )
            )
            self.nos, self.raws, self.reasons = [], [], []

    def __len__(self) -> int:
        return self.rows

    def flush(self) -> pa.Table:
        self._flush_py()
        t = pa.concat_tables(self.tables) if len(self.tables) != 1 else self.tables[0]
        self.tables, self.rows = [], 0
        return t


def is_url(path) -> bool:
    """An object-store URL (s3://, gs://, az://...), not a local path."""
    return (
        isinstance(path, str)
        and re.match(r"[A-Za-z][A-Za-z0-9+.-]+://", path) is not None
        and not path.startswith("file://")
    )


def _size(fh) -> int:
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return int(fh.size)  # an fsspec object file knows its size


def read_file(
    path: Path | str,
    max_bytes: int = 32768,
    stats: ReadStats | None = None,
    batch_lines: int = BATCH_LINES,
    strip: bool = True,
    fmt: str | None = None,
) -> Iterator[pa.Table]:
    """Yield arrow tables (line_no, raw, pre_reason) covering every line of ``path`` (a local path or
    an object's URL, opened through fsspec). With ``strip=False`` a line keeps its terminator (\\n or
    \\r\\n), which saves a copy of every line. ``fmt='snowplow'``: every line is an enriched TSV event,
    mapped onto the Segment envelope; the tables then have a fourth column, the verbatim line."""
    url = is_url(path)
    path = path if url else Path(path)
    stats = stats if stats is not None else ReadStats()
    name = path.rsplit("/", 1)[-1] if url else path.name
    try:
        if url:
            from .objectstore import open_object

            fh = open_object(path)
        else:
            fh = _open(path)
    except OSError as exc:
        stats.file_error = f"unreadable: {exc.strerror or exc}"
        return
    stats.opened = True
    with fh:
        if fmt == "batch" or (fmt is None and name.endswith((".json", ".json.gz"))):
            yield from _read_batch_body(fh, name, max_bytes, stats)
            return
        if fmt == "snowplow":
            for t in _read_lines(fh, name, max_bytes, stats, batch_lines, True):
                yield _snowplow_table(t)
            return
        yield from _read_lines(fh, name, max_bytes, stats, batch_lines, strip)


def _snowplow_table(t: pa.Table) -> pa.Table:
    """Enriched TSV lines → their Segment messages as JSON (raw), the TSV kept verbatim alongside;
    a line that is not an enriched event keeps its text as raw with the reason (quarantined)."""
    from .snowplow import SnowplowError, enriched_to_segment

    raws, reasons = [], []
    for line, pre in zip(t.column("raw").to_pylist(), t.column("pre_reason").to_pylist(), strict=True):
        if pre is None:
            try:
                raws.append(orjson.dumps(enriched_to_segment(line)).decode())
                reasons.append(None)
                continue
            except SnowplowError as exc:
                pre = f"snowplow: {exc}"
        raws.append(line)
        reasons.append(pre)
    return pa.table(
        [t.column("line_no"), pa.array(raws, pa.string()), pa.array(reasons, pa.string()), t.column("raw")],
        names=["line_no", "raw", "pre_reason", "verbatim"],
    )


_MASKS = threading.local()


def _newline_mask(chunk: memoryview) -> np.ndarray:
    """Where a chunk's bytes are newlines, written into this thread's one mask buffer (a view of it:
    valid until the thread's next chunk). A fresh mask per chunk cost a page fault per page of it,
    zeroed by the kernel: at 1M events ~1.1% of a whole run's CPU, more than the comparison itself."""
    buf = getattr(_MASKS, "buf", None)
    if buf is None or len(buf) < len(chunk):
        buf = _MASKS.buf = np.empty(max(len(chunk), CHUNK), dtype=bool)
    return np.equal(np.frombuffer(chunk, dtype=np.uint8), 10, out=buf[: len(chunk)])


def _read_lines(fh, name: str, max_bytes: int, stats: ReadStats, batch_lines: int, strip: bool) -> Iterator[pa.Table]:
    out = _Batcher(max_bytes, strip=strip)
    next_no = 1
    tail = b""
    where = [0]  # compressed bytes consumed so far (a .gz that breaks midway: where the rest starts)
    chunks = _gz_chunks(fh, where) if name.endswith(".gz") else _plain_chunks(fh)
    first = True
    newlines, last = 0, b"\n"  # an independent count of the lines in the bytes, checked at the end
    try:
        for chunk in chunks:
            chunk = memoryview(chunk)
            stats.bytes += len(chunk)
            if first:
                first = False
                if chunk[:3] == BOM:
                    chunk = chunk[3:]
            # the chunk's newlines cut the blocks; the count checked at the end is taken apart from
            # them (count_nonzero over the same newline mask of the bytes), so a cutting defect that
            # loses or repeats a line cannot agree with itself. (The mask is made once: comparing
            # every byte twice was ~1% of the ingest's CPU.)
            newline = _newline_mask(chunk)
            ends = np.flatnonzero(newline)
            if len(chunk):
                newlines += int(np.count_nonzero(newline))
                last = bytes(chunk[-1:])
            if len(ends) == 0:  # a line longer than a chunk
                tail += chunk
                continue
            cut = int(ends[-1]) + 1
            start = 0
            if tail:  # only the line across the chunk boundary is copied, never the whole chunk
                start = int(ends[0]) + 1
                next_no += out.add_block(tail + chunk[:start], next_no)
                ends = ends[1:]
            if cut > start:
                next_no += out.add_block(chunk[start:cut], next_no, ends - start if start else ends)
            tail = bytes(chunk[cut:])
            if len(out) >= batch_lines:
                yield out.flush()
    except EOFError as exc:
        stats.file_error = f"truncated: compressed stream ended early ({exc})"
    except zlib.error as exc:
        stats.file_error = f"corrupt: not a readable gzip stream ({exc})"
    except OSError as exc:
        stats.file_error = f"unreadable: {exc.strerror or exc}"
    if tail:
        reason = None
        if stats.file_error:
            reason = f"{stats.file_error.split(':')[0]}: the file ends inside this line ({stats.file_error})"
        out.add_one(tail.rstrip(b"\r"), next_no, reason)
        next_no += 1
    if stats.file_error and next_no == 1:
        # nothing could be read as lines (plain text named .gz, a gzip cut in its header): the file is
        # kept as one unit with its size, never `lines 0`
        _add_unit(out, fh, 0, next_no, stats.file_error)
        next_no += 1
    elif stats.file_error and stats.file_error.startswith("corrupt"):
        _add_unit(out, fh, where[0], next_no, stats.file_error)  # the compressed rest that could not be read
        next_no += 1
    stats.lines = next_no - 1
    if stats.file_error is None and stats.lines != newlines + (last != b"\n"):
        raise RuntimeError(f"reader defect: {stats.lines} lines read from {newlines} newlines in the bytes")
    if len(out):
        yield out.flush()


def _add_unit(out: _Batcher, fh, offset: int, no: int, error: str) -> None:
    """The bytes of ``fh`` from ``offset`` as one quarantined unit whose reason gives their size."""
    size = _size(fh) - offset
    fh.seek(offset)
    data = fh.read(UNIT_LIMIT)
    kept = "" if size <= UNIT_LIMIT else f"; first {UNIT_LIMIT} kept"
    where = f"from byte {offset} " if offset else ""
    out.add_one(data, no, f"{error.split(':')[0]}: {size} bytes {where}kept as one unit{kept} ({error})")


def _plain_chunks(fh) -> Iterator[bytes | memoryview]:
    """The bytes of an uncompressed file in CHUNK-sized pieces. A local file is mapped, not read:
    its pages come straight from the page cache (reading copied every byte into fresh memory, which
    cost more CPU than finding its lines)."""
    try:
        size = os.fstat(fh.fileno()).st_size
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        mapped = None  # an object store's file, or a file that cannot be mapped: read it
    if mapped is None:
        while chunk := fh.read(CHUNK):
            yield chunk
        return
    view = memoryview(mapped)
    for at in range(0, len(view), CHUNK):
        yield view[at : at + CHUNK]
    # (the arrow tables built from the chunks hold their pages; the map goes when the last does)


GZ_FEED = 1 << 20  # compressed bytes per zlib call: a damaged block loses at most this much before it


def _gz_chunks(fh, where: list[int] | None = None) -> Iterator[bytes]:
    """Decompressed chunks of a (multi-member) gzip file. Unlike gzip.open().read(), a truncated
    file yields every byte that could be decompressed before EOFError is raised, so the lines
    before the cut are loaded and only the cut line is quarantined; a damaged block yields every
    byte before the damage, then raises zlib.error. ``where[0]`` follows the compressed bytes
    consumed (where an unreadable rest starts)."""
    where = where if where is not None else [0]
    dec = zlib.decompressobj(wbits=31)
    fed = False  # has the current member's decompressor been given any bytes?
    full = False  # the last call filled its output: zlib may hold more without new input
    pending = b""
    read = 0
    while True:
        if not pending and not full:
            pending = fh.read(GZ_FEED)
            read += len(pending)
            if not pending:
                if fed:
                    raise EOFError("compressed stream ended before the end-of-stream marker")
                return
            fed = True
        where[0] = read - len(pending)
        saved = dec.copy()
        try:
            out = dec.decompress(pending, CHUNK)  # bounded output: a gzip bomb stays CHUNK-sized
        except zlib.error:
            yield from _gz_salvage(saved, pending, where)
            raise
        pending = dec.unconsumed_tail
        full = len(out) == CHUNK
        if out:
            yield out
        if dec.eof:  # end of one member: another may follow (cat a.gz b.gz is valid gzip)
            pending, full = dec.unused_data, False
            dec = zlib.decompressobj(wbits=31)
            fed = bool(pending)


def _gz_salvage(dec, pending: bytes, where: list[int]) -> Iterator[bytes]:
    """The bytes a damaged piece still gives, fed one compressed byte at a time (rare: only after
    zlib.error) so the lines before the damage are kept."""
    start = where[0]
    for i in range(len(pending)):
        try:
            out = dec.decompress(pending[i : i + 1])
        except zlib.error:
            where[0] = start + i
            return
        if out:
            yield out
    where[0] = start + len(pending)


_WS = re.compile(r"[ \t\n\r]*")
SHARED = ("context", "integrations", "sentAt")


def _split_batch(text: str):
    """Tolerant split of a batch body that a strict parser rejected (a NaN in one message, a cut at
    the end): (shared fields, [(start, end) of each message], offset of an unreadable rest or None),
    or None when the text is not a batch body at all. Python's json finds each message's end (it
    accepts NaN); each message is then judged on its own."""
    dec = json.JSONDecoder()
    ws = lambda i: _WS.match(text, i).end()
    i = ws(0)
    if text[i : i + 1] != "{":
        return None
    i += 1
    shared: dict = {}
    items: list[tuple[int, int]] | None = None
    try:
        while True:
            i = ws(i)
            if text[i : i + 1] == "}":
                if items is None:
                    return None
                j = ws(i + 1)
                return shared, items, (j if j < len(text) else None)
            key, i = dec.raw_decode(text, i)
            i = ws(i)
            if text[i : i + 1] != ":" or not isinstance(key, str):
                raise ValueError("expected a key")
            i = ws(i + 1)
            if key == "batch" and text[i : i + 1] == "[":
                items = []
                i = ws(i + 1)
                if text[i : i + 1] == "]":
                    i += 1
                else:
                    while True:
                        _, end = dec.raw_decode(text, i)
                        items.append((i, end))
                        i = ws(end)
                        c = text[i : i + 1]
                        i += 1
                        if c == "]":
                            break
                        if c != ",":
                            raise ValueError("expected , or ]")
                        i = ws(i)
            else:
                val, i = dec.raw_decode(text, i)
                if key in SHARED:
                    shared[key] = val
            i = ws(i)
            c = text[i : i + 1]
            if c == "}":
                if items is None:
                    return None
                j = ws(i + 1)  # anything after the body's closing brace is kept too, not dropped
                return shared, items, (j if j < len(text) else None)
            if c != ",":
                raise ValueError("expected , or }")
            i += 1
    except (ValueError, RecursionError):
        if items is None:
            return None
        start = items[-1][1] if items else i
        return shared, items, start


def _read_batch_body(fh, name: str, max_bytes: int, stats: ReadStats) -> Iterator[pa.Table]:
    """A Segment batch body {"batch": [...], "context"?, "sentAt"?}: one "line" per message.

    Batch-level context, integrations and sentAt are copied into messages that lack them, as
    Segment's own API does. A message that is not valid JSON on its own (a NaN) is quarantined alone,
    with its index; the unreadable rest of a cut body is one unit. A file that is not a batch is
    read as one event per line.
    """
    parts: list[bytes] = []
    try:
        parts.extend(_gz_chunks(fh) if name.endswith(".gz") else _plain_chunks(fh))
    except EOFError as exc:
        stats.file_error = f"truncated: compressed stream ended early ({exc})"
    except zlib.error as exc:
        stats.file_error = f"corrupt: not a readable gzip stream ({exc})"
    except OSError as exc:
        stats.file_error = f"unreadable: {exc.strerror or exc}"
    raw = b"".join(parts)
    del parts
    stats.bytes = len(raw)
    raw = raw.removeprefix(BOM)
    out = _Batcher(max_bytes)
    if stats.file_error and not raw:
        _add_unit(out, fh, 0, 1, stats.file_error)
        stats.lines = 1
        yield out.flush()
        return
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        shared = {k: body[k] for k in SHARED if k in body}
        for i, msg in enumerate(body["batch"], start=1):
            if isinstance(msg, dict):
                for k, v in shared.items():
                    msg.setdefault(k, v)
            out.add_one(orjson.dumps(msg), i)
        stats.lines = len(body["batch"])
        if len(out):
            yield out.flush()
        return
    split = None
    try:
        text = raw.decode("utf-8")
        split = _split_batch(text)
    except UnicodeDecodeError:
        pass
    if split is None:
        # not a batch body: line-oriented reading of the same bytes
        if raw:
            block = raw if raw.endswith(b"\n") else raw + b"\n"
            stats.lines = out.add_block(block, 1)
            if stats.file_error:  # the last line is where a cut .gz ended
                last = out.flush()
                reason = f"{stats.file_error.split(':')[0]}: the file ends inside this line ({stats.file_error})"
                n = last.num_rows
                last = last.set_column(2, "pre_reason", pa.array([None] * (n - 1) + [reason], pa.string()))
                yield last
                return
        if len(out):
            yield out.flush()
        return
    shared, items, rest = split
    for i, (a, b) in enumerate(items, start=1):
        piece = text[a:b].encode()
        try:
            msg = orjson.loads(piece)
        except orjson.JSONDecodeError as exc:
            out.add_one(piece, i, f"json: message {i} of the batch is not valid JSON ({exc})")
            continue
        if isinstance(msg, dict) and shared:
            for k, v in shared.items():
                msg.setdefault(k, v)
            piece = orjson.dumps(msg)
        out.add_one(piece, i)
    n = len(items)
    if rest is not None:
        data = text[rest:].encode()
        why = stats.file_error or "the batch body is not valid JSON after its last complete message"
        kind = "truncated" if stats.file_error and stats.file_error.startswith("truncated") else "json"
        kept = "" if len(data) <= UNIT_LIMIT else f"; first {UNIT_LIMIT} kept"
        n += 1
        out.add_one(
            data[:UNIT_LIMIT],
            n,
            f"{kind}: the rest of the batch body, {len(data)} bytes, kept as one unit{kept} ({why})",
        )
    stats.lines = n
    if len(out):
        yield out.flush()


def read_files(
    paths, max_bytes: int = 32768, batch_lines: int = BATCH_LINES, on_file_done=None, strip: bool = True
) -> Iterator[pa.Table]:
    """Lines of many files as arrow tables (source_file, line_no, raw, pre_reason[, verbatim][,
    partition_day]), several files per table up to ``batch_lines`` rows. ``on_file_done(path,
    ReadStats)`` is called per file. A path may be a LandingEntry: its format is then the entry's, and
    every table has the `partition_day` column, the day its layout gave the file (a date=YYYY-MM-DD
    folder, Segment's received-day folder, Snowplow's loader folder), which the validator judges the
    time window by as it does a date= folder's. When any file is Snowplow TSV, every table has the
    `verbatim` column (null where raw is the line itself)."""
    pending: list[pa.Table] = []
    rows = 0
    paths = list(paths)
    verbatim = any(getattr(p, "fmt", None) == "snowplow" for p in paths)
    days = any(isinstance(p, LandingEntry) for p in paths)
    for item in paths:
        path, fmt = (item.path, item.fmt) if isinstance(item, LandingEntry) else (item, None)
        day = item.partition if isinstance(item, LandingEntry) else None
        stats = ReadStats()
        for t in read_file(path, max_bytes=max_bytes, stats=stats, batch_lines=batch_lines, strip=strip, fmt=fmt):
            if verbatim and t.num_columns == 3:
                t = t.append_column("verbatim", pa.nulls(t.num_rows, pa.string()))
            if days:
                t = t.append_column("partition_day", pa.repeat(pa.scalar(day, pa.string()), t.num_rows))
            # one value repeated in C: a Python list of n copies cost more than reading the lines
            pending.append(t.add_column(0, "source_file", pa.repeat(pa.scalar(str(path), pa.string()), t.num_rows)))
            rows += t.num_rows
            if rows >= batch_lines:
                yield pa.concat_tables(pending)
                pending, rows = [], 0
        if on_file_done is not None:
            on_file_done(str(path), stats)
    if pending:
        yield pa.concat_tables(pending)


def prefetched(batches: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The same batches, the next one read on a second thread while the caller works on the current
    one (numpy, arrow and DuckDB release the GIL): on two cores reading costs almost nothing."""
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trackplan-read") as pool:
        nxt = pool.submit(next, batches, done)
        while True:
            batch = nxt.result()
            if batch is done:
                return
            nxt = pool.submit(next, batches, done)
            yield batch

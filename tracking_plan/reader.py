"""Streaming reader of landing files: JSONL, JSONL.gz and Segment batch bodies.

Every physical input line comes out exactly once, as (line_no, raw, pre_reason): a line that cannot
even be handed to the JSON parser (not UTF-8, too large, cut off by a truncated .gz) carries its
reason here so the validator quarantines it verbatim instead of losing it.
"""

from __future__ import annotations

import gzip
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


def is_input_file(path: Path) -> bool:
    name = path.name
    return not name.startswith((".", "_")) and name.endswith(SUFFIXES)


@dataclass
class ReadStats:
    lines: int = 0
    bytes: int = 0
    file_error: str | None = None


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

    def add_block(self, block: bytes | memoryview, first_no: int) -> int:
        """Add a block of complete lines (each ending in \\n); return how many lines it held."""
        buf = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        n = len(ends)
        if n == 0:
            return 0
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts
        if (lengths > self.max_bytes).any():
            for i in range(n):  # rare: a chunk holding an oversized line goes line by line
                self.add_one(bytes(block[starts[i]:ends[i]]).rstrip(b"\r"), first_no + i)
            return n
        offsets = np.empty(n + 1, dtype=np.int32)
        offsets[:n] = starts
        offsets[n] = len(block)
        arr = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
        try:
            text = pc.cast(arr, pa.string())
        except pa.ArrowInvalid:
            for i in range(n):  # rare: a chunk holding a non-UTF-8 line goes line by line
                self.add_one(bytes(block[starts[i]:ends[i]]).rstrip(b"\r"), first_no + i)
            return n
        if self.strip:  # (a JSON parser ignores the line terminator: callers that never show the line skip this)
            text = pc.utf8_rtrim(text, characters="\r\n")
        self._flush_py()
        self.tables.append(pa.table([pa.array(np.arange(first_no, first_no + n, dtype=np.int64)), text,
                                     pa.nulls(n, pa.string())], schema=SCHEMA))
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
            self.tables.append(pa.table([pa.array(self.nos, pa.int64()), pa.array(self.raws, pa.string()),
                                         pa.array(self.reasons, pa.string())], schema=SCHEMA))
            self.nos, self.raws, self.reasons = [], [], []

    def __len__(self) -> int:
        return self.rows

    def flush(self) -> pa.Table:
        self._flush_py()
        t = pa.concat_tables(self.tables) if len(self.tables) != 1 else self.tables[0]
        self.tables, self.rows = [], 0
        return t


def read_file(path: Path | str, max_bytes: int = 32768, stats: ReadStats | None = None,
              batch_lines: int = BATCH_LINES, strip: bool = True) -> Iterator[pa.Table]:
    """Yield arrow tables (line_no, raw, pre_reason) covering every line of ``path``. With
    ``strip=False`` a line keeps its terminator (\\n or \\r\\n), which saves a copy of every line."""
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    name = path.name
    if name.endswith((".json", ".json.gz")):
        yield from _read_batch_body(path, max_bytes, stats)
        return
    out = _Batcher(max_bytes, strip=strip)
    next_no = 1
    tail = b""
    chunks = _gz_chunks(path) if name.endswith(".gz") else _plain_chunks(path)
    try:
        for chunk in chunks:
            stats.bytes += len(chunk)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a chunk
                tail += chunk
                continue
            start = 0
            if tail:  # only the line across the chunk boundary is copied, never the whole chunk
                start = chunk.find(b"\n") + 1
                next_no += out.add_block(tail + chunk[:start], next_no)
            if cut > start:
                next_no += out.add_block(memoryview(chunk)[start:cut], next_no)
            tail = chunk[cut:]
            if len(out) >= batch_lines:
                yield out.flush()
    except EOFError as exc:
        stats.file_error = f"truncated: compressed stream ended early ({exc})"
    except zlib.error as exc:
        stats.file_error = f"corrupt: not a readable gzip stream ({exc})"
    except OSError as exc:
        stats.file_error = f"unreadable: {exc.strerror or exc}"
    if tail.strip():
        reason = None
        if stats.file_error and stats.file_error.startswith("truncated"):
            reason = "truncated: the file ends inside this line"
        out.add_one(tail.rstrip(b"\r"), next_no, reason)
        next_no += 1
    stats.lines = next_no - 1
    if len(out):
        yield out.flush()


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _gz_chunks(path: Path) -> Iterator[bytes]:
    """Decompressed chunks of a (multi-member) gzip file. Unlike gzip.open().read(), a truncated
    file yields every byte that could be decompressed before EOFError is raised, so the lines
    before the cut are loaded and only the cut line is quarantined."""
    dec = zlib.decompressobj(wbits=31)
    fed = False  # has the current member's decompressor been given any bytes?
    full = False  # the last call filled its output: zlib may hold more without new input
    pending = b""
    with open(path, "rb") as fh:
        while True:
            if not pending and not full:
                pending = fh.read(CHUNK)
                if not pending:
                    if fed:
                        raise EOFError("compressed stream ended before the end-of-stream marker")
                    return
                fed = True
            out = dec.decompress(pending, CHUNK)  # bounded output: a gzip bomb stays CHUNK-sized
            pending = dec.unconsumed_tail
            full = len(out) == CHUNK
            if out:
                yield out
            if dec.eof:  # end of one member: another may follow (cat a.gz b.gz is valid gzip)
                pending, full = dec.unused_data, False
                dec = zlib.decompressobj(wbits=31)
                fed = bool(pending)


def _read_batch_body(path: Path, max_bytes: int, stats: ReadStats) -> Iterator[pa.Table]:
    """A Segment batch body {"batch": [...], "context"?, "sentAt"?}: one "line" per message.

    Batch-level context, integrations and sentAt are copied into messages that lack them, as
    Segment's own API does. A file that is not a batch is read as one event per line.
    """
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path) as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        stats.file_error = f"unreadable: {exc}"
        return
    stats.bytes = len(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("batch"), list)):
        # not a batch body: fall back to line-oriented reading of the same bytes
        out = _Batcher(max_bytes)
        block = raw if raw.endswith(b"\n") else raw + b"\n"
        stats.lines = out.add_block(block, 1) if raw.strip() else 0
        if len(out):
            yield out.flush()
        return
    shared = {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}
    out = _Batcher(max_bytes)
    for i, msg in enumerate(body["batch"], start=1):
        if isinstance(msg, dict):
            for k, v in shared.items():
                msg.setdefault(k, v)
        out.add_one(orjson.dumps(msg), i)
    stats.lines = len(body["batch"])
    if len(out):
        yield out.flush()


def read_files(paths, max_bytes: int = 32768, batch_lines: int = BATCH_LINES,
               on_file_done=None, strip: bool = True) -> Iterator[pa.Table]:
    """Lines of many files as arrow tables (source_file, line_no, raw, pre_reason), several files
    per table up to ``batch_lines`` rows. ``on_file_done(path, ReadStats)`` is called per file."""
    pending: list[pa.Table] = []
    rows = 0
    for path in paths:
        stats = ReadStats()
        for t in read_file(path, max_bytes=max_bytes, stats=stats, batch_lines=batch_lines, strip=strip):
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

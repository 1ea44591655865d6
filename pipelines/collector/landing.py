"""Durable, group-committed JSONL writer for the collector's landing zone.

Layout (read by the ingestion assets): ``<landing>/date=YYYY-MM-DD/<name>.jsonl``, one message per
``\\n``-terminated UTF-8 line. A file being written is named ``<name>.jsonl.part`` and only gets its
final ``.jsonl`` name when it is rolled (by size or age) or at shutdown, so a reader never sees a
half-written file. ``<name>`` is ``collector-<source>-<UTC yyyymmddTHHMMSS>-<pid>-<run>-<seq>``
(``<run>`` is random per process, so a restarted collector that gets the same PID, as PID 1 in a
container always does, never reuses a name).

Liveness is a lock, not a PID: the writer holds an exclusive ``flock`` on every ``.part`` it has
open, for as long as it has it open. The kernel drops the lock when the process dies however it
dies (SIGKILL, OOM, power loss), so recovery takes over exactly the ``.part`` files whose lock it
can take, whatever PID namespace wrote them.

One writer thread owns every file. Request handlers hand it ready-made lines and wait; the thread
takes everything queued, writes it, fsyncs each touched file once and only then releases all the
waiters. Requests that arrive while an fsync is running share the next one (group commit), which is
what keeps throughput up when every 200 must follow an fsync.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..durable import fsync_path

PART_SUFFIX = ".jsonl.part"
_SOURCE_OK = re.compile(r"[^a-z0-9_-]+")
_DATE_DIR = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")


def sanitize_source(name: str) -> str:
    """Reduce a source name to ``[a-z0-9_-]`` so it can never reach outside the landing folder."""
    cleaned = _SOURCE_OK.sub("_", str(name).lower()).strip("_")
    # Length cap keeps file names under every filesystem's 255-byte limit.
    return cleaned[:64] or "unnamed"


@dataclass
class _OpenFile:
    part_path: Path
    final_path: Path
    fd: int
    opened_at: float
    size: int = 0


@dataclass
class _Job:
    source: str
    day: str
    data: bytes
    future: Future = field(default_factory=Future)


class LandingWriter:
    """Appends JSONL chunks to rolling per-(source, day) files; ``write`` returns after fsync."""

    def __init__(
        self,
        landing: str | os.PathLike,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 60.0,
        fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.landing = Path(landing)
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self._fsync = fsync  # injectable so tests can simulate a slow disk
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._files: dict[tuple[str, str], _OpenFile] = {}
        self._seq = 0
        self._run_id = secrets.token_hex(3)  # names stay unique across restarts under the same PID
        self._thread: threading.Thread | None = None
        self.closed_files: list[Path] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> list[Path]:
        """Recover leftovers of a crashed run, then start the writer thread."""
        self.landing.mkdir(parents=True, exist_ok=True)
        recovered = recover_parts(self.landing)
        self._thread = threading.Thread(target=self._run, name="landing-writer", daemon=True)
        self._thread.start()
        return recovered

    def close(self) -> None:
        """Write everything queued, then close and rename every open file (graceful shutdown)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    @property
    def alive(self) -> bool:
        """True while the writer thread runs (reported by GET /health)."""
        return self._thread is not None and self._thread.is_alive()

    # -- API for request handlers ------------------------------------------------------------
    def submit(self, source: str, day: str, data: bytes) -> Future:
        """Queue ``data`` (whole lines) for ``<landing>/date=<day>/``; the future resolves after fsync."""
        if self._thread is None:
            raise RuntimeError("LandingWriter is not running")
        job = _Job(sanitize_source(source), day, data)
        self._queue.put(job)
        return job.future

    async def write(self, source: str, day: str, data: bytes) -> None:
        """Async wrapper of :meth:`submit`: returns once the lines are on disk."""
        await asyncio.wrap_future(self.submit(source, day, data))

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            timeout = self._next_roll_in()
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._roll_aged()
                continue
            jobs: list[_Job] = []
            for job in self._drain(first):
                if job is None:
                    stopping = True
                else:
                    jobs.append(job)
            if jobs:
                self._commit(jobs)
            self._roll_aged()
        for key in list(self._files):
            self._finalize(key)

    def _drain(self, first: _Job | None):
        yield first
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        touched: dict[tuple[str, str], int] = {}  # key -> size before this group, for rollback
        failed: dict[tuple[str, str], BaseException] = {}
        for job in jobs:
            key = (job.source, job.day)
            if key in failed:
                continue
            try:
                f = self._files.get(key) or self._open(key)
                touched.setdefault(key, f.size)
                _write_all(f.fd, job.data)
                f.size += len(job.data)
            except OSError as exc:
                failed[key] = exc
        for key in touched:
            if key in failed:
                continue
            try:
                self._fsync(self._files[key].fd)
            except OSError as exc:
                failed[key] = exc
        for key, exc in failed.items():
            self._rollback(key, touched.get(key))
        for key in touched:
            f = self._files.get(key)
            if key not in failed and f is not None and f.size >= self.roll_bytes:
                self._finalize(key)
        for job in jobs:
            exc = failed.get((job.source, job.day))
            if exc is None:
                job.future.set_result(None)
            else:
                job.future.set_exception(exc)

    def _rollback(self, key: tuple[str, str], good_size: int | None) -> None:
        # A failed write or fsync may leave unacknowledged bytes; cut them so the file only holds
        # acknowledged lines, and start a fresh file next time if even that fails.
        f = self._files.get(key)
        if f is None:
            return
        try:
            if good_size is not None:
                os.ftruncate(f.fd, good_size)
                f.size = good_size
        except OSError:
            os.close(f.fd)
            del self._files[key]

    def _open(self, key: tuple[str, str]) -> _OpenFile:
        source, day = key
        folder = self.landing / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"collector-{source}-{stamp}-{os.getpid()}-{self._run_id}-{self._seq}"
        part = folder / (name + PART_SUFFIX)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        # Held until _finalize closes fd (or the process dies): tells recovery this file is live.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fsync_path(folder)  # the new directory entry must survive a crash too
        f = _OpenFile(part, folder / (name + ".jsonl"), fd, time.monotonic())
        self._files[key] = f
        return f

    def _finalize(self, key: tuple[str, str]) -> None:
        f = self._files.pop(key)
        # Content was fsynced before any waiter was released. The lock is released (fd closed)
        # only after the rename, so recovery in another process never races the rename.
        try:
            if f.size == 0:
                f.part_path.unlink(missing_ok=True)
                return
            os.replace(f.part_path, f.final_path)
            fsync_path(f.final_path.parent)
            self.closed_files.append(f.final_path)
        finally:
            os.close(f.fd)

    def _next_roll_in(self) -> float | None:
        if not self._files:
            return None
        oldest = min(f.opened_at for f in self._files.values())
        return max(0.0, oldest + self.roll_seconds - time.monotonic())

    def _roll_aged(self) -> None:
        now = time.monotonic()
        for key, f in list(self._files.items()):
            if now - f.opened_at >= self.roll_seconds:
                self._finalize(key)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def recover_parts(landing: str | os.PathLike) -> list[Path]:
    """Give final names to ``.part`` files left by a crashed collector; returns the new paths.

    A ``.part`` is taken over when its ``flock`` is free: a live writer (this process or any other,
    in any PID namespace) holds it, a dead one cannot. Content was fsynced before any 200, so it is
    all acknowledged except possibly a last line cut short by the crash, which is truncated (its
    request never got a 200, the SDK retries it).
    """
    recovered: list[Path] = []
    for folder in sorted(Path(landing).iterdir()):
        if not folder.is_dir() or not _DATE_DIR.match(folder.name):
            continue
        for part in sorted(folder.glob("*" + PART_SUFFIX)):
            try:
                fd = os.open(part, os.O_RDWR)
            except FileNotFoundError:
                continue  # finalized by its live writer meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                try:
                    if os.stat(part).st_ino != os.fstat(fd).st_ino:
                        continue  # replaced between our open and our lock
                except FileNotFoundError:
                    continue  # renamed by its writer between our open and our lock
                _truncate_partial_line(fd)
                if os.fstat(fd).st_size == 0:
                    part.unlink()
                    continue
                final = part.with_name(part.name[: -len(".part")])
                if final.exists():  # never overwrite a landed file; keep both
                    final = part.with_name(part.name[: -len(PART_SUFFIX)] + f"-r{secrets.token_hex(3)}.jsonl")
                os.replace(part, final)
                recovered.append(final)
            finally:
                os.close(fd)  # releases the lock
        fsync_path(folder)
    return recovered


def _truncate_partial_line(fd: int) -> None:
    with open(fd, "r+b", closefd=False) as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        # Walk back in blocks to the last newline; a crash can only cut the final line.
        pos = size
        block = 65536
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        if keep != size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

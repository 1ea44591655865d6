"""Where events already are: a local folder or an object store (s3://, gs://, az:// through fsspec),
in one of three layouts.

    trackplan          date=YYYY-MM-DD/*.jsonl[.gz] | *.json[.gz]   (our own; the collector writes it)
    segment-s3         segment-logs/{source-id}/{received-day as Unix ms}/{file}.gz   (Segment's S3 destination)
    snowplow-enriched  enriched TSV files, gzipped or not, under a date in the key   (Snowplow's S3 loader)

`scan` lists every object (or file) under the landing root and gives each a LandingEntry: read in its
partition, or skipped with its reason, as `reader.scan_landing` does for a local trackplan folder, so
the ingestion log accounts for every object. Credentials come from the standard chain of the store's
own client (for S3: AWS_* variables, AWS_PROFILE and ~/.aws, instance roles; AWS_ENDPOINT_URL for an
S3-compatible store such as MinIO or R2). A missing bucket or a refused listing is a LandingError whose
message is one line naming the URL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import replace
from pathlib import Path

from .objectstore import LandingError, _fs, open_object
from .reader import DATE_DIR, LandingEntry, _bad_name, _day, is_url, scan_landing

__all__ = [
    "LAYOUTS",
    "LandingError",
    "detect_layout",
    "held_reason",
    "hold_future",
    "list_objects",
    "open_object",
    "scan",
]

LAYOUTS = ("trackplan", "segment-s3", "snowplow-enriched")


# Where each store's client takes its credentials from (named in the access-denied message)
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "az": "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY or _SAS_TOKEN",
}
CREDENTIALS.update(s3a=CREDENTIALS["s3"], gcs=CREDENTIALS["gs"], abfs=CREDENTIALS["az"], abfss=CREDENTIALS["az"])
REFUSED = ("AccessDenied", "Forbidden", "AuthorizationFailure", "AuthenticationFailed", "Invalid Credentials")


def _status(exc: BaseException) -> int | None:
    """The HTTP status a store client's error carries (azure-core: status_code, gcsfs: code)."""
    for attr in ("status_code", "code"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    return None


def _problem(url: str, exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    scheme = url.split("://", 1)[0]
    container = "container" if scheme in ("az", "abfs", "abfss") else "bucket"
    if isinstance(exc, PermissionError) or _status(exc) in (401, 403) or any(w in text for w in REFUSED):
        creds = CREDENTIALS.get(scheme, "the store's credentials")
        return (
            f"{url}: access denied listing the landing root ({text}); check the credentials "
            f"({creds}) and that they may list and read this {container}"
        )
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text or "ContainerNotFound" in text:
        return f"{url}: no such {container} ({text})"
    return f"{url}: cannot list the landing root ({type(exc).__name__}: {text})"


def list_objects(url: str) -> list[tuple[str, str, int, str | None]]:
    """(key relative to the root, full URL, size, ETag) of every object under ``url``, sorted."""
    fs, root = _fs(url)
    root = root.rstrip("/")
    fs.invalidate_cache()  # a listing is always fresh: a rewritten object must show its new ETag
    try:
        found = fs.find(root, detail=True, withdirs=False)
        if not found and not fs.exists(root.split("/", 1)[0]):  # an empty prefix is no error, a missing bucket is
            raise FileNotFoundError("it does not exist")
    except Exception as exc:  # noqa: BLE001 - every client's errors become one line naming the URL
        raise LandingError(_problem(url, exc)) from None
    scheme = url.split("://", 1)[0]
    out = []
    for key, info in found.items():
        if info.get("type") == "directory":
            continue
        rel = key[len(root) :].lstrip("/") if key.startswith(root) else key
        # the object's version stamp: S3's ETag, GCS's generation (new at every write, even of the same
        # bytes), Azure's ETag
        etag = info.get("ETag") or info.get("generation") or info.get("etag")
        out.append((rel, f"{scheme}://{key}", int(info.get("size") or 0), str(etag).strip('"') if etag else None))
    return sorted(out)


def _list_local(root: Path) -> list[tuple[str, Path, str | None]]:
    """(relative path, path, skip reason or None) of every file under a local root, links not followed."""
    out = []
    for d, dirs, files in os.walk(root, followlinks=False, onerror=None):
        for name in sorted(dirs):
            p = Path(d) / name
            if p.is_symlink():
                out.append(
                    (str(p.relative_to(root)), p, "symlink: not followed (nothing outside the landing root is read)")
                )
        for name in sorted(files):
            p = Path(d) / name
            why = None
            if p.is_symlink():
                why = "symlink: not followed (nothing outside the landing root is read)"
            elif not p.is_file():
                why = "not a regular file: a FIFO, socket or device"
            out.append((str(p.relative_to(root)).replace(os.sep, "/"), p, why))
    return sorted(out, key=lambda x: x[0])


SEGMENT_DAY = re.compile(r"\d{10,14}")


def _segment(rel: str) -> tuple[str | None, str | None, str | None]:
    """(partition, skip reason, format) of a key under Segment's S3 destination layout:
    [segment-logs/]{source-id}/{received-day in Unix ms}/{file}.gz."""
    parts = rel.split("/")
    name = parts[-1]
    if name.startswith((".", "_")):
        return None, "hidden or metadata file: the name starts with '.' or '_'", None
    if len(parts) < 2 or not SEGMENT_DAY.fullmatch(parts[-2]):
        return (
            None,
            ("not in a received-day folder: Segment writes segment-logs/{source-id}/{day as Unix ms}/{file}.gz"),
            None,
        )
    ms = int(parts[-2])
    try:
        day = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return None, f"bad received-day folder: {parts[-2]!r} is not a day in Unix milliseconds", None
    if name.endswith(".part"):
        return day, "being written: a .part file is read once it is renamed", None
    return day, None, ("batch" if name.endswith((".json", ".json.gz")) else "lines")


SNOWPLOW_DAY = (
    re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)"),  # the S3 loader's {YYYY}/{MM}/{dd}[/{HH}] folders
    re.compile(r"(?:^|/)run=(\d{4}-\d{2}-\d{2})-"),  # the older batch pipeline's run=YYYY-MM-DD-hh-mm-ss folders
    re.compile(r"(?:^|[^0-9])(\d{4}-\d{2}-\d{2})(?:[^0-9]|$)"),  # a date in the file name
)


def _snowplow(rel: str) -> tuple[str | None, str | None, str | None]:
    name = rel.rsplit("/", 1)[-1]
    if name.startswith((".", "_")):  # the loader's _SUCCESS markers, .crc files
        return None, "hidden or metadata file: the name starts with '.' or '_'", None
    for rx in SNOWPLOW_DAY:
        m = rx.search(rel)
        if m:
            day = _day("-".join(m.groups()) if len(m.groups()) == 3 else m.group(1))
            if day is None:
                return None, f"bad date in the key: {m.group(0).strip('/')!r} is not a real date", None
            if name.endswith(".part"):
                return day, "being written: a .part file is read once it is renamed", None
            return day, None, "snowplow"
    return (
        None,
        (
            "no date in the key: enriched files are read from YYYY/MM/DD/ or date=YYYY-MM-DD/ folders "
            "or a YYYY-MM-DD in the name"
        ),
        None,
    )


def _trackplan(rel: str) -> tuple[str | None, str | None, str | None]:
    """The rules of reader.scan_landing, for object keys (an object store has no links or devices)."""
    parts = rel.split("/")
    name = parts[-1]
    if len(parts) == 1:
        return (
            None,
            (
                _bad_name(name)
                if name.startswith((".", "_"))
                else "not in a date folder: directly under the landing root"
            ),
            None,
        )
    m = DATE_DIR.fullmatch(parts[0])
    if not m:
        return None, f"not in a date folder: {parts[0]!r} is not date=YYYY-MM-DD", None
    day = _day(m.group(1))
    if day is None:
        return None, f"bad date folder: {parts[0]!r} is not date=YYYY-MM-DD with a real date", None
    if len(parts) > 2:
        return (
            day,
            (
                f"unexpected subfolder: {parts[1]!r} in {parts[0]!r} (files must be directly in their "
                "date=YYYY-MM-DD folder)"
            ),
            None,
        )
    return day, _bad_name(name), None


CLASSIFY = {"trackplan": _trackplan, "segment-s3": _segment, "snowplow-enriched": _snowplow}


def detect_layout(keys: list[str], first_line=None) -> str:
    """trackplan when a top folder is date=YYYY-MM-DD, segment-s3 when files sit in Unix-ms day
    folders (or under segment-logs/), snowplow-enriched when a file's first line has the 131 tab-separated
    fields; trackplan otherwise (its skip reasons then say what is wrong)."""
    if any(DATE_DIR.fullmatch(k.split("/", 1)[0]) and "/" in k for k in keys):
        return "trackplan"
    if any(
        k.startswith("segment-logs/")
        or "/segment-logs/" in k
        or (k.count("/") >= 1 and SEGMENT_DAY.fullmatch(k.split("/")[-2]))
        for k in keys
    ):
        return "segment-s3"
    if first_line is not None:
        from .snowplow import ENRICHED_FIELDS

        line = first_line()
        if line is not None and line.count(b"\t") == len(ENRICHED_FIELDS) - 1:
            return "snowplow-enriched"
    return "trackplan"


def _first_line(src: str | Path, rel: str) -> bytes | None:
    """The first line of an object or file (decompressed), for detecting the Snowplow layout."""
    import zlib

    try:
        with open_object(src) if is_url(src) else Path(src).open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if rel.endswith(".gz") or head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, 1 << 16)
        except zlib.error:
            return None
    return head.split(b"\n", 1)[0]


# a day's partition exists up to tomorrow (UTC), as the Dagster partitions say (pipelines/partitions.py:
# end_offset=1): a folder dated later is a wrong clock or a typo, not traffic yet
FUTURE_DAYS = 1


def held_reason(partition: str | None, today: dt.date | None = None) -> str | None:
    """Why a partition is held back (dated after tomorrow, UTC), or None when it is read."""
    try:
        day = dt.date.fromisoformat(partition) if partition else None
    except ValueError:
        return None
    last = (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=FUTURE_DAYS)
    if day is None or day <= last:
        return None
    return (
        f"future partition: {partition} is after tomorrow ({last.isoformat()}, UTC), a wrong clock or a typo; "
        "read from that day on (or rename the folder)"
    )


def hold_future(entries: list[LandingEntry], today: dt.date | None = None) -> list[LandingEntry]:
    """The entries, those of a partition dated after tomorrow (UTC) held back: outside any partition
    (so no run reads them, and the ingestion log lists them every run with the reason) until the day
    comes, when the next scan puts them in their partition and the run ingests them."""
    today = today or dt.datetime.now(dt.UTC).date()
    out = []
    for e in entries:
        why = held_reason(e.partition, today)
        out.append(replace(e, partition=None, skip=e.skip or why) if why else e)
    return out


def scan(landing: str | Path, layout: str | None = None) -> list[LandingEntry]:
    """Every object or file under the landing root, read (in its partition) or skipped with its reason;
    a partition dated after tomorrow is held back (hold_future)."""
    return hold_future(_scan(landing, layout))


def _scan(landing: str | Path, layout: str | None) -> list[LandingEntry]:
    if layout not in (None, "", "auto", *LAYOUTS):
        raise LandingError(f"--layout {layout}: expected one of {', '.join(LAYOUTS)} (or leave it out to detect)")
    layout = None if layout in (None, "", "auto") else layout
    text = str(landing)
    if is_url(text):
        objects = list_objects(text)
        if layout is None:
            sample = next((o for o in objects if not o[0].rsplit("/", 1)[-1].startswith((".", "_"))), None)
            layout = detect_layout(
                [o[0] for o in objects], (lambda: _first_line(sample[1], sample[0])) if sample else None
            )
        classify = CLASSIFY[layout]
        out = []
        for rel, url, size, etag in objects:
            part, skip, fmt = classify(rel)
            out.append(LandingEntry(url, part, skip, fmt, size, etag))
        return out
    root = Path(text)
    if layout is None:
        if not root.is_dir():
            return []
        files = _list_local(root)
        sample = next((f for f in files if f[2] is None and not f[1].name.startswith((".", "_"))), None)
        layout = detect_layout([f[0] for f in files], (lambda: _first_line(sample[1], sample[0])) if sample else None)
    if layout == "trackplan":
        return scan_landing(root)
    if not root.is_dir():
        return []
    out = []
    for rel, path, why in _list_local(root):
        part, skip, fmt = CLASSIFY[layout](rel)
        out.append(LandingEntry(path, part, why or skip, fmt))
    return out

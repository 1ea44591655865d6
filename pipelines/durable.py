"""Durability on local disks, shared by the collector's landing writer and the warehouse's publish
(stdlib only: either imports it without pulling in the other)."""

from __future__ import annotations

import os


def fsync_path(path: str | os.PathLike) -> None:
    """A file's data, or a directory's entries, to disk (a directory too opens read-only on Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""pipelines/publish.py `clone` and `building`: the copy a run writes is byte for byte the warehouse,
whichever way the file system copies it (reflink, copy_file_range, a plain copy), and a warehouse
left with a write-ahead log is checkpointed before it is copied."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import duckdb
import pytest

from pipelines import publish


@pytest.fixture()
def src(tmp_path):
    path = tmp_path / "w.duckdb"
    path.write_bytes(os.urandom(3 * 2**20 + 12345))  # not a multiple of any block size
    return path


def _fail(code):
    def f(*a, **k):
        raise OSError(code, os.strerror(code))

    return f


def test_a_reflink_where_the_file_system_has_one(src, tmp_path, monkeypatch):
    def ioctl(fd_out, request, fd_in):  # a file system that shares extents: the bytes appear
        assert request == publish.FICLONE
        os.write(fd_out, os.pread(fd_in, os.fstat(fd_in).st_size, 0))

    monkeypatch.setattr(publish.fcntl, "ioctl", ioctl)
    monkeypatch.setattr(os, "copy_file_range", _fail(errno.EIO))  # not reached
    assert publish.clone(src, tmp_path / "c") == "reflink"
    assert (tmp_path / "c").read_bytes() == src.read_bytes()


def test_copy_file_range_when_there_is_no_reflink(src, tmp_path, monkeypatch):
    if not hasattr(os, "copy_file_range"):
        pytest.skip("os.copy_file_range: Linux only")
    monkeypatch.setattr(publish.fcntl, "ioctl", _fail(errno.EOPNOTSUPP))
    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or real(*a))
    assert publish.clone(src, tmp_path / "c") == "copy_file_range"
    assert calls and (tmp_path / "c").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("how", ["EXDEV", "ENOSYS", "returns 0", "fails midway", "absent"])
def test_a_plain_copy_when_neither_is_there(src, tmp_path, monkeypatch, how):
    monkeypatch.setattr(publish.fcntl, "ioctl", _fail(errno.EXDEV))
    if how == "absent":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    elif how == "returns 0":
        monkeypatch.setattr(os, "copy_file_range", lambda *a: 0)
    elif how == "fails midway":  # half the bytes written, then "not across these file systems"
        state = {"n": 0}

        def half(fd_in, fd_out, count, off_in, off_out):
            if state["n"]:
                raise OSError(errno.EXDEV, "cross-device")
            state["n"] = 1
            return os.pwrite(fd_out, os.pread(fd_in, min(count, 2**20), off_in), off_out)

        monkeypatch.setattr(os, "copy_file_range", half)
    else:
        monkeypatch.setattr(os, "copy_file_range", _fail(getattr(errno, how)))
    assert publish.clone(src, tmp_path / "c") == "copy"
    assert (tmp_path / "c").read_bytes() == src.read_bytes()


def test_a_real_copy_error_is_raised_not_hidden(src, tmp_path, monkeypatch):
    monkeypatch.setattr(publish.fcntl, "ioctl", _fail(errno.EOPNOTSUPP))
    monkeypatch.setattr(os, "copy_file_range", _fail(errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        publish.clone(src, tmp_path / "c")


def test_a_write_ahead_log_is_checkpointed_before_the_copy(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    # a process that wrote and died without closing: its rows are in the WAL only
    code = (
        "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); c.execute('set checkpoint_threshold = \"1GB\"'); "
        "c.execute('create table t as select range as i from range(1000)'); c.execute('checkpoint'); "
        "c.execute('insert into t select range + 1000 from range(500)'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(warehouse)], check=True)
    assert (tmp_path / "w.duckdb.wal").exists()
    with publish.building(warehouse) as build:
        assert not (tmp_path / "w.duckdb.wal").exists()
        con = duckdb.connect(str(build.path), read_only=True)
        assert con.execute("select count(*), sum(i) from t").fetchall() == [(1500, sum(range(1500)))]
        con.close()


def test_without_a_wal_the_copy_is_the_warehouse(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create table t as select range as i from range(100)")
    con.close()
    assert not (tmp_path / "w.duckdb.wal").exists()
    before = warehouse.stat().st_mtime_ns
    with publish.building(warehouse) as build:
        assert build.path.read_bytes() == warehouse.read_bytes()
    assert warehouse.stat().st_mtime_ns == before  # nothing written to the warehouse itself

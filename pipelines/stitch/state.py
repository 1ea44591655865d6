"""What the incremental layers remember between runs (stitch.build_state, stitch.changes).

Light on purpose (no pandas, no scipy): the sessions asset reads it when it runs."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import duckdb

from schemas.ddl import ID_COLUMN

ROOT = Path(__file__).resolve().parents[2]
# what a full rebuild is forced by when it changes: the stitching and session code and every model SQL
CODE_FILES = (
    "pipelines/stitch/identity.py",
    "pipelines/stitch/incremental.py",
    "pipelines/stitch/sessions.py",
    "pipelines/stitch/person_marts.py",
    "pipelines/stitch/person_parts.py",
)
STATE_DDL = f"""
create table if not exists stitch.build_state (
    layer varchar, fingerprint varchar, seq bigint, mode varchar, built_at timestamp
);
create table if not exists stitch.changes (
    seq bigint, person_id varchar, whole boolean, since timestamp, client_session_ids varchar[]
);
create table if not exists stitch.partition_keys (
    partition_date date, signature varchar, user_id {ID_COLUMN}, anonymous_id {ID_COLUMN}, events bigint
);
"""
# bookkeeping of the incremental runs: not part of what a full build and an incremental one must agree on
STATE_TABLES = ("stitch.build_state", "stitch.changes", "stitch.partition_keys")
# past this share of the events changed, re-resolving the touched part costs more than all of it
FULL_SHARE = 0.5


def fingerprint(plan_dir: Path | str | None) -> str:
    """sha256 over the plan's files, the model SQL and the incremental code (names and bytes)."""
    h = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    if plan_dir is not None:
        base = Path(plan_dir)
        files += [("plan/" + str(p.relative_to(base)), p) for p in base.rglob("*") if p.is_file()]
    files += [(str(p.relative_to(ROOT)), p) for p in (ROOT / "models").rglob("*.sql")]
    files += [(f, ROOT / f) for f in CODE_FILES if (ROOT / f).exists()]
    for name, path in sorted(files):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def table_type(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """'BASE TABLE' or 'VIEW' (stitch.events is a view of ingest.events), or None: what `table` is in
    the warehouse (its own catalog, not an attached one)."""
    schema, name = table.split(".")
    rows = con.execute(
        "select table_type from information_schema.tables where table_catalog = current_database() "
        "and table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return rows[0][0] if rows else None


def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `table` is a table or a view of the warehouse."""
    return table_type(con, table) is not None


def state(con: duckdb.DuckDBPyConnection, layer: str) -> dict | None:
    """The layer's row of stitch.build_state (fingerprint, seq, mode), or None."""
    con.execute(STATE_DDL)
    row = con.execute("select fingerprint, seq, mode from stitch.build_state where layer = ?", [layer]).fetchall()
    return dict(zip(("fingerprint", "seq", "mode"), row[0], strict=True)) if row else None


def set_state(con: duckdb.DuckDBPyConnection, layer: str, fp: str, seq: int, mode: str) -> None:
    con.execute("delete from stitch.build_state where layer = ?", [layer])
    con.execute(
        "insert into stitch.build_state values (?, ?, ?, ?, ?)",
        [layer, fp, seq, mode, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
    )


def follow(
    con: duckdb.DuckDBPyConnection, layer: str, plan_dir, full_refresh: bool, extra: str = ""
) -> tuple[str | None, int, str]:
    """Whether `layer` (a table kept up to date from stitch.changes) can apply the stitch's last
    changes: (why it must be rebuilt whole, or None; the stitch's seq; its fingerprint). `why` is
    "" when the layer already is at that seq (nothing to do). `extra`: anything else the layer's
    rows depend on (in its fingerprint: a different value rebuilds it whole)."""
    con.execute(STATE_DDL)
    fp = fingerprint(plan_dir)
    if extra:
        fp = hashlib.sha256(f"{fp}|{extra}".encode()).hexdigest()
    st, mine = state(con, "stitch"), state(con, layer)
    seq = st["seq"] if st else 0
    if full_refresh:
        return "--full-refresh", seq, fp
    if st is None or mine is None or not exists(con, layer):
        return "no earlier state", seq, fp
    if mine["fingerprint"] != fp:
        return "the plan, a model's SQL, the stitching code or a session variable changed", seq, fp
    if mine["seq"] == seq:
        return "", seq, fp
    if st["mode"] == "full":
        return "the stitch was rebuilt whole", seq, fp
    if mine["seq"] != seq - 1:
        return "it missed a stitch run", seq, fp
    return None, seq, fp


def over(sql: str, source: str, path: str) -> str:
    """A model's SQL reading `source` instead of stitch.events (the model reads it exactly once)."""
    out, n = re.subn(r"\bfrom stitch\.events\b", f"from {source}", sql)
    if n != 1:
        raise RuntimeError(f"{path}: expected one 'from stitch.events', found {n}")
    return out

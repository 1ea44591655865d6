"""Right to erasure: `trackplan forget --user-id ID` removes a person from every table.

The person is every identifier stitch.persons gives the user id's person_id (user id, devices,
hashed email), or just the user id when it has not been stitched yet. Rows are deleted from
ingest.events, ingest.quarantine (matched on the raw line's ids, also in lines that are not JSON),
the stitch tables, staging.sessions and every marts/quality/staging table with a person_id,
user_id or anonymous_id column. What is left behind is PII-free: an audit row holding only the
keyed hash of the user id, and the keyed hashes of the identifiers in ingest.suppression, which
the ingest checks so re-ingesting an old landing file does not bring the person back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import duckdb

from tracking_plan.model import Plan
from tracking_plan.validate import lit

from .stitch.identity import _field_sql
from .warehouse import connect, keyed_hash, transaction

SCHEMAS = ("ingest", "stitch", "staging", "marts", "quality")
# tables that are about erasure itself (hashes only) or hold counts, not people
KEEP = {("ingest", "suppression"), ("ingest", "erasure_audit"), ("ingest", "ingestion_log")}
# the ingest's suppression check knows these two kinds, by the envelope field they come from
SUPPRESSIBLE = {"userId": "user_id", "anonymousId": "anonymous_id"}
# columns holding an identifier, and which identifiers' kinds they may hold (previousId: either)
ID_COLUMNS = {"user_id": ("userId",), "anonymous_id": ("anonymousId",), "previous_id": ("userId", "anonymousId")}


def _tables(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], set[str]]:
    rows = con.execute(f"""
select c.table_schema, c.table_name, c.column_name
from information_schema.columns c join information_schema.tables t
  on t.table_schema = c.table_schema and t.table_name = c.table_name
where t.table_type = 'BASE TABLE' and c.table_schema in ({', '.join(lit(s) for s in SCHEMAS)})
""").fetchall()
    out: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        out.setdefault((schema, table), set()).add(column)
    return out


def person_identifiers(con: duckdb.DuckDBPyConnection, plan: Plan, user_id: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(person_id or None, [(identifier kind, identifier)]) of the person behind `user_id`."""
    uid_kind = next((i.name for i in plan.identity.identifiers if i.source == "userId"), "user_id")
    tables = _tables(con)
    if ("stitch", "persons") in tables:
        found = con.execute("select person_id from stitch.persons where identifier_kind = ? and identifier = ?",
                            [uid_kind, user_id]).fetchall()
        if found:
            pid = found[0][0]
            ids = con.execute("select identifier_kind, identifier from stitch.persons where person_id = ? "
                              "order by all", [pid]).fetchall()
            return pid, [(k, v) for k, v in ids]
    return None, [(uid_kind, user_id)]


def forget_person(warehouse_path: Path | str, user_id: str, plan: Plan) -> dict:
    """Erase the person behind `user_id` everywhere; return {rows, identifiers, audit_id, tables}."""
    con = connect(warehouse_path)
    try:
        return _forget(con, user_id, plan)
    finally:
        con.close()


def _forget(con: duckdb.DuckDBPyConnection, user_id: str, plan: Plan) -> dict:
    person_id, idents = person_identifiers(con, plan, user_id)
    source = {i.name: i.source for i in plan.identity.identifiers}
    by_field: dict[str, set[str]] = {}  # envelope field (userId, anonymousId, traits.email) -> values
    for kind, value in idents:
        by_field.setdefault(source.get(kind, "userId" if kind == "user_id" else kind), set()).add(value)
    con.execute("create or replace temp table _forget_ids (kind varchar, identifier varchar, field varchar)")
    con.executemany("insert into _forget_ids values (?, ?, ?)",
                    [[k, v, source.get(k, "userId")] for k, v in idents])

    def in_field(fields, sql: str) -> str:
        fields = (fields,) if isinstance(fields, str) else fields
        return f"{sql} in (select identifier from _forget_ids where field in ({', '.join(map(lit, fields))}))"

    tables = _tables(con)
    audit_id = uuid.uuid4().hex
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    deleted: dict[str, int] = {}
    with transaction(con):
        for (schema, table), cols in sorted(tables.items()):
            if (schema, table) in KEEP:
                continue
            conds = []
            if "person_id" in cols and person_id is not None:
                conds.append(f"person_id = {lit(person_id)}")
            for col, fld in ID_COLUMNS.items():
                if col in cols:
                    conds.append(in_field(fld, col))
            if {"traits", "properties"} <= cols:  # an event table: every identifier by its own source field
                for fld in by_field:
                    if fld not in ("userId", "anonymousId"):
                        try:
                            conds.append(in_field(fld, _field_sql(fld)))
                        except ValueError:
                            pass
            if {"identifier_kind", "identifier"} <= cols:
                conds.append("(identifier_kind, identifier) in (select kind, identifier from _forget_ids)")
            if {"kind_a", "id_a", "kind_b", "id_b"} <= cols:
                conds.append("(kind_a, id_a) in (select kind, identifier from _forget_ids) or "
                             "(kind_b, id_b) in (select kind, identifier from _forget_ids)")
            if (schema, table) == ("ingest", "quarantine"):
                conds.append(_quarantine_match())
            if not conds:
                continue
            n = con.execute(f'delete from "{schema}"."{table}" where ' + " or ".join(f"({c})" for c in conds)
                            ).fetchall()[0][0]
            if n:
                deleted[f"{schema}.{table}"] = n
        con.execute("insert into ingest.suppression select * from (values "
                    + ", ".join("(?, ?, ?, ?)" for _ in idents) + ")",
                    [x for k, v in idents for x in (SUPPRESSIBLE.get(source.get(k, ""), k), keyed_hash(v), audit_id, now)]
                    ).fetchall()
        con.execute("insert into ingest.erasure_audit values (?, ?, ?, ?, ?, ?)",
                    [audit_id, now, keyed_hash(user_id), len(idents), sum(deleted.values()), sorted(deleted)]
                    ).fetchall()
    # write the deletions into the database file now rather than leaving them in the WAL
    con.execute("checkpoint").fetchall()
    return {"rows": sum(deleted.values()), "identifiers": len(idents), "audit_id": audit_id,
            "tables": deleted, "person_id": person_id}


def _quarantine_match() -> str:
    """A quarantined line is the person's if its userId/anonymousId/previousId is one of theirs; a
    line that is not JSON is matched on the quoted identifier anywhere in its text."""
    ids = "select identifier from _forget_ids where field in ('userId', 'anonymousId')"
    # the json functions see only valid JSON: DuckDB evaluates both CASE branches on a vector
    j = "(case when json_valid(raw) then raw end)"
    fields = " or ".join(f"json_extract_string({j}, '$.{k}') in ({ids})" for k in ("userId", "anonymousId", "previousId"))
    return (f"({fields}) or (not json_valid(raw) and exists (select 1 from _forget_ids f "
            f"where f.field in ('userId', 'anonymousId') and contains(raw, '\"' || f.identifier || '\"')))")

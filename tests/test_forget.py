"""Right to erasure (issue 3, item 3): `forget_person` removes a person from every table, keeps a
PII-free audit row, and its suppression list keeps re-ingested files from bringing them back."""

import datetime as dt

import pytest
from support.pipeline import (
    BASE,
    DAY,
    ev,
    ingest,
    plan,
    query,
    stitch_and_sessions,
    write_lines,
)
from typer.testing import CliRunner

from pipelines.privacy import forget_person
from pipelines.warehouse import connect, keyed_hash
from trackplan.cli import app

T = dt.timedelta
KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL = "user-kim", "dev-kim-laptop", "dev-kim-phone", "kim@example.com"
ALEX, ALEX_DEVICE = "user-alex", "dev-alex"


def _landing(landing):
    write_lines(landing, DAY, "a.jsonl", [
        ev(type="page", anon=KIM_DEVICE, at=BASE, props={"path": "/pricing"}),
        ev(type="identify", user=KIM, anon=KIM_DEVICE, at=BASE + T(minutes=1), traits={"email": KIM_EMAIL}),
        ev(user=KIM, anon=KIM_PHONE, at=BASE + T(hours=2)),
        ev(type="page", anon=KIM_PHONE, at=BASE + T(hours=2, minutes=1), props={"path": "/app"}),
        ev(type="page", anon=ALEX_DEVICE, at=BASE, props={"path": "/"}),
        ev(type="identify", user=ALEX, anon=ALEX_DEVICE, at=BASE + T(minutes=3), traits={"email": "alex@example.com"}),
        ev(user=KIM, anon=KIM_DEVICE, event="Signed In", props={"method": "carrier pigeon"}),  # quarantined
        '{"userId": "' + KIM + '", "type": "track", "event": ',  # not JSON, still Kim's
        ev(user=ALEX, anon=ALEX_DEVICE, event="Signed In", props={}),  # quarantined, Alex's
    ])


def _everything(warehouse) -> str:
    """The text of every row of every table except the erasure bookkeeping: what a reader could see."""
    con = connect(warehouse, read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables where table_schema in "
                             "('ingest', 'stitch', 'staging', 'marts', 'quality') and table_name not in "
                             "('suppression', 'erasure_audit')").fetchall()
        return "\n".join(str(con.execute(f'select * from "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


@pytest.fixture()
def warehouse(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    _landing(landing)
    ingest(w, landing)
    stitch_and_sessions(w)
    con = connect(w)
    try:  # downstream tables written by other layers: found by their columns, not by name
        con.execute("create table marts.person_facts as select person_id, count(*) n from stitch.events group by 1")
        con.execute("create table quality.user_notes as select distinct user_id, anonymous_id from ingest.events")
    finally:
        con.close()
    return landing, w


def test_forget_erases_every_identifier_of_the_person(warehouse):
    _, w = warehouse
    before = _everything(w)
    assert KIM in before and KIM_PHONE in before and keyed_hash(KIM_EMAIL) in before
    kim_pid = query(w, "select person_id from stitch.persons where identifier = ?", [KIM])[0][0]
    result = forget_person(w, KIM, plan())
    assert result["identifiers"] == 4  # user id, hashed email, two devices
    after = _everything(w)
    for ident in (KIM, KIM_DEVICE, KIM_PHONE, keyed_hash(KIM_EMAIL), kim_pid):
        assert ident not in after, ident
    # everyone else is untouched
    assert query(w, "select count(*) from ingest.events where user_id = ? or anonymous_id = ?", [ALEX, ALEX_DEVICE]) == [(2,)]
    assert query(w, "select count(*) from ingest.quarantine where raw like '%user-alex%'") == [(1,)]
    assert query(w, "select count(*) from marts.person_facts") == [(1,)]
    assert query(w, "select count(*) from staging.sessions") == [(1,)]
    expected = {"ingest.events": 4, "ingest.quarantine": 2, "marts.person_facts": 1}
    assert {k: v for k, v in result["tables"].items() if k in expected} == expected
    assert result["rows"] == sum(result["tables"].values())


def test_audit_row_and_suppression_hold_no_pii(warehouse):
    _, w = warehouse
    result = forget_person(w, KIM, plan())
    audit = query(w, "select * from ingest.erasure_audit")
    assert len(audit) == 1
    audit_id, _, id_hash, n_ids, n_rows, tables = audit[0]
    assert (audit_id, id_hash, n_ids, n_rows) == (result["audit_id"], keyed_hash(KIM), 4, result["rows"])
    assert "ingest.events" in tables
    bookkeeping = str(audit) + str(query(w, "select * from ingest.suppression"))
    for ident in (KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL):
        assert ident not in bookkeeping
    kinds = query(w, "select identifier_kind, count(*) from ingest.suppression group by 1 order by 1")
    assert kinds == [("anonymous_id", 2), ("email", 1), ("user_id", 1)]


def test_reingesting_the_same_files_does_not_bring_the_person_back(warehouse):
    landing, w = warehouse
    forget_person(w, KIM, plan())
    res = ingest(w, landing)
    # Kim's 4 valid lines and the invalid JSON one are suppressed; the line that is not JSON has no
    # id the ingest can read, so it is quarantined again (a known limit: forget again after re-ingesting)
    assert res.suppressed == 5
    assert query(w, "select count(*) from ingest.quarantine where contains(raw, ?)", [KIM]) == [(1,)]
    assert res.lines == res.loaded + res.quarantined + res.duplicates + res.consent_dropped + res.suppressed
    stitch_and_sessions(w)
    after = _everything(w)
    assert KIM_DEVICE not in after and KIM_PHONE not in after
    assert query(w, "select count(*) from ingest.events where user_id = ?", [KIM]) == [(0,)]


def test_forget_before_stitching_erases_the_user_id(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    _landing(landing)
    ingest(w, landing)
    result = forget_person(w, KIM, plan())
    assert result["identifiers"] == 1 and result["person_id"] is None
    assert query(w, "select count(*) from ingest.events where user_id = ?", [KIM]) == [(0,)]
    assert query(w, "select count(*) from ingest.quarantine where raw like ?", [f"%{KIM}%"]) == [(0,)]
    # the device's anonymous events were never linked to Kim here, so they stay
    assert query(w, "select count(*) from ingest.events where anonymous_id = ?", [KIM_PHONE]) == [(1,)]


def test_forget_unknown_user_changes_nothing_but_is_audited(warehouse):
    _, w = warehouse
    before = _everything(w)
    result = forget_person(w, "nobody", plan())
    assert result["rows"] == 0
    assert _everything(w) == before
    assert query(w, "select rows_deleted from ingest.erasure_audit") == [(0,)]


def test_cli_forget(warehouse):
    _, w = warehouse
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code == 0, out.output
    assert "erased" in out.output and "audit id" in out.output
    assert KIM not in _everything(w)

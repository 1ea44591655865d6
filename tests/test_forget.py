"""Right to erasure (issue 3, item 3): `forget_person` removes a person from every table, keeps a
PII-free audit row, and its suppression list keeps re-ingested files from bringing them back."""

import datetime as dt
import json
import os
import shutil
from pathlib import Path

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

from pipelines.privacy import ErasureError, forget_person
from pipelines.publish import building_path, run_lock
from pipelines.warehouse import connect, keyed_hash
from quality_checks.store import CheckOutcome, append
from trackplan.cli import app

T = dt.timedelta
KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL = "user-kim", "dev-kim-laptop", "dev-kim-phone", "kim@example.com"
ALEX, ALEX_DEVICE = "user-alex", "dev-alex"


def _landing(landing):
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(type="page", anon=KIM_DEVICE, at=BASE, props={"path": "/pricing"}),
            ev(type="identify", user=KIM, anon=KIM_DEVICE, at=BASE + T(minutes=1), traits={"email": KIM_EMAIL}),
            ev(user=KIM, anon=KIM_PHONE, at=BASE + T(hours=2)),
            ev(type="page", anon=KIM_PHONE, at=BASE + T(hours=2, minutes=1), props={"path": "/app"}),
            ev(type="page", anon=ALEX_DEVICE, at=BASE, props={"path": "/"}),
            ev(
                type="identify",
                user=ALEX,
                anon=ALEX_DEVICE,
                at=BASE + T(minutes=3),
                traits={"email": "alex@example.com"},
            ),
            ev(user=KIM, anon=KIM_DEVICE, event="Signed In", props={"method": "carrier pigeon"}),  # quarantined
            '{"userId": "' + KIM + '", "type": "track", "event": ',  # not JSON, still Kim's
            ev(user=ALEX, anon=ALEX_DEVICE, event="Signed In", props={}),  # quarantined, Alex's
            "support ticket from " + KIM_EMAIL + " (pasted log line)",  # not JSON: only Kim's plaintext e-mail
            ev(
                anon="dev-kim-tablet",
                props={"method": "carrier pigeon"},
                at=BASE + T(hours=3),  # quarantined
                context={"library": {"name": "test"}, "traits": {"email": KIM_EMAIL}},
            ),
        ],
    )


def _everything(warehouse) -> str:
    """The text of every row of every table except the erasure bookkeeping: what a reader could see."""
    con = connect(warehouse, read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in "
            "('ingest', 'stitch', 'staging', 'marts', 'quality') and table_name not in "
            "('suppression', 'erasure_audit')"
        ).fetchall()
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
    assert query(
        w, "select count(*) from ingest.events where user_id = ? or anonymous_id = ?", [ALEX, ALEX_DEVICE]
    ) == [(2,)]
    assert query(w, "select count(*) from ingest.quarantine where raw like '%user-alex%'") == [(1,)]
    assert query(w, "select count(*) from marts.person_facts") == [(1,)]
    assert query(w, "select count(*) from staging.sessions") == [(1,)]
    # quarantine: the invalid JSON one, the line that is not JSON, the pasted e-mail, the tablet's identify
    expected = {"ingest.events": 4, "ingest.quarantine": 4, "marts.person_facts": 1}
    assert {k: v for k, v in result["tables"].items() if k in expected} == expected
    assert result["rows"] == sum(result["tables"].values())


def _rows_per_table(warehouse) -> dict[str, int]:
    con = connect(warehouse, read_only=True)
    try:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()
        return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for (t,) in tables}
    finally:
        con.close()


def test_forget_leaves_no_byte_of_the_person_in_the_warehouse_file(warehouse):
    """A delete only marks rows: DuckDB keeps their bytes in the file's blocks until it rewrites them.
    After forget, the file itself, not only what SQL shows, holds none of the person's identifiers,
    a copy a killed run left beside it is gone, and every other row is still there."""
    _, w = warehouse
    shutil.copyfile(w, building_path(w))  # a killed run's copy holds the same rows
    secrets = [KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL, keyed_hash(KIM_EMAIL)]
    data = w.read_bytes()
    # the control: these tables are small enough that DuckDB stores the strings as they are
    assert [s for s in secrets if s.encode() not in data] == []
    before = _rows_per_table(w)
    result = forget_person(w, KIM, plan())
    data = w.read_bytes()
    assert [s for s in secrets if s.encode() in data] == []
    assert not building_path(w).exists() and not Path(f"{w}.compact").exists() and not Path(f"{w}.wal").exists()
    assert ALEX.encode() in data and ALEX_DEVICE.encode() in data
    after = _rows_per_table(w)
    added = {"ingest.suppression": 4, "ingest.erasure_audit": 1}
    assert after == {t: n - result["tables"].get(t, 0) + added.get(t, 0) for t, n in before.items()}


def test_forget_also_erases_a_runs_unpublished_copy(warehouse):
    """A run that found the warehouse changed under it keeps its own beside it: the same rows, which
    publishing it by hand would bring back. forget erases and rewrites it too, and says so."""
    _, w = warehouse
    kept = w.parent / f"{w.name}.unpublished-r1"
    shutil.copyfile(w, kept)
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[-1] == (
        f"also erased in {kept} (a run's warehouse kept unpublished beside it, rewritten the same way)"
    )
    for f in (w, kept):
        data = f.read_bytes()
        assert [s for s in (KIM, KIM_DEVICE, KIM_PHONE) if s.encode() in data] == [], f
        assert ALEX.encode() in data
    assert query(kept, "select count(*) from ingest.erasure_audit") == [(1,)]


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
    # Kim's 4 valid lines and her 4 rejected ones (found by their tokens: the user id, the plaintext
    # e-mail whose keyed hash is registered) are suppressed; Alex's 2 + 1 are not
    assert (res.suppressed, res.loaded, res.quarantined) == (8, 2, 1)
    assert query(
        w, "select count(*) from ingest.quarantine where contains(raw, ?) or contains(raw, ?)", [KIM, KIM_EMAIL]
    ) == [(0,)]
    assert res.lines == res.loaded + res.quarantined + res.duplicates + res.consent_dropped + res.suppressed
    stitch_and_sessions(w)
    after = _everything(w)
    for ident in (KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL, keyed_hash(KIM_EMAIL), "dev-kim-tablet"):
        assert ident not in after, ident
    assert query(w, "select count(*) from ingest.events where user_id = ?", [KIM]) == [(0,)]


def test_forget_before_stitching_erases_the_user_id(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    _landing(landing)
    ingest(w, landing)
    result = forget_person(w, KIM, plan())
    assert result["identifiers"] == 1 and result["person_id"] is None
    assert query(w, "select count(*) from ingest.events where user_id = ?", [KIM]) == [(0,)]
    assert query(w, "select count(*) from ingest.quarantine where raw like ?", [f"%{KIM}%"]) == [(0,)]
    # not stitched yet, so her e-mail is not known as hers: the pasted e-mail line stays (nothing linked it)
    assert query(w, "select count(*) from ingest.quarantine where raw like ?", [f"%{KIM_EMAIL}%"]) == [(2,)]
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


def test_cli_forget_many_ids_in_one_pass(warehouse):
    """A batch of requests in one call: each id erased with its own audit row, the file rewritten once
    without any of them; an id that matched nothing is said and makes the exit 1, the others still go."""
    _, w = warehouse
    out = CliRunner().invoke(
        app, ["forget", "--user-id", KIM, "--user-id", ALEX, "--user-id", "nobody", "--warehouse", str(w)]
    )
    assert out.exit_code == 1, out.output
    lines = out.output.splitlines()
    assert len(lines) == 4 and lines[3].startswith(f"rewrote {w} without the deleted rows' bytes (")
    assert lines[0].startswith(f"user id {KIM!r}: erased ") and lines[1].startswith(f"user id {ALEX!r}: erased ")
    assert lines[2].startswith("nothing matched user id 'nobody'")
    assert query(w, "select count(*) from ingest.erasure_audit") == [(3,)]
    assert query(w, "select count(*) from ingest.events") == [(0,)]
    data = w.read_bytes()
    assert [s for s in (KIM, KIM_PHONE, ALEX, ALEX_DEVICE) if s.encode() in data] == []


def test_forget_says_in_one_line_when_the_file_cannot_be_rewritten(warehouse, monkeypatch):
    """The tables are erased in their transaction; a rewrite that fails (here: no room for the new
    file) is one line naming the warehouse and what to do, and running the same forget again finishes it."""
    from pipelines import publish

    _, w = warehouse
    real = publish.os.replace

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish.os, "replace", full)
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code != 0 and out.output.count("\n") == 1, out.output
    assert out.output.startswith(f"trackplan: {w}: erased from every table (audit ids ")
    assert "No space left on device; run the same forget again" in out.output
    assert KIM not in _everything(w) and KIM.encode() in w.read_bytes()
    assert not os.path.exists(f"{w}.compact")
    monkeypatch.setattr(publish.os, "replace", real)
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code == 1 and out.output.startswith("nothing matched")  # (already erased)
    assert KIM.encode() not in w.read_bytes()


def test_check_results_keep_their_verdicts_without_the_persons_samples(warehouse):
    """A failed gate keeps sample rows in quality.check_results' metadata: Kim's go, Alex's and the
    verdict stay, and the metadata says how many were erased."""
    _, w = warehouse
    con = connect(w)
    try:
        samples = [
            dict(zip(("message_id", "user_id", "anonymous_id", "traits"), map(str, r), strict=True))
            for r in con.execute(
                "select message_id, user_id, anonymous_id, traits from ingest.events "
                "order by user_id nulls first, message_id"
            ).fetchall()
        ]
        append(
            con,
            [
                CheckOutcome("not_null", "ingest.events", passed=False, metadata={"samples": samples}),
                CheckOutcome("enum", "ingest.events", passed=True, metadata={"rows": 6}),
            ],
            run_id="r1",
        )
    finally:
        con.close()
    assert KIM_PHONE in str(query(w, "select metadata from quality.check_results"))
    result = forget_person(w, KIM, plan())
    rows = query(w, "select check_name, passed, metadata from quality.check_results order by check_name")
    assert [(c, p) for c, p, _ in rows] == [("enum", True), ("not_null", False)]
    meta = json.loads(rows[1][2])
    kept = [s["anonymous_id"] for s in meta["samples"]]
    assert sorted(kept) == [ALEX_DEVICE, ALEX_DEVICE] and meta["erased_samples"] == 4
    assert result["tables"]["quality.check_results (sample rows)"] == 4
    for ident in (KIM, KIM_DEVICE, KIM_PHONE, keyed_hash(KIM_EMAIL)):
        assert ident not in str(rows), ident


def test_forget_refuses_a_missing_warehouse_and_creates_none(tmp_path):
    missing = tmp_path / "typo.duckdb"
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(missing)])
    assert out.exit_code == 2
    assert out.output == f"trackplan: {missing}: no such warehouse (nothing erased, nothing created)\n"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ErasureError):
        forget_person(missing, KIM, plan())


@pytest.mark.parametrize("uid", ["", "   "])
def test_forget_refuses_an_empty_id(warehouse, uid):
    _, w = warehouse
    before = _everything(w)
    out = CliRunner().invoke(app, ["forget", "--user-id", uid, "--warehouse", str(w)])
    assert out.exit_code == 2 and out.output == "trackplan: --user-id: empty; give the user id to erase\n"
    assert _everything(w) == before and query(w, "select count(*) from ingest.erasure_audit") == [(0,)]


def test_cli_forget_says_when_nothing_matched_and_exits_1(warehouse):
    _, w = warehouse
    out = CliRunner().invoke(app, ["forget", "--user-id", "user-kym", "--warehouse", str(w)])
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0].startswith("nothing matched user id 'user-kym': 0 rows erased") and len(lines) == 2
    assert lines[1].startswith(f"rewrote {w} without the deleted rows' bytes (")
    # registered all the same, as any kind (and as the hash an e-mail is stored as): a later ingest
    # of that id drops it
    got = query(w, "select identifier_hash from ingest.suppression order by 1")
    assert sorted(got) == sorted([(keyed_hash("user-kym"),), (keyed_hash(keyed_hash("user-kym")),)])


def test_forget_erases_the_engine_it_is_told(warehouse, monkeypatch):
    """TRACKPLAN_ENGINE picks the engine forget erases (the Spark one: tests/test_spark_forget.py);
    --engine duckdb erases the warehouse file whatever the environment says, and an unknown engine is
    one line that erases nothing."""
    _, w = warehouse
    monkeypatch.setenv("TRACKPLAN_ENGINE", "spark")
    before = w.read_bytes()
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w), "--engine", "duckbd"])
    assert out.exit_code == 2 and "duckbd: expected duckdb or spark" in out.output and w.read_bytes() == before
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w), "--engine", "duckdb"])
    assert out.exit_code == 0, out.output
    assert KIM not in _everything(w)


def test_forget_waits_for_no_run_it_would_be_undone_by(warehouse):
    """A running `trackplan run` publishes its copy at the end: a forget in between would be lost, so
    forget is refused while a run holds the lock, naming the run."""
    _, w = warehouse
    with run_lock(w, "run"):
        out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code == 3
    assert out.output.startswith(f"trackplan: {w}: locked by trackplan run (PID {os.getpid()}) since ")
    assert out.output.count("\n") == 1 and KIM in _everything(w)


def test_forget_during_a_first_run_names_the_run(tmp_path):
    """The warehouse does not exist yet while its first run builds it (beside it, published at the
    end): forget says the run holds it, as for any run, not that there is no such warehouse."""
    w = tmp_path / "w.duckdb"
    with run_lock(w, "run"):
        out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.exit_code == 3 and out.output.count("\n") == 1
    assert out.output.startswith(f"trackplan: {w}: locked by trackplan run (PID {os.getpid()}) since ")
    # no run (a lock file left by a finished one): no such warehouse, nothing created
    out = CliRunner().invoke(app, ["forget", "--user-id", KIM, "--warehouse", str(w)])
    assert out.output == f"trackplan: {w}: no such warehouse (nothing erased, nothing created)\n"
    assert not w.exists()


def test_erasure_survives_a_full_rerun_of_the_pipeline(tmp_path):
    """`trackplan run`, forget, `trackplan run` again over the same landing files: no table of the
    published warehouse (events, quarantine, stitch, sessions, marts, check history) holds Kim again."""
    from pipelines.runner import run_pipeline
    from tracking_plan.loader import default_plan_dir

    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    _landing(landing)
    run_pipeline(default_plan_dir(), landing, w)
    assert KIM in _everything(w) and KIM_EMAIL in _everything(w)  # the pasted e-mail line is quarantined
    forget_person(w, KIM, plan())
    run_pipeline(default_plan_dir(), landing, w)
    after = _everything(w)
    for ident in (KIM, KIM_DEVICE, KIM_PHONE, KIM_EMAIL, keyed_hash(KIM_EMAIL), "dev-kim-tablet"):
        assert ident not in after, ident
    assert ALEX in after
    assert query(w, "select sum(suppressed) from ingest.ingestion_log") == [(8,)]
    assert query(w, "select count(*), count(distinct run_id) from ingest.run_log") == [(2, 2)]


def test_a_numeric_user_id_takes_its_own_lines_not_every_line_with_that_number(tmp_path):
    """Forgetting user 1 took every quarantined line holding a 1 anywhere (`"position": 1`), and the
    register then suppressed such lines in every later ingest: a JSON line is matched on its string
    values and its envelope ids, not on its keys or other numbers. A line that is not JSON is still
    matched on every word (nothing tells an id from the rest)."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    bad = {"revenue": -5, "currency": "EUR", "order_id": "o_1", "plan": "team", "billing_period": "monthly"}
    lines = [
        ev(event="Order Completed", user="1", anon=None, props=bad),  # user 1's own (invalid: revenue < 0)
        {**ev(event="Order Completed", anon=None, props=bad), "userId": 1},  # user 1 as a JSON integer
        ev(event="Order Completed", user="usr_2", anon=None, props={**bad, "position": 1}),  # someone else's
        "not json, from 1",  # not JSON: every word
    ]
    write_lines(landing, DAY, "e.jsonl", lines)
    ingest(w, landing)
    assert query(w, "select count(*) from ingest.quarantine") == [(4,)]
    forget_person(w, "1", plan())
    left = [r[0] for r in query(w, "select raw from ingest.quarantine")]
    assert len(left) == 1 and '"usr_2"' in left[0]
    # and the register does not suppress that line when it comes again
    ingest(w, landing)
    assert query(w, "select count(*) from ingest.quarantine where raw like '%usr_2%'") == [(1,)]


@pytest.mark.parametrize("given", [KIM_PHONE, KIM_DEVICE, KIM_EMAIL, "hashed e-mail"])
def test_forget_by_any_identifier_erases_the_same_person(tmp_path, warehouse, given):
    """A request may name the person by any identifier they were stitched with (a device id, the
    plaintext e-mail or the hash it is stored as): the same person, the same rows as by the user id."""
    _, w = warehouse
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(w, copy)
    by_user = forget_person(copy, KIM, plan())
    result = forget_person(w, keyed_hash(KIM_EMAIL) if given == "hashed e-mail" else given, plan())
    assert result["person_id"] == by_user["person_id"] is not None
    assert (result["identifiers"], result["tables"]) == (by_user["identifiers"], by_user["tables"]) and result["rows"]
    assert _everything(w) == _everything(copy)


def test_forget_of_an_alias_old_id_erases_the_whole_person(tmp_path):
    """An id seen only as an alias's previousId is stitched as a device id: forgetting it takes the
    person it was merged into, from stitch.persons and identity_graph too (not at the next run)."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(anon="old-device", at=BASE),
            ev(type="alias", anon=None, user=KIM, previousId="legacy-id", at=BASE + T(minutes=1)),
            ev(user=KIM, anon="old-device", at=BASE + T(minutes=2)),
            ev(user=ALEX, anon=ALEX_DEVICE, at=BASE + T(minutes=3)),
        ],
    )
    ingest(w, landing)
    stitch_and_sessions(w)
    assert query(w, "select identifier_kind from stitch.persons where identifier = 'legacy-id'") == [("anonymous_id",)]
    result = forget_person(w, "legacy-id", plan())
    assert result["person_id"] is not None and result["identifiers"] == 3  # legacy-id, Kim, her device
    after = _everything(w)
    for ident in ("legacy-id", KIM, "old-device", result["person_id"]):
        assert ident not in after, ident
    assert query(w, "select distinct identifier from stitch.persons order by 1") == [(ALEX_DEVICE,), (ALEX,)]


def test_forget_before_stitching_finds_a_device_id_or_an_e_mail(tmp_path):
    """Not stitched yet: the value is looked for as every identifier kind (the e-mail as the hash it
    is stored as too), as the erasure register is read at the next ingest; one identifier reported."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    _landing(landing)
    ingest(w, landing)
    phone = forget_person(w, KIM_PHONE, plan())
    assert phone["identifiers"] == 1 and phone["person_id"] is None and phone["tables"]["ingest.events"] == 2
    assert query(w, "select count(*) from ingest.events where anonymous_id = ?", [KIM_PHONE]) == [(0,)]
    email = forget_person(w, KIM_EMAIL, plan())
    # her identify (traits.email stored hashed), the pasted log line and the tablet's quarantined line
    assert email["tables"] == {"ingest.events": 1, "ingest.quarantine": 2}
    assert keyed_hash(KIM_EMAIL) not in _everything(w) and KIM_EMAIL not in _everything(w)


def test_check_metadata_is_scrubbed_by_value_not_by_word():
    """A sample row is the person's when one of its values is their identifier (a raw line by the
    raw-line rule, a JSON text by its string values and envelope ids); the check's own SQL is no one's
    even where it says `> 0` (forgetting user "0" once erased it)."""
    from pipelines.privacy import scrub_metadata

    meta = {
        "sql": "select count(*) from ingest.events where not (x > 0)",
        "samples": [
            {"user_id": "0", "event_name": "Signed In"},
            {"user_id": "7", "traits": json.dumps({"position": 0, "name": "0"})},
            {"raw": json.dumps({"userId": 0, "type": "track"})},
            {"raw": json.dumps({"userId": "7", "properties": {"position": 0}})},
            {"raw": "cut off line userId 0 position"},
            {"user_id": "7", "failure_case": 0},
        ],
    }
    doc, n = scrub_metadata(json.dumps(meta), {"0"}, {})
    got = json.loads(doc)
    assert got["sql"] == meta["sql"] and n == 4 and got["erased_samples"] == 4
    assert got["samples"] == [meta["samples"][3], meta["samples"][5]]
    assert scrub_metadata(json.dumps(meta), {"8"}, {}) == (None, 0)


RAW_LINES = [
    '{"type": "track", "event": "Signed In", "userId": "track", "properties": {"position": 1}}',
    '{"type":"track","event":"track","anonymousId":"dev-1","properties":{"tags":["a","track"]}}',
    '{"type": "identify", "userId": 42, "traits": {"email": "kim@example.com", "n": 0}}',
    '{"type": "alias", "previousId": "old \\"quoted\\" id", "userId": "new", "messageId": "m-1"}',
    '  {"type": "page", "name": "Home", "anonymousId": null, "properties": {"path": "/"}}',
    '{"userId": "kim", "type": "track", "event": ',
    "support ticket from kim@example.com (pasted: position 1)",
    '["not", "an", "object"]',
    '{"userId": "kim", "properties": {"price": NaN, "cap": -Infinity}}',  # (JSON to both parsers)
    "",
]


def test_raw_line_tokens_are_the_same_in_sql_and_in_python():
    """The warehouse deletes quarantined lines and the ingest suppresses rejected lines by the SQL
    tokens (_tokens_sql); check metadata is scrubbed by their Python twin (line_tokens): one rule."""
    from pipelines.privacy import _tokens_sql, line_tokens

    con = connect(":memory:")
    try:
        for line in RAW_LINES:
            (sql,) = con.execute(
                f"select list_distinct({_tokens_sql('l')}) from (select ?::varchar as l)", [line]
            ).fetchone()
            assert {t for t in sql if t} == line_tokens(line) - {""}, line
    finally:
        con.close()
    # the envelope's fixed fields are never anyone's id; its ids are, numbers included
    assert line_tokens(RAW_LINES[0]) == {"track"}  # (the user id, not the type)
    assert line_tokens(RAW_LINES[1]) == {"a", "dev-1"}  # (a property value equal to the type's goes with it)
    assert line_tokens(RAW_LINES[2]) == {"42", "kim@example.com"}
    assert "1" in line_tokens(RAW_LINES[6]) and "1" not in line_tokens(RAW_LINES[0])


def _daily_runs_then_forget_kim(tmp_path, landing, days, before: str = "select 1"):
    """Daily runs of `days` into a warehouse, then Kim forgotten: (that warehouse, a full build of the
    same landing with its erasure register from the start, the rows of the query `before` just
    before the erasure)."""
    from support.incremental import daily_run, full_build

    from models.staging.plan_tables import write_plan_tables
    from tracking_plan.loader import default_plan_dir

    w = tmp_path / "inc.duckdb"
    con = connect(w)
    write_plan_tables(con, plan())
    for day in days:
        daily_run(con, plan(), default_plan_dir(), landing, day.date().isoformat())
    seen = con.execute(before).fetchall()
    con.close()
    forget_person(w, KIM, plan())
    con = connect(w)
    return con, full_build(tmp_path / "full.duckdb", plan(), landing, register_of=con), seen


def test_no_aggregate_still_counts_an_erased_person(tmp_path):
    """The marts kept per person (issue 18's incremental parts) re-aggregate only the cohorts of the
    persons whose events changed: an erased person, alone in a signup week, stayed in
    marts.activation_cohorts and marts.retention (a cohort of one: that person's own behaviour) until
    some other change in that week. Right after `forget`, and after the next daily run, every mart
    equals a full build that never loaded the person (the same erasure register from the start)."""
    from support.incremental import daily_run, difference

    from tracking_plan.loader import default_plan_dir

    signup = {"signup_method": "email", "plan": "free", "workspace_id": "ws_f1"}
    task = {"task_id": "tsk_f1", "project_id": "prj_f1"}
    landing = tmp_path / "landing"
    d0, d1 = BASE - T(days=7), BASE  # two signup weeks
    for who, at in ((KIM, d0), (ALEX, d1)):
        write_lines(
            landing,
            at.date().isoformat(),
            f"{who}.jsonl",
            [
                ev(event="Account Created", user=who, anon=f"dev-{who}", at=at, props=signup),
                ev(event="Task Completed", user=who, anon=f"dev-{who}", at=at + T(hours=1), props=task),
            ],
        )
    weeks = "select count(*) from marts.activation_cohorts"
    con, full, seen = _daily_runs_then_forget_kim(tmp_path, landing, (d0, d1), before=weeks)
    assert seen == [(2,)]
    marts = ("marts.activation_cohorts", "marts.retention", "marts.funnel_conversion", "marts.customer_value")
    try:
        assert con.execute(weeks).fetchall() == [(1,)]  # at once: Kim's week is gone
        assert [difference(con, full, t) for t in marts] == [None] * len(marts)
        daily_run(con, plan(), default_plan_dir(), landing, None)
        assert [difference(con, full, t) for t in marts] == [None] * len(marts)
    finally:
        con.close()
        full.close()


def test_a_user_who_shared_the_erased_persons_device_is_stitched_as_a_full_build_would(tmp_path):
    """Sam signed in once on the laptop that became Kim's (Kim identified on it later): erasing Kim
    erases the laptop, so Sam's one event, sent from it, goes too, and a full build never loads it (its
    line carries an erased id). Sam's person and link to Sam's e-mail stayed in the stitch with no
    event behind them: the erasure took the laptop's rows from stitch.partition_keys, where the next
    stitch looks for what went away. Now Sam's id stays there, and the next daily run gives the stitch
    and the sessions a full build with the same register gives."""
    from support.incremental import daily_run, difference

    from tracking_plan.loader import default_plan_dir

    landing, sam = tmp_path / "landing", "user-sam"
    d0, d1 = BASE, BASE + T(days=1)
    identify = lambda who, email, at: ev(type="identify", user=who, anon=KIM_DEVICE, at=at, traits={"email": email})
    write_lines(landing, d0.date().isoformat(), "a.jsonl", [identify(sam, "sam@example.com", d0)])
    write_lines(
        landing,
        d1.date().isoformat(),
        "b.jsonl",
        [identify(KIM, KIM_EMAIL, d1), ev(user=KIM, anon=KIM_DEVICE, at=d1 + T(minutes=5))],
    )
    con, full, _ = _daily_runs_then_forget_kim(tmp_path, landing, (d0, d1))
    try:
        daily_run(con, plan(), default_plan_dir(), landing, None)
        tables = ("stitch.identity_graph", "stitch.persons", "stitch.events", "staging.sessions")
        assert [difference(con, full, t) for t in tables] == [None] * len(tables)
        assert con.execute("select count(*) from stitch.persons where identifier = ?", [sam]).fetchall() == [(0,)]
    finally:
        con.close()
        full.close()

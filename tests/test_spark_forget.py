"""Right to erasure on the Spark engine (`trackplan forget --engine spark`): a person leaves every Parquet
layer a Spark run wrote, in one commit, with the same rows per table as the DuckDB warehouse's forget;
a re-ingest of the same landing zone keeps them out; a failure before the commit changes nothing and
one after it is finished by the next ingest. The oracle is independent of the erasure's SQL: every
value of every Parquet file under the root (old files and staging included) read back as text and
searched for the person's identifiers as whole tokens."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from pathlib import Path

import pytest

from pipelines.spark.engine import SparkEngine  # (module level: the probe asset's annotation names it)
from pipelines.spark.session import unavailable

WHY = unavailable()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"Spark engine: {WHY}"), pytest.mark.xdist_group("spark")]


def _pattern(tokens: set[str]) -> str:
    """RE2: any of `tokens` as a whole token (not inside a longer id: usr_1 is not in usr_12)."""
    return r"(^|[^A-Za-z0-9_.@-])(" + "|".join(re.escape(t) for t in sorted(tokens)) + r")([^A-Za-z0-9_.@-]|$)"


def occurrences(root: Path, tokens: set[str]) -> dict[str, int]:
    """{parquet file under root: rows holding one of `tokens` in any column}, over every file (none for
    no tokens: an empty alternation would match every row)."""
    import duckdb

    if not tokens:
        return {}

    con = duckdb.connect()
    pat = _pattern(tokens)
    out = {}
    for f in sorted(root.rglob("*.parquet")):
        n = con.execute(
            "select count(*) from read_parquet(?, hive_partitioning = false) t where regexp_matches(to_json(t)::varchar, ?)",
            [str(f), pat],
        ).fetchall()[0][0]
        if n:
            out[str(f.relative_to(root))] = n
    return out


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def landing_events(landing: Path) -> list[bytes]:
    """Every event of the landing files, from the bytes: a line of a .jsonl or .jsonl.gz, an element of
    a batch file's "batch"."""
    out = []
    for f in sorted(landing.glob("date=*/*")):
        data = f.read_bytes()
        if f.name.endswith(".jsonl.gz"):
            out += gzip.decompress(data).splitlines()
        elif f.name.endswith(".jsonl"):
            out += data.splitlines()
        elif f.name.endswith(".json"):
            out += [json.dumps(e).encode() for e in json.loads(data)["batch"]]
        else:
            raise AssertionError(f"{f}: a landing file the oracle cannot read")
    return out


def landing_lines(landing: Path, tokens: set[str]) -> int:
    """Events of the landing files holding one of `tokens`."""
    rx = re.compile(_pattern(tokens).encode())
    return sum(1 for e in landing_events(landing) if rx.search(e))


def test_forget_on_spark_erases_a_person_from_every_layer_and_keeps_them_out(spark, tmp_path, monkeypatch):
    import dagster as dg
    import duckdb
    from rich.console import Console
    from typer.testing import CliRunner

    from pipelines.privacy import forget_people
    from pipelines.publish import RunError
    from pipelines.runner import run_pipeline
    from pipelines.spark import privacy as spark_privacy
    from pipelines.spark import swap
    from pipelines.spark.assets import append_check_results
    from pipelines.spark.ingest import ingest_landing
    from pipelines.spark.run import run_spark_pipeline
    from pipelines.warehouse import keyed_hash
    from quality_checks.store import CheckOutcome
    from tracking_plan.loader import default_plan_dir, load_plan
    from trackplan.cli import app
    from trackplan.demo.generate import generate

    plan = load_plan()
    landing, root = tmp_path / "landing", tmp_path / "layers"
    generate(landing, days=4, users=30, seed=11, bug_rate=0.08, plan=plan)
    # the first person: the user id of the most identified events (any seed has one), with a line of
    # theirs planted that is not JSON (quarantined; matched on its raw text, the hardest case)
    seen: dict[str, int] = {}
    for e in landing_events(landing):
        try:
            d = json.loads(e)
        except ValueError:
            continue  # (a planted bug)
        if isinstance(d, dict) and isinstance(d.get("userId"), str) and d.get("anonymousId"):
            seen[d["userId"]] = seen.get(d["userId"], 0) + 1
    a = max(sorted(seen), key=seen.get)
    day = min(landing.glob("date=*"))
    (day / "planted.jsonl").write_text(f'{{"type":"track","event":"Task Created","userId":"{a}","properties":{{\n')
    out = io.StringIO()
    assert run_spark_pipeline(
        default_plan_dir(),
        str(landing),
        str(root),
        console=Console(file=out, width=200),
        instance=dg.DagsterInstance.ephemeral(),
    ), out.getvalue()

    # two more people: user ids stitched to several identifiers
    con = duckdb.connect()
    layer = lambda t: f"read_parquet('{root}/{t}/**/*.parquet', hive_partitioning = false)"
    users = [a] + [
        u
        for (u,) in con.execute(
            f"""
select p.identifier from {layer("stitch/persons")} p
where p.identifier_kind = 'user_id' and p.identifier <> ?
  and (select count(*) from {layer("stitch/persons")} q where q.person_id = p.person_id) >= 2
order by p.identifier limit 2""",
            [a],
        ).fetchall()
    ]
    assert len(users) == 3
    people = {}
    for u in users:
        ids = {
            v
            for (v,) in con.execute(
                f"select identifier from {layer('stitch/persons')} where person_id = "
                f"(select person_id from {layer('stitch/persons')} where identifier = ?)",
                [u],
            ).fetchall()
        }
        # the plaintext e-mail the landing carries for the hashed e-mail identifier
        emails = {
            m.decode()
            for e in landing_events(landing)
            for m in re.findall(rb'"email": ?"([^"]+)"', e)
            if keyed_hash(m.decode()) in ids
        }
        people[u] = ids | emails
    b, c = users[1:]
    before = occurrences(root, people[a])
    kinds = {f.split("/")[0] + "/" + f.split("/")[1] for f in before}
    assert {"ingest/events", "ingest/quarantine", "stitch/events", "stitch/persons", "staging/sessions"} <= kinds

    # a failed gate kept sample rows in quality.check_results: the first person's go, the verdict stays
    samples = [
        {"user_id": u, "message_id": m}
        for u in (a, b)
        for (m,) in con.execute(
            f"select message_id from {layer('stitch/events')} where user_id = ? order by message_id limit 3", [u]
        ).fetchall()
    ]
    # (up to 3 each: a user of a small draw may have fewer events; seed shift 150000's second had 2)
    n_a, n_b = (sum(s["user_id"] == u for s in samples) for u in (a, b))
    assert n_a > 0 and n_b > 0
    checks = con.execute(f"select count(*) from {layer('quality/check_results')}").fetchall()[0][0]
    append_check_results(
        spark,
        str(root),
        [CheckOutcome("not_null", "ingest.events", passed=False, metadata={"samples": samples})],
        "r-test",
    )

    # 1. a failure before the commit (writing the audit) changes no file and leaves no staging
    files = listing(root)
    real = spark_privacy._appended

    def fail_on_audit(spark_, fs, root_, staging, table, rows):
        if table == "ingest.erasure_audit":
            raise OSError("No space left on device")
        return real(spark_, fs, root_, staging, table, rows)

    monkeypatch.setattr(spark_privacy, "_appended", fail_on_audit)
    with pytest.raises(OSError, match="No space left"):
        spark_privacy.forget_on_spark(spark, str(root), [a], plan)
    monkeypatch.undo()
    assert listing(root) == files
    # one writer at a time: a forget is refused while a Spark run holds the root, and a run while a
    # forget does, each in one line naming the holder (a run that read the events before an erasure
    # would write the person back)
    with swap.root_lock(str(root), "run --engine spark"):
        res = CliRunner().invoke(app, ["forget", "--user-id", a, "--engine", "spark", "--spark-root", str(root)])
    assert res.exit_code == 3 and res.output.count("\n") == 1, res.output
    assert res.output.startswith(
        f"trackplan: {root}: locked by trackplan run --engine spark (PID {os.getpid()}) since "
    )
    with swap.root_lock(str(root), "forget"), pytest.raises(RunError, match="locked by trackplan forget"):
        run_spark_pipeline(default_plan_dir(), str(landing), str(root), console=Console(file=io.StringIO()))
    assert listing(root) == files

    # 2. the first person: gone from every file under the root, with the rows per table of the DuckDB
    # warehouse's forget on the same landing zone
    (got,) = spark_privacy.forget_on_spark(spark, str(root), [a], plan)["results"]
    assert occurrences(root, people[a]) == {}
    assert occurrences(root, people[b])  # (someone else is still there)
    assert not list((root / "_staging").glob("*"))
    w = tmp_path / "duck" / "w.duckdb"
    w.parent.mkdir()
    assert run_pipeline(
        default_plan_dir(), landing, w, console=Console(file=io.StringIO()), instance=dg.DagsterInstance.ephemeral()
    )
    (duck,) = forget_people(w, [a], plan)
    for t in ("ingest.events", "ingest.quarantine", "stitch.persons", "stitch.identity_graph", "staging.sessions"):
        assert got["tables"].get(t) == duck["tables"].get(t) > 0, (t, got["tables"], duck["tables"])
    common = set(got["tables"]) & set(duck["tables"])
    assert {t: got["tables"][t] for t in common} == {t: duck["tables"][t] for t in common}
    assert got["person_id"] == duck["person_id"] and got["identifiers"] == duck["identifiers"]
    assert got["tables"]["quality.check_results (sample rows)"] == n_a
    (meta,) = con.execute(f"select metadata from {layer('quality/check_results')} where run_id = 'r-test'").fetchone()
    meta = json.loads(meta)
    assert [x["user_id"] for x in meta["samples"]] == [b] * n_b and meta["erased_samples"] == n_a
    assert con.execute(f"select count(*) from {layer('quality/check_results')}").fetchall()[0][0] == checks + 1

    # 3. the CLI (TRACKPLAN_ENGINE=spark): the second person
    monkeypatch.setenv("TRACKPLAN_ENGINE", "spark")
    monkeypatch.setenv("TRACKPLAN_SPARK_ROOT", str(root))
    # named by another of their identifiers (a device id, the e-mail): the same person
    b_named = min(people[b] - {b})
    res = CliRunner().invoke(app, ["forget", "--user-id", b_named])
    monkeypatch.delenv("TRACKPLAN_ENGINE")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert re.fullmatch(r"erased [0-9,]+ rows of \d+ identifiers; audit id [0-9a-f]{32}", lines[0]), lines
    assert lines[1].startswith("rewrote ") and f"folders of {root} in one commit" in lines[1] and len(lines) == 2
    # the audit keeps the keyed hash of the identifier it was asked for (no PII): for an e-mail that is
    # also the hashed e-mail identifier the layers stored, and found there only
    audited = {keyed_hash(b_named)} & people[b]
    assert occurrences(root, people[b] - audited) == {}
    assert {f.split("/")[1] for f in occurrences(root, audited)} <= {"erasure_audit"}
    audit = con.execute(f"select identifier_hash, rows_deleted from {layer('ingest/erasure_audit')}").fetchall()
    assert sorted(audit) == sorted(
        [(keyed_hash(a), got["rows"]), (keyed_hash(b_named), int(lines[0].split()[1].replace(",", "")))]
    )

    # 4. a failure after the commit (in the swap): the next ingest finishes it before it reads anything
    monkeypatch.setattr(swap, "apply", lambda fs, staging: (_ for _ in ()).throw(OSError("connection reset")))
    with pytest.raises(OSError, match="connection reset"):
        spark_privacy.forget_on_spark(spark, str(root), [c], plan)
    monkeypatch.undo()
    assert occurrences(root, people[c])  # (not swapped yet)
    results = ingest_landing(spark, plan, str(landing), str(root))
    everyone = people[a] | people[b] | people[c]
    audited = {keyed_hash(u) for u in (a, b_named, c)} & everyone
    assert {f: n for f, n in occurrences(root, everyone - audited).items() if f.startswith("ingest/")} == {}
    assert {f.split("/")[1] for f in occurrences(root, audited)} <= {"erasure_audit"}
    # every landed line of theirs was read again and suppressed, counted from the landing's bytes
    assert sum(r.suppressed for r in results) == landing_lines(landing, everyone) > 0
    assert not list((root / "_staging").glob("*"))


def test_forget_on_spark_says_in_one_line_where_there_are_no_layers(spark, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from trackplan.cli import app

    root = tmp_path / "nowhere"
    res = CliRunner().invoke(app, ["forget", "--user-id", "u1", "--engine", "spark", "--spark-root", str(root)])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert res.output == f"trackplan: {root}: no Spark layers there (nothing erased, nothing created)\n"
    assert not root.exists()


def test_a_dagster_run_on_the_spark_engine_holds_the_root(tmp_path):
    """Any Dagster run with the Spark engine resource (the UI, a schedule, `dg.materialize`), not only
    `trackplan run`, holds the root's lock while it runs, and lets go when it ends."""
    import dagster as dg

    from pipelines.publish import RunError
    from pipelines.spark import swap

    root = str(tmp_path / "layers")
    seen = {}

    @dg.asset
    def probe(spark_engine: SparkEngine) -> None:
        try:
            with swap.root_lock(root, "forget"):
                seen["forget"] = "ran"
        except RunError as exc:
            seen["forget"] = str(exc)

    assert dg.materialize([probe], resources={"spark_engine": SparkEngine(root=root)}).success
    assert seen["forget"].startswith(f"{root}: locked by trackplan run --engine spark (PID {os.getpid()}) since ")
    with swap.root_lock(root, "forget"):  # (released with the run)
        pass

"""Reading events where they already are (issue 23): an S3 API on 127.0.0.1 (moto's server, started
here on a free port), Segment's S3 destination layout, Snowplow's enriched TSV, the manifest that makes
`trackplan run` incremental, and the one-line errors of a missing bucket or a refused listing.

The Snowplow fixture is built from Snowplow's own field list: the ENRICHED_EVENT_FIELD_TYPES of
snowplow-analytics-sdk (PyPI, Snowplow's Python analytics SDK), not from ours, and every line is also
parsed by that SDK's `transform` (an independent check that the fixture is a real enriched event).
"""

from __future__ import annotations

import datetime as dt
import gzip
import socket
import uuid

import orjson
import pytest
from support.pipeline import BASE, ev, ingest_all, iso, query

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
sdk = pytest.importorskip("snowplow_analytics_sdk.event_transformer")

from pipelines.ingest.load import ingest_partitions
from pipelines.warehouse import connect
from tracking_plan.landing import LandingError, scan

SDK_FIELDS = [name for name, _ in sdk.ENRICHED_EVENT_FIELD_TYPES]  # Snowplow's order, 131 fields
DAY = BASE.date()
DAY_MS = int(dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def s3_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the local S3 API; credentials and endpoint through the standard variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"tp-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def put(client, bucket: str, key: str, lines: list, gz: bool = True) -> str:
    body = b"".join((orjson.dumps(x) if isinstance(x, dict) else x.encode()) + b"\n" for x in lines)
    return client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if gz else body)["ETag"]


# --- Segment's S3 destination ---------------------------------------------------------------------


def test_segment_s3_layout_every_object_in_the_ledger_and_rewrite_replaces_the_partition(s3, tmp_path):
    client, bucket = s3
    src = f"segment-logs/src-1/{DAY_MS}"
    put(
        client,
        bucket,
        f"{src}/1700000000000.a1.gz",
        [ev(mid=f"s{i}", at=BASE + dt.timedelta(minutes=i)) for i in range(3)],
    )
    put(client, bucket, f"{src}/1700000000001.a2.gz", [ev(mid="s0"), '{"broken', ev(mid="s3")])  # dup + bad
    next_day = DAY_MS + 86_400_000
    put(client, bucket, f"segment-logs/src-1/{next_day}/b.gz", [ev(mid="n1", at=BASE + dt.timedelta(days=1))])
    put(client, bucket, "segment-logs/src-1/README.txt", ["not an event"], gz=False)  # no received-day folder
    landing = f"s3://{bucket}"
    wh = tmp_path / "wh.duckdb"

    entries = scan(landing)  # detected: segment-s3
    assert {e.partition for e in entries} == {DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat(), None}
    days, results = ingest_all(wh, landing)
    assert days == [DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()]
    assert [(r.lines, r.loaded, r.quarantined, r.duplicates) for r in results] == [(6, 4, 1, 1), (1, 1, 0, 0)]
    log = query(wh, "select source_file, status, skip_reason, lines from ingest.ingestion_log order by source_file")
    assert len(log) == 4  # every object: three read, one skipped with its reason
    assert all(r[0].startswith(f"s3://{bucket}/segment-logs/") for r in log)
    skipped = [r for r in log if r[1] == "skipped"]
    assert len(skipped) == 1 and skipped[0][0].endswith("README.txt")
    assert skipped[0][2].startswith("not in a received-day folder")
    assert query(wh, "select raw from ingest.quarantine") == [('{"broken',)]

    # nothing changed: the manifest says so, nothing is read
    assert ingest_all(wh, landing, only_changed=True)[0] == []
    # a rewritten object (new ETag): only its partition is read again, and replaced
    put(client, bucket, f"{src}/1700000000001.a2.gz", [ev(mid="s9")])
    days, results = ingest_all(wh, landing, only_changed=True)
    assert days == [DAY.isoformat()]
    assert [(r.lines, r.loaded, r.quarantined) for r in results] == [(4, 4, 0)]
    assert query(wh, "select count(*) from ingest.quarantine") == [(0,)]
    assert sorted(r[0] for r in query(wh, "select message_id from ingest.events")) == ["n1", "s0", "s1", "s2", "s9"]
    etags = dict(query(wh, "select source_file, etag from ingest.landing_manifest"))
    assert etags[f"s3://{bucket}/{src}/1700000000001.a2.gz"] == client.head_object(
        Bucket=bucket, Key=f"{src}/1700000000001.a2.gz"
    )["ETag"].strip('"')
    # a new object in a known partition
    put(client, bucket, f"{src}/1700000000002.a3.gz", [ev(mid="s10")])
    assert ingest_all(wh, landing, only_changed=True)[0] == [DAY.isoformat()]


def test_trackplan_layout_in_a_bucket_keeps_the_local_rules(s3, tmp_path):
    client, bucket = s3
    put(client, bucket, f"landing/date={DAY}/a.jsonl", [ev(mid="t1")], gz=False)
    put(client, bucket, f"landing/date={DAY}/b.jsonl.gz", [ev(mid="t2")])
    put(client, bucket, f"landing/date={DAY}/c.JSONL", [ev(mid="t3")], gz=False)
    put(client, bucket, f"landing/date={DAY}/sub/d.jsonl", [ev(mid="t4")], gz=False)
    put(client, bucket, "landing/date=2026-02-30/e.jsonl", [ev(mid="t5")], gz=False)
    put(client, bucket, "landing/loose.jsonl", [ev(mid="t6")], gz=False)
    put(client, bucket, f"landing/date={DAY}/f.jsonl.gz", ["plain text named .gz"], gz=False)
    wh = tmp_path / "wh.duckdb"
    days, results = ingest_all(wh, f"s3://{bucket}/landing", layout="trackplan")
    assert days == [DAY.isoformat()] and (results[0].loaded, results[0].quarantined) == (2, 1)
    # an object that is not gzip is kept as one quarantined unit with its size, as a local file is
    [(raw, rules)] = query(wh, "select raw, rules from ingest.quarantine")
    assert raw == "plain text named .gz" and rules == ["corrupt"]
    reasons = {
        r[0].rsplit("/", 1)[-1]: r[1].split(":")[0]
        for r in query(wh, "select source_file, skip_reason from ingest.ingestion_log where status = 'skipped'")
    }
    assert reasons == {
        "c.JSONL": "unsupported extension",
        "d.jsonl": "unexpected subfolder",
        "e.jsonl": "bad date folder",
        "loose.jsonl": "not in a date folder",
    }


# --- Snowplow's enriched TSV ----------------------------------------------------------------------


def enriched(**values) -> str:
    """One enriched event as Snowplow writes it: the SDK's 131 fields, tab-separated, empty when unset."""
    unknown = set(values) - set(SDK_FIELDS)
    assert not unknown, unknown
    return "\t".join(str(values.get(f, "")) for f in SDK_FIELDS)


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _common(eid: str, minute: int) -> dict:
    t = BASE + dt.timedelta(minutes=minute)
    return dict(  # noqa: C408 - keyword form: these are the SDK's field names
        app_id="shop",
        platform="web",
        etl_tstamp=_ts(t + dt.timedelta(seconds=5)),
        collector_tstamp=_ts(t),
        dvce_created_tstamp=_ts(t - dt.timedelta(seconds=1)),
        dvce_sent_tstamp=_ts(t - dt.timedelta(seconds=1)),
        event_id=eid,
        v_tracker="js-3.24.0",
        v_collector="ssc-2.9.0",
        v_etl="snowplow-enrich-4.0.0",
        user_ipaddress="203.0.113.7",
        domain_userid="duid-1",
        domain_sessionidx=2,
        domain_sessionid="sess-1",
        useragent="Mozilla/5.0",
        br_lang="en-GB",
        os_timezone="Europe/London",
        geo_country="GB",
        dvce_screenwidth=1920,
        dvce_screenheight=1080,
        br_viewwidth=1200,
        br_viewheight=800,
        derived_tstamp=_ts(t),
    )


CONTEXTS = {
    "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
    "data": [
        {"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", "data": {"id": "pv-1"}},
        {"schema": "iglu:com.acme/experiment/jsonschema/1-0-0", "data": {"variant": "b"}},
    ],
}


def _unstruct(name: str, data: dict) -> str:
    return orjson.dumps(
        {
            "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
            "data": {"schema": f"iglu:com.acme/{name}/jsonschema/1-0-0", "data": data},
        }
    ).decode()


def snowplow_lines() -> dict[str, str]:
    ctx = orjson.dumps(CONTEXTS).decode()
    return {
        "page": enriched(
            **_common("e-pv", 0),
            event="page_view",
            event_name="page_view",
            page_url="https://shop.example/pricing?plan=pro",
            page_title="Pricing",
            page_referrer="https://search.example/",
            contexts=ctx,
            user_id="u-42",
        ),
        "struct": enriched(
            **_common("e-se", 1),
            event="struct",
            event_name="event",
            se_category="shop",
            se_action="add-to-basket",
            se_label="sku-1",
            se_property="red",
            se_value="2.5",
            contexts=ctx,
        ),
        "unstruct": enriched(
            **_common("e-ue", 2),
            event="unstruct",
            event_name="link_click",
            unstruct_event=_unstruct("link_click", {"targetUrl": "https://x.example/"}),
            contexts=ctx,
        ),
        "unknown": enriched(
            **_common("e-uk", 3),
            event="unstruct",
            event_name="not_in_plan",
            unstruct_event=_unstruct("not_in_plan", {"a": 1}),
        ),
        "dup": enriched(**_common("e-pv", 4), event="page_view", page_url="https://shop.example/again"),
        "short": "only\tthree\tfields",
    }


@pytest.fixture
def snowplow_plan(tmp_path):
    """The sample plan plus the two Snowplow events of the fixture (named as the mapping names them)."""
    import shutil

    from tracking_plan.loader import default_plan_dir, load_plan

    d = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), d)
    (d / "events" / "add_to_basket.yaml").write_text(
        "name: add-to-basket\ndescription: A Snowplow structured event.\nowner: web\nstatus: active\n"
        "type: track\nversion: 1-0-0\nconsent: analytics\nproperties:\n"
        "  category: {type: string, description: se_category, required: true}\n"
        "  action: {type: string, description: se_action, required: true}\n"
        "  label: {type: string, description: se_label}\n"
        "  property: {type: string, description: se_property}\n"
        "  value: {type: number, description: se_value}\n"
    )
    (d / "events" / "link_click.yaml").write_text(
        "name: link_click\ndescription: Snowplow's link click (self-describing).\nowner: web\nstatus: active\n"
        "type: track\nversion: 1-0-0\nconsent: analytics\nproperties:\n"
        "  targetUrl: {type: string, description: the link, required: true}\n"
    )
    return load_plan(d)


def test_fixture_lines_are_enriched_events_to_snowplows_own_sdk():
    lines = snowplow_lines()
    for name in ("page", "struct", "unstruct", "unknown", "dup"):
        parsed = sdk.transform(lines[name])  # raises on a wrong field count or a bad value
        assert parsed["event_id"] in ("e-pv", "e-se", "e-ue", "e-uk")
    with pytest.raises(Exception, match="Expected 131 fields"):
        sdk.transform(lines["short"])


def test_snowplow_enriched_from_a_bucket_mapped_validated_deduplicated_quarantined_verbatim(
    s3, tmp_path, snowplow_plan
):
    client, bucket = s3
    lines = snowplow_lines()
    key = f"enriched/good/{DAY:%Y/%m/%d}/10/sp-enriched-1.gz"
    put(client, bucket, key, list(lines.values()))
    put(client, bucket, "enriched/good/_SUCCESS", [""], gz=False)
    landing = f"s3://{bucket}/enriched"
    entries = scan(landing)  # detected from the first line: 131 tab-separated fields
    assert {(e.path.rsplit("/", 1)[-1], e.partition, e.fmt, (e.skip or "").split(":")[0]) for e in entries} == {
        ("sp-enriched-1.gz", DAY.isoformat(), "snowplow", ""),
        ("_SUCCESS", None, None, "hidden or metadata file"),
    }
    wh = tmp_path / "wh.duckdb"
    con = connect(wh)
    try:
        [res] = ingest_partitions(con, snowplow_plan, landing, [DAY.isoformat()], scan=entries)
    finally:
        con.close()
    assert (res.lines, res.loaded, res.quarantined, res.duplicates) == (6, 3, 2, 1)
    rows = {
        r[0]: r[1:]
        for r in query(
            wh,
            "select message_id, type, event_name, properties, context, user_id, "
            "anonymous_id, received_at from ingest.events",
        )
    }
    assert set(rows) == {"e-pv", "e-se", "e-ue"}
    pv_type, _, pv_props, pv_ctx, pv_user, pv_anon, pv_recv = rows["e-pv"]
    assert pv_type == "page" and pv_user == "u-42" and pv_anon == "duid-1"
    assert orjson.loads(pv_props) == {
        "url": "https://shop.example/pricing?plan=pro",
        "title": "Pricing",
        "referrer": "https://search.example/",
        "path": "/pricing",
        "search": "?plan=pro",
    }
    ctx = orjson.loads(pv_ctx)
    assert ctx["sessionId"] == "sess-1" and ctx["sessionIndex"] == 2 and ctx["locale"] == "en-GB"
    assert ctx["screen"] == {"width": 1920, "height": 1080} and ctx["library"] == {
        "name": "snowplow",
        "version": "js-3.24.0",
    }
    assert ctx["snowplow"]["contexts"] == CONTEXTS["data"]  # contexts kept whole
    assert ctx["snowplow"]["app_id"] == "shop" and ctx["snowplow"]["geo_country"] == "GB"  # unmapped fields
    assert pv_recv == BASE  # collector_tstamp
    se = rows["e-se"]
    assert se[0] == "track" and se[1] == "add-to-basket"
    assert orjson.loads(se[2]) == {
        "category": "shop",
        "action": "add-to-basket",
        "label": "sku-1",
        "property": "red",
        "value": 2.5,
    }
    ue = rows["e-ue"]
    assert ue[0] == "track" and ue[1] == "link_click" and orjson.loads(ue[2]) == {"targetUrl": "https://x.example/"}
    assert orjson.loads(ue[3])["snowplow"]["schema"] == "iglu:com.acme/link_click/jsonschema/1-0-0"
    # quarantined lines keep the TSV as it was in the object, with their reasons
    q = {r[0]: r[1:] for r in query(wh, "select line_no, raw, rules from ingest.quarantine")}
    assert q[4] == (lines["unknown"], ["unknown_event"])
    assert q[6][0] == lines["short"] and q[6][1] == ["snowplow"]
    log = query(
        wh,
        "select status, lines, loaded, quarantined, duplicates from ingest.ingestion_log "
        "where source_file like '%sp-enriched-1.gz'",
    )
    assert log == [("read", 6, 3, 2, 1)]


# --- errors -----------------------------------------------------------------------------------------


def test_a_missing_bucket_is_one_line_naming_the_url(s3):
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/events"
    with pytest.raises(LandingError) as err:
        scan(url)
    msg = str(err.value)
    assert msg.startswith(url + ": no such bucket") and "\n" not in msg


def test_a_refused_listing_is_one_line_naming_the_url(s3, s3_endpoint, monkeypatch):
    """moto enforces IAM once its no-auth allowance is used up (its /moto-api/reset-auth): a user with
    no policy is refused by the real S3 API, as AWS would refuse it."""
    import urllib.request

    client, bucket = s3
    put(client, bucket, f"segment-logs/s/{DAY_MS}/a.gz", [ev()])
    iam = boto3.client("iam", endpoint_url=s3_endpoint)
    user = f"nobody-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]

    def reset_auth(value: bytes):
        urllib.request.urlopen(
            urllib.request.Request(
                f"{s3_endpoint}/moto-api/reset-auth", data=value, method="POST", headers={"Content-Type": "text/plain"}
            )
        )

    reset_auth(b"0")
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with pytest.raises(LandingError) as err:
            scan(f"s3://{bucket}")
    finally:
        reset_auth(b"inf")  # moto's default: no authentication
    msg = str(err.value)
    assert msg.startswith(f"s3://{bucket}: access denied") and "\n" not in msg


def test_cli_run_names_the_missing_bucket_in_one_line(s3, tmp_path):
    from typer.testing import CliRunner

    from trackplan.cli import app

    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}"
    res = CliRunner().invoke(app, ["run", "--landing", url, "--warehouse", str(tmp_path / "w.duckdb")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{url}: no such bucket" in " ".join(res.output.split())


def test_local_segment_layout_and_detection(tmp_path):
    """The same layouts from a local copy (aws s3 sync): Segment's day folders are detected."""
    d = tmp_path / "segment-logs" / "src" / str(DAY_MS)
    d.mkdir(parents=True)
    (d / "f.gz").write_bytes(gzip.compress(orjson.dumps(ev(mid="l1")) + b"\n"))
    entries = scan(tmp_path)
    assert [(e.partition, e.skip, e.fmt) for e in entries] == [(DAY.isoformat(), None, "lines")]
    assert iso(BASE)  # (the helper's clock: the partition is the UTC day of the folder's milliseconds)


# --- incremental discovery: the Dagster asset, the sensor and `trackplan run` ------------------------


def test_sensor_and_run_pick_up_only_new_or_rewritten_objects(s3, tmp_path, monkeypatch):
    import dagster as dg
    from rich.console import Console

    from pipelines.ingest.assets import ingest_events
    from pipelines.resources import resources_from_env
    from pipelines.runner import run_pipeline
    from pipelines.schedules import landing_sensor
    from tracking_plan.loader import default_plan_dir

    client, bucket = s3
    key = f"segment-logs/src/{DAY_MS}/a.gz"
    put(client, bucket, key, [ev(mid="x1"), ev(mid="x2")])
    landing, wh = f"s3://{bucket}", tmp_path / "wh.duckdb"
    monkeypatch.setenv("TRACKPLAN_LANDING", landing)
    monkeypatch.setenv("TRACKPLAN_WAREHOUSE", str(wh))

    def evaluate():
        out = list(landing_sensor(dg.build_sensor_context()))
        return [(r.partition_key, r.run_key) for r in out if isinstance(r, dg.RunRequest)]

    first = evaluate()
    assert [p for p, _ in first] == [DAY.isoformat()]
    # the Dagster asset reads the bucket in the detected layout and records the manifest
    res = dg.materialize(
        [ingest_events],
        resources=resources_from_env(default_plan_dir(), landing, wh),
        partition_key=DAY.isoformat(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert res.success
    assert query(wh, "select count(*) from ingest.events") == [(2,)]
    assert evaluate() == []  # everything is in the manifest: no run
    with open(tmp_path / "out.txt", "w") as fh:
        assert run_pipeline(default_plan_dir(), landing, wh, console=Console(file=fh, width=200))  # no Dagster run
    assert "nothing new under " + landing in (tmp_path / "out.txt").read_text()
    put(client, bucket, key, [ev(mid="x3")])  # rewritten: a new ETag
    again = evaluate()
    assert [p for p, _ in again] == [DAY.isoformat()] and again[0][1] != first[0][1]


def test_no_enriched_field_is_lost_in_the_mapping():
    """Every field Snowplow's own SDK reads from the line is either mapped onto the envelope or kept
    under context.snowplow (the SDK's output is the independent list of what the line holds)."""
    from tracking_plan.snowplow import enriched_to_segment

    mapped = {
        "event",
        "event_id",
        "user_id",
        "domain_userid",
        "domain_sessionid",
        "domain_sessionidx",
        "user_ipaddress",
        "useragent",
        "br_lang",
        "os_timezone",
        "page_url",
        "page_title",
        "page_referrer",
        "v_tracker",
        "unstruct_event",
        "contexts",
        "se_category",
        "se_action",
        "se_label",
        "se_property",
        "se_value",
        "dvce_created_tstamp",
        "dvce_sent_tstamp",
        "true_tstamp",
        "dvce_screenwidth",
        "dvce_screenheight",
        "br_viewwidth",
        "br_viewheight",
    }
    for line in list(snowplow_lines().values())[:5]:
        fields = dict(zip(SDK_FIELDS, line.split("\t"), strict=True))
        msg = enriched_to_segment(line)
        kept = msg["context"]["snowplow"]
        for name in (k for k, v in fields.items() if v):
            assert name in mapped or name in kept, name
        assert msg["messageId"] == sdk.transform(line)["event_id"]
        if fields.get("contexts"):
            # the SDK shreds contexts into contexts_<vendor>_<name>_<model> columns: the same entities
            shredded = [k for k in sdk.transform(line) if k.startswith("contexts_")]
            assert len(shredded) == len({c["schema"] for c in kept["contexts"]})


# --- the time window is judged from the layout's partition day, as from a date= folder -------------

OLD = BASE - dt.timedelta(days=800)  # beyond the sample plan's max_age_days (730) before DAY


def _verdicts(wh) -> dict[str, list[str]]:
    """message id -> the rules it broke ([] when loaded), over events and quarantine."""
    out = {r[0]: [] for r in query(wh, "select message_id from ingest.events")}
    for raw, rules in query(wh, "select raw, rules from ingest.quarantine"):
        mid = orjson.loads(raw)["messageId"] if raw.startswith("{") else raw.split("\t")[6]  # event_id: field 7
        out[mid] = sorted(rules)
    return out


def _window_events() -> list[dict]:
    """Two events whose own receipt says nothing trustworthy about when they landed: one whose
    receivedAt is as old as its timestamp (a replay), one with no receivedAt or sentAt at all."""
    replay = ev(mid="w-replay", at=OLD, received_at=OLD)
    bare = ev(mid="w-bare", at=OLD)
    del bare["receivedAt"]
    return [ev(mid="w-ok"), replay, bare]


def test_segment_layout_judges_the_window_from_the_received_day_folder_as_a_date_folder(tmp_path):
    """The same lines, once in date=DAY/ (the trackplan layout: the validator's day from the folder)
    and once in Segment's {DAY as Unix ms}/ folder: the same verdicts, and the events from 800 days
    before their folder's day are too old in both."""
    lines = b"".join(orjson.dumps(m) + b"\n" for m in _window_events())
    tp, seg = tmp_path / "tp", tmp_path / "seg"
    (tp / f"date={DAY}").mkdir(parents=True)
    (tp / f"date={DAY}" / "a.jsonl").write_bytes(lines)
    (seg / "segment-logs" / "src" / str(DAY_MS)).mkdir(parents=True)
    (seg / "segment-logs" / "src" / str(DAY_MS) / "a.gz").write_bytes(gzip.compress(lines))
    verdicts = {}
    for name, root, layout in (("trackplan", tp, "trackplan"), ("segment-s3", seg, None)):
        wh = tmp_path / f"{name}.duckdb"
        days, _ = ingest_all(wh, str(root), layout)
        assert days == [DAY.isoformat()]
        verdicts[name] = _verdicts(wh)
    assert verdicts["segment-s3"] == verdicts["trackplan"]
    assert verdicts["segment-s3"] == {"w-ok": [], "w-replay": ["timestamp_past"], "w-bare": ["timestamp_past"]}


def test_segment_layout_window_from_a_bucket(s3, tmp_path):
    """The partition day reaches the validator from an object URL too (no date= in the key)."""
    client, bucket = s3
    put(client, bucket, f"segment-logs/src/{DAY_MS}/a.gz", _window_events())
    wh = tmp_path / "wh.duckdb"
    ingest_all(wh, f"s3://{bucket}")
    assert _verdicts(wh) == {"w-ok": [], "w-replay": ["timestamp_past"], "w-bare": ["timestamp_past"]}


def test_snowplow_layout_judges_the_window_from_the_loader_folder(tmp_path, snowplow_plan):
    """An enriched event whose collector_tstamp (its receivedAt) is 800 days before the loader's
    YYYY/MM/DD folder it was written in is too old, as it would be in date=DAY/."""
    ok = snowplow_lines()["page"]
    old = enriched(
        **{
            **_common("e-old", 0),
            **{k: _ts(OLD) for k in ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp")},
        },
        event="page_view",
        page_url="https://shop.example/",
    )
    assert sdk.transform(old)["collector_tstamp"].startswith(str(OLD.year))  # a real enriched line
    folder = tmp_path / "enriched" / f"{DAY:%Y}" / f"{DAY:%m}" / f"{DAY:%d}"
    folder.mkdir(parents=True)
    (folder / "part-0.gz").write_bytes(gzip.compress((ok + "\n" + old + "\n").encode()))
    wh = tmp_path / "wh.duckdb"
    con = connect(wh)
    try:
        entries = scan(tmp_path / "enriched")
        assert [(e.partition, e.fmt) for e in entries] == [(DAY.isoformat(), "snowplow")]
        [res] = ingest_partitions(con, snowplow_plan, str(tmp_path / "enriched"), [DAY.isoformat()], scan=entries)
    finally:
        con.close()
    assert (res.loaded, res.quarantined) == (1, 1)
    assert _verdicts(wh) == {"e-pv": [], "e-old": ["timestamp_past"]}

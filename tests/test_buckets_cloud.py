"""`--landing gs://…` and `az://…` (issue 23): the same listing, layouts, ledger, manifest and one-line
errors as s3:// (tests/test_buckets.py), against a real emulator of each service's API on 127.0.0.1,
started here:

- Google Cloud Storage: gcp-storage-emulator (PyPI, pinned in constraints.txt), a server of GCS's JSON
  API, read through gcsfs; credentials come from GOOGLE_APPLICATION_CREDENTIALS (a service-account key
  file, made here), whose token exchange goes to a token endpoint on 127.0.0.1 (the `token_uri` of the
  key file) that grants it, or refuses it with Google's `invalid_grant` answer for the refused-credential
  test (the emulator itself checks no token).
- Azure Blob Storage: Microsoft's Azurite (npm, pinned in tools/azurite/package-lock.json, installed by
  `make azurite`, which `make test` runs), read through adlfs; credentials from
  AZURE_STORAGE_CONNECTION_STRING (Azurite's well-known development account, or a wrong key that
  Azurite's shared-key check refuses).

Objects are written with each cloud's own SDK (google-cloud-storage, azure-storage-blob), not through
the fsspec client under test; the version stamp the manifest records is checked against what that SDK
reports. Where an emulator cannot be started the tests of that store are skipped with the reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
from support.pipeline import BASE, ev, ingest_all, query

# gcsfs's default GCSFileSystem asks GCS's gRPC control plane for each bucket's layout (zonal or
# hierarchical) first; an emulator has no such endpoint and each lookup would wait 60 s for its timeout.
# Read at gcsfs's import, so set before it: the plain JSON-API client, which is what an emulator serves.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ.setdefault("NO_GCE_CHECK", "true")  # never probe a metadata server (not on loopback)

from tracking_plan.landing import LandingError, scan

DAY = BASE.date()
DAY_MS = int(dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC).timestamp() * 1000)
ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "tools" / "azurite" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
# Azurite's development account: its documented, public key (not a secret)
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _gz(lines: list) -> bytes:
    return gzip.compress(b"".join((orjson.dumps(x) if isinstance(x, dict) else x.encode()) + b"\n" for x in lines))


def _plain(lines: list) -> bytes:
    return b"".join((orjson.dumps(x) if isinstance(x, dict) else x.encode()) + b"\n" for x in lines)


# --- Google Cloud Storage -----------------------------------------------------------------------------


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """Google's OAuth token endpoint as a service-account key meets it: a signed JWT assertion in, an
    access token out, or `400 invalid_grant` for a key whose account was deleted or whose key revoked."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        assertion = dict(p.split("=", 1) for p in body.split("&")).get("assertion", "")
        claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
        if claims["iss"].startswith("revoked"):
            status, out = 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        else:
            status, out = 200, {"access_token": uuid.uuid4().hex, "expires_in": 3600, "token_type": "Bearer"}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory):
    pytest.importorskip("gcsfs", reason="gcsfs not installed (the gcs extra): gs:// is not tested")
    emulator = pytest.importorskip(
        "gcp_storage_emulator.server", reason="gcp-storage-emulator not installed: gs:// is not tested"
    )
    import fsspec
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert fsspec.get_filesystem_class("gs").__module__ == "gcsfs.core"  # the JSON-API client (see above)
    tokens = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    port = _free_port()
    server = emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    folder = tmp_path_factory.mktemp("gcs-keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keys = {}
    for who in ("reader", "revoked"):
        keys[who] = folder / f"{who}.json"
        keys[who].write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "trackplan-test",
                    "private_key_id": who,
                    "private_key": key.decode(),
                    "client_email": f"{who}@trackplan-test.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"http://127.0.0.1:{tokens.server_address[1]}/token",
                }
            )
        )
    yield f"http://127.0.0.1:{port}", keys
    server.stop()
    tokens.shutdown()
    tokens.server_close()


class GCS:
    scheme = "gs"
    container = "bucket"

    def __init__(self, endpoint: str, keys: dict, monkeypatch):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.keys, self.monkeypatch = keys, monkeypatch
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(keys["reader"]))
        self.client = storage.Client(
            project="trackplan-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )
        self.bucket = f"tp-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(self.bucket)

    def put(self, key: str, data: bytes) -> None:
        self.client.bucket(self.bucket).blob(key).upload_from_string(data, content_type="application/octet-stream")

    def stamp(self, key: str) -> str:
        """The object's generation, as GCS's own client reports it."""
        return str(self.client.bucket(self.bucket).get_blob(key).generation)

    def refuse(self) -> None:
        self.monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(self.keys["revoked"]))


# --- Azure Blob Storage -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    pytest.importorskip("adlfs", reason="adlfs not installed (the azure extra): az:// is not tested")
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob not installed: az:// is not tested")
    node = shutil.which("node")
    if node is None or not AZURITE.exists():
        pytest.skip(
            f"Azurite not installed ({'no node' if node is None else AZURITE} ; `make azurite`): az:// is not tested"
        )
    folder = tmp_path_factory.mktemp("azurite")
    log = folder / "azurite.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
             "--extentMemoryLimit", "64", "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    port = None
    while port is None:
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if m:
            port = int(m.group(1))
        elif proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Azurite did not start: {log.read_text(errors='replace')[-2000:]}")
        else:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/{AZ_ACCOUNT}"
    proc.terminate()
    proc.wait(10)


def _connection(endpoint: str, key: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"


class Azure:
    scheme = "az"
    container = "container"

    def __init__(self, endpoint: str, monkeypatch):
        from azure.storage.blob import BlobServiceClient

        self.endpoint, self.monkeypatch = endpoint, monkeypatch
        for k in list(os.environ):
            if k.startswith("AZURE_STORAGE_"):
                monkeypatch.delenv(k)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", _connection(endpoint, AZ_KEY))
        self.client = BlobServiceClient.from_connection_string(_connection(endpoint, AZ_KEY))
        self.bucket = f"tp-{uuid.uuid4().hex[:12]}"
        self.client.create_container(self.bucket)

    def put(self, key: str, data: bytes) -> None:
        self.client.get_blob_client(self.bucket, key).upload_blob(data, overwrite=True)

    def stamp(self, key: str) -> str:
        """The blob's ETag, as Azure's own client reports it."""
        return self.client.get_blob_client(self.bucket, key).get_blob_properties().etag.strip('"')

    def refuse(self) -> None:
        wrong = base64.b64encode(b"not the account key of devstoreaccount1" * 2).decode()
        self.monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", _connection(self.endpoint, wrong))


@pytest.fixture(params=["gs", "az"])
def store(request, monkeypatch):
    if request.param == "gs":
        endpoint, keys = request.getfixturevalue("gcs_server")
        return GCS(endpoint, keys, monkeypatch)
    return Azure(request.getfixturevalue("azurite"), monkeypatch)


# --- the layouts --------------------------------------------------------------------------------------


def test_trackplan_layout_from_the_store_keeps_the_local_rules(store, tmp_path):
    store.put(f"landing/date={DAY}/a.jsonl", _plain([ev(mid="t1")]))
    store.put(f"landing/date={DAY}/b.jsonl.gz", _gz([ev(mid="t2"), '{"broken']))
    store.put(f"landing/date={DAY}/c.JSONL", _plain([ev(mid="t3")]))
    store.put("landing/loose.jsonl", _plain([ev(mid="t4")]))
    landing = f"{store.scheme}://{store.bucket}/landing"
    wh = tmp_path / "wh.duckdb"
    days, [res] = ingest_all(wh, landing)  # detected: trackplan
    assert days == [DAY.isoformat()]
    assert (res.lines, res.loaded, res.quarantined) == (3, 2, 1)
    assert sorted(r[0] for r in query(wh, "select message_id from ingest.events")) == ["t1", "t2"]
    assert query(wh, "select raw from ingest.quarantine") == [('{"broken',)]
    log = {
        r[0]: r[1:]
        for r in query(wh, "select source_file, status, split_part(skip_reason, ':', 1) from ingest.ingestion_log")
    }
    assert log == {
        f"{landing}/date={DAY}/a.jsonl": ("read", None),
        f"{landing}/date={DAY}/b.jsonl.gz": ("read", None),
        f"{landing}/date={DAY}/c.JSONL": ("skipped", "unsupported extension"),
        f"{landing}/loose.jsonl": ("skipped", "not in a date folder"),
    }


def test_segment_layout_from_the_store_and_a_rewritten_object_replaces_its_partition(store, tmp_path):
    src = f"segment-logs/src-1/{DAY_MS}"
    store.put(f"{src}/1.a.gz", _gz([ev(mid=f"s{i}", at=BASE + dt.timedelta(minutes=i)) for i in range(3)]))
    store.put(f"{src}/2.b.gz", _gz([ev(mid="s0"), '{"broken', ev(mid="s3")]))  # a duplicate and a bad line
    store.put(f"segment-logs/src-1/{DAY_MS + 86_400_000}/3.c.gz", _gz([ev(mid="n1", at=BASE + dt.timedelta(days=1))]))
    landing = f"{store.scheme}://{store.bucket}"
    wh = tmp_path / "wh.duckdb"
    days, results = ingest_all(wh, landing)  # detected: segment-s3
    assert days == [DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()]
    assert [(r.lines, r.loaded, r.quarantined, r.duplicates) for r in results] == [(6, 4, 1, 1), (1, 1, 0, 0)]
    manifest = dict(query(wh, "select source_file, etag from ingest.landing_manifest"))
    assert manifest == {
        f"{landing}/{k}": store.stamp(k)
        for k in (f"{src}/1.a.gz", f"{src}/2.b.gz", f"segment-logs/src-1/{DAY_MS + 86_400_000}/3.c.gz")
    }
    assert ingest_all(wh, landing, only_changed=True)[0] == []  # nothing changed: nothing read

    store.put(f"{src}/2.b.gz", _gz([ev(mid="s9")]))  # rewritten: a new version stamp
    days, results = ingest_all(wh, landing, only_changed=True)
    assert days == [DAY.isoformat()]
    assert [(r.lines, r.loaded, r.quarantined) for r in results] == [(4, 4, 0)]
    assert query(wh, "select count(*) from ingest.quarantine") == [(0,)]
    assert sorted(r[0] for r in query(wh, "select message_id from ingest.events")) == ["n1", "s0", "s1", "s2", "s9"]
    manifest = dict(query(wh, "select source_file, etag from ingest.landing_manifest"))
    assert manifest[f"{landing}/{src}/2.b.gz"] == store.stamp(f"{src}/2.b.gz")


def test_abfs_urls_read_the_same_container(azurite, monkeypatch):
    az = Azure(azurite, monkeypatch)
    az.put(f"segment-logs/s/{DAY_MS}/a.gz", _gz([ev(mid="x")]))
    [entry] = scan(f"abfs://{az.bucket}")
    assert (entry.path, entry.partition, entry.skip) == (
        f"abfs://{az.bucket}/segment-logs/s/{DAY_MS}/a.gz",
        DAY.isoformat(),
        None,
    )
    assert entry.etag == az.stamp(f"segment-logs/s/{DAY_MS}/a.gz")


# --- errors: one line naming the URL ------------------------------------------------------------------


def test_a_missing_bucket_or_container_is_one_line_naming_the_url(store):
    url = f"{store.scheme}://no-such-{uuid.uuid4().hex[:8]}/events"
    with pytest.raises(LandingError) as err:
        scan(url)
    msg = str(err.value)
    assert msg.startswith(f"{url}: no such {store.container}") and "\n" not in msg


def test_a_refused_credential_is_one_line_naming_the_url_and_the_variables(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from trackplan.cli import app

    store.put(f"segment-logs/s/{DAY_MS}/a.gz", _gz([ev()]))
    if store.scheme == "gs":
        # gcsfs tries a refused token six times (a 401 may be an expired token), sleeping 1+2+4+8+16 s
        # between: the tries still happen here, the back-off sleeps do not (a real refusal takes ~31 s)
        import asyncio
        import types

        import gcsfs.retry

        monkeypatch.setattr(gcsfs.retry, "asyncio", types.SimpleNamespace(sleep=lambda s: asyncio.sleep(0)))
    store.refuse()
    url = f"{store.scheme}://{store.bucket}"
    with pytest.raises(LandingError) as err:
        scan(url)
    msg = str(err.value)
    assert msg.startswith(f"{url}: access denied") and "\n" not in msg
    assert ("GOOGLE_APPLICATION_CREDENTIALS" if store.scheme == "gs" else "AZURE_STORAGE_CONNECTION_STRING") in msg
    res = CliRunner().invoke(app, ["run", "--landing", url, "--warehouse", str(tmp_path / "w.duckdb")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{url}: access denied" in " ".join(res.output.split())

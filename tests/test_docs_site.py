"""`trackplan docs`: the static catalog of the tracking plan."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tracking_plan.compile import slug
from tracking_plan.docs_site import build_docs, regex_example
from tracking_plan.loader import DEFAULT_PLAN, load_plan
from tracking_plan.validate import Validator

EXAMPLE = re.compile(r'<pre id="example">(.*?)</pre>', re.DOTALL)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_docs(DEFAULT_PLAN, out)
    return out


def test_one_page_per_event_and_an_index_that_links_them(site):
    plan = load_plan(DEFAULT_PLAN)
    index = (site / "index.html").read_text()
    for name in plan.events:
        page = site / "events" / f"{slug(name)}.html"
        assert page.is_file(), name
        assert f'href="events/{slug(name)}.html"' in index
    # filter facets come from the plan: every owner and consent category is offered
    for owner in {e.owner for e in plan.events.values() if e.owner}:
        assert f'<option value="{owner}">' in index
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", index)  # offline: nothing fetched


def test_every_example_payload_passes_the_plan(site):
    """The generated example of each event is accepted by the same engine that ingests events."""
    plan = load_plan(DEFAULT_PLAN)
    raws = []
    for name in plan.events:
        text = (site / "events" / f"{slug(name)}.html").read_text()
        raws.append(html.unescape(EXAMPLE.search(text).group(1)).replace("\n", " "))
    con = duckdb.connect()
    con.register(
        "ex",
        pa.table(
            {
                "source_file": ["docs"] * len(raws),
                "line_no": list(range(1, len(raws) + 1)),
                "raw": raws,
                "pre_reason": pa.nulls(len(raws), pa.string()),
            }
        ),
    )
    Validator(plan).run(con, "ex", "checked")
    bad = con.execute("select event_name, reasons from checked where not valid").fetchall()
    assert bad == []
    assert con.execute("select count(distinct event_name) from checked").fetchall()[0][0] == len(plan.events)


def test_usage_lists_kpis_and_funnels(site):
    page = (site / "events" / f"{slug('Order Completed')}.html").read_text()
    usage = page[page.index('id="usage"') : page.index("<h2>Properties")]
    assert "<code>paid_conversion_rate</code>" in usage and "<code>revenue</code>" in usage
    assert "<code>checkout</code>: step 4 of 4" in usage
    assert "<code>purchase</code>" in usage
    props = page[page.index('id="properties"') :]
    assert 'data-property="currency"' in props and "one of &#34;USD&#34;, &#34;EUR&#34;, &#34;GBP&#34;" in props
    assert 'data-property="products[].product_id"' in props  # nested array items are listed


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Plan Bot",
            "-c",
            "user.email=bot@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_change_history_follows_renames_and_survives_no_git(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(DEFAULT_PLAN, repo / "plan")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "Initial plan")
    f = repo / "plan" / "events" / "order_completed.yaml"
    f.write_text(f.read_text().replace("An order was paid", "An order was paid in full"))
    _git(repo, "commit", "-q", "-am", "Clarify Order Completed")
    _git(repo, "mv", "plan/events/order_completed.yaml", "plan/events/orders.yaml")
    _git(repo, "commit", "-q", "-m", "Rename the event file")
    build_docs(repo / "plan", tmp_path / "site")
    page = (tmp_path / "site" / "events" / f"{slug('Order Completed')}.html").read_text()
    history = page[page.index('id="history"') :]
    subjects = re.findall(r'<td class="left">([^<]+)</td></tr>', history)
    assert subjects == ["Rename the event file", "Clarify Order Completed", "Initial plan"]
    assert "Plan Bot" in history
    plain = tmp_path / "plain"
    shutil.copytree(DEFAULT_PLAN, plain)
    build_docs(plain, tmp_path / "site2")
    assert "No git history available" in (tmp_path / "site2" / "events" / f"{slug('Order Completed')}.html").read_text()


@pytest.mark.parametrize("pattern", [r"^prd_[a-z0-9_]+$", r"^[a-z0-9]{1,8}$", r"^(eu|na)-\d{2}$", "^/"])
def test_regex_example_matches(pattern):
    assert re.search(pattern, regex_example(pattern))


def test_json_schema_is_embedded(site):
    page = (site / "events" / f"{slug('Order Completed')}.html").read_text()
    schema = json.loads(
        html.unescape(re.search(r"<details><summary>show</summary><pre>(.*?)</pre>", page, re.DOTALL).group(1))
    )
    assert "currency" in schema["properties"]["properties"]["properties"]

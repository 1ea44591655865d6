"""Shared by the browser tests: the system Chromium, a static page server on its own origin, and
the real npm tracking libraries bundled by `make npm` (tests/browser/package.json, pinned).

Reuse: ``with static_site({"index.html": html, ...}) as origin`` serves files from a temp folder
on 127.0.0.1 (another port than the collector: another origin, so the browser applies CORS);
``trackers_bundle()`` is the path of dist/trackers.js (``window.trackers.AnalyticsBrowser`` and
``window.trackers.snowplow``), or a pytest skip naming what to run when it is missing.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUNDLE = HERE / "dist" / "trackers.js"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # offline: no name resolves  # fmt: skip


def chromium_or_skip() -> str:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (make browser): browser tests skipped")
    return CHROMIUM


def trackers_bundle() -> Path:
    """dist/trackers.js, built by `make npm` (npm ci + esbuild) from the pinned packages."""
    if not BUNDLE.exists():
        pytest.skip(f"{BUNDLE.relative_to(HERE.parents[1])} missing: run `make npm` (npm ci of tests/browser)")
    return BUNDLE


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test's own assertions say what was fetched
        pass


@contextmanager
def static_site(files: dict[str, str | bytes | Path]) -> Iterator[str]:
    """Serve ``files`` (name -> content or a file to copy) on 127.0.0.1:<free port>; yields the origin."""
    folder = Path(tempfile.mkdtemp(prefix="trackplan-site-"))
    files = {"favicon.ico": b"", **files}  # Chromium asks for it; a 404 would be a console error
    for name, content in files.items():
        target = folder / name
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content.encode() if isinstance(content, str) else content)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def chromium() -> Iterator[object]:
    """A Playwright Browser on Debian's chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    path = chromium_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser, allowed: tuple[str, ...] = ("http://127.0.0.1",)):
    """A page that fails loudly on console errors and on any request leaving 127.0.0.1."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # No page.route(): with interception on, Playwright answers CORS preflights itself and the
    # server under test never sees them. Requests leaving 127.0.0.1 are recorded as errors here and
    # cannot resolve anyway (--host-resolver-rules in ARGS).
    page.on(
        "request",
        lambda r: None if r.url.startswith((*allowed, "data:", "about:")) else errors.append(f"fetched {r.url}"),
    )
    return page, errors

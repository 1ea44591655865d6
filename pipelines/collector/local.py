"""Run the collector on 127.0.0.1 inside this process (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from .protocol import HEADER_TIMEOUT, KEEP_ALIVE_TIMEOUT, protocol_class


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app: Any, port: int | None = None, startup_timeout: float = 10.0,
            header_timeout: float = HEADER_TIMEOUT) -> Iterator[str]:  # fmt: skip
    """Serve ``app`` with uvicorn in a thread; yields the base URL; shuts down gracefully on exit.
    Same protocol settings as ``trackplan serve`` (header and keep-alive timeouts)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                            http=protocol_class(header_timeout), timeout_keep_alive=KEEP_ALIVE_TIMEOUT)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="collector", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("collector did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)

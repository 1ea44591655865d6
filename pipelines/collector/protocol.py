"""uvicorn's HTTP protocol with a header timeout: a connection that does not finish sending a
request's headers in time is closed.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but not a client that
opens a connection and sends its headers a byte at a time, or half of them and then nothing
(slowloris): each such connection holds a file descriptor forever, and once the process runs out
of them, real senders get resets. Here a timer runs from the moment a connection opens, and
again from the end of each response, until the next request's headers are complete. The body has
its own limit (``Settings.body_timeout``), enforced in the app.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0  # seconds from connect (or from the last response) to complete headers
KEEP_ALIVE_TIMEOUT = 5  # idle seconds between requests (uvicorn's own default, stated here)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout = HEADER_TIMEOUT
    header_timeouts = 0  # connections closed for slow headers (read by tests and logs)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            type(self).header_timeouts += 1
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle, waiting for the next request
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_class(header_timeout: float = HEADER_TIMEOUT) -> type[HeaderTimeoutProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with this header timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout,
                                                                     "header_timeouts": 0})  # fmt: skip

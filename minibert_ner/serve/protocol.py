"""HTTP on the wire: uvicorn's httptools protocol, with three changes at the connection level,
below the application, where no route can see them.

- A header timeout. uvicorn times out an idle keep-alive connection, but not one that has sent
  part of a request's headers (or nothing, since it opened): a slow or stalled client would hold
  its connection, and a shutdown, forever. Here the headers must be complete within
  `header_timeout` seconds of the connection opening or the request's first byte; then the
  client gets 408 and the connection is closed. (A stalled body is the application's: 408 after
  `body_timeout`, app.py.)
- An answer after a half-close. A client may send a whole request and then shut its side for
  writing (`shutdown(SHUT_WR)`, `curl --no-keepalive` over some proxies, `nc -N`). asyncio then
  closes the connection unless the protocol keeps it open, and uvicorn did not: the request went
  unanswered. Here a complete request is answered, then the connection closed; a request cut
  short by the half-close can never complete and goes as a client that left (a 499, app.py).
- Malformed HTTP (a request line or headers the parser rejects) is answered 400 in the
  application's JSON error shape, {"error": ..., "error_type": "bad_request"}, not as plain text.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["http_protocol"]


def json_error_response(status: int, error_type: str, message: str) -> bytes:
    """A whole HTTP/1.1 response, {"error": message, "error_type": error_type}, closing the
    connection (written straight to the transport: no application is running for it)."""
    body = json.dumps({"error": message, "error_type": error_type}).encode()
    head = (
        b"content-type: application/json\r\n"
        + b"content-length: %d\r\n" % len(body)
        + b"connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head + body


class MiniBertHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, answers after a half-close, and JSON
    400s (the module's docstring says why). `header_timeout` is set by `http_protocol`."""

    header_timeout: float = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None

    # --- the header timeout --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_header_timer()  # a connection that never sends a byte is a stalled header

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.start_header_timer()

    def on_headers_complete(self) -> None:
        self.stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_timer()
        super().connection_lost(exc)

    def start_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self.headers_timed_out)

    def stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_timed_out(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A request is being answered and reading is paused until it is: the next one's
            # headers wait for that, not for the client. Look again later.
            self.start_header_timer()
            return
        message = f"the request's headers did not arrive within {self.header_timeout:g} s"
        self.transport.write(json_error_response(408, "request_timeout", message))
        self.transport.close()

    # --- the half-close ------------------------------------------------------------------

    def eof_received(self) -> bool | None:
        """The client will send nothing more. Keep the connection open (return True) while a
        complete request is still to be answered; otherwise let asyncio close it."""
        self.stop_header_timer()
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete and not cycle.more_body
        if answering or self.pipeline:
            # The last request to be answered says "connection: close" and closes it once
            # answered (`cycle` is the newest request; the pipelined wait in `pipeline`, the
            # newest at its left end).
            last = self.pipeline[0][0] if self.pipeline else cycle
            last.keep_alive = False
            return True
        return None

    # --- malformed HTTP ------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        self.stop_header_timer()
        message = "malformed HTTP request: send an HTTP/1.1 request (a request line, headers)"
        self.transport.write(json_error_response(400, "bad_request", message))
        self.transport.close()


def http_protocol(header_timeout: float) -> type[MiniBertHttpProtocol]:
    """The protocol class for uvicorn's `Config(http=...)`, with this header timeout."""
    return type("MiniBertHttpProtocol", (MiniBertHttpProtocol,), {"header_timeout": header_timeout})

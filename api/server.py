"""uvicorn's HTTP/1.1 protocol with deadlines for a request's headers and body (slowloris)."""

from __future__ import annotations

import asyncio
from typing import Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.errors import problem_response
from api.middleware import SECURITY_HEADERS


def _timeout_answer(detail: str) -> bytes:
    """A whole 408 problem response, as bytes for the socket, that closes the connection."""
    problem = problem_response(408, "request_timeout", detail)
    headers = [*problem.raw_headers, *SECURITY_HEADERS, (b"connection", b"close")]
    head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(
        name + b": " + value + b"\r\n" for name, value in headers
    )
    return head + b"\r\n" + bytes(problem.body)


class DeadlineH11Protocol(H11Protocol):
    """H11Protocol, plus: a request's headers must arrive within `header_timeout` seconds of
    the connection or of their first byte, and its body within `body_timeout` of its headers.

    uvicorn has neither: a connection that sends half its headers, or a body it never
    finishes, stays open for ever (its keep-alive timer only runs between requests, and any
    byte disarms it). Past a deadline the client gets a 408 problem when nothing was answered
    yet, and the connection is closed either way; the route waiting for that body sees the
    client gone (`http.disconnect`). Use `with_deadlines` for a subclass with the settings.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: Literal["headers", "body"] | None = None

    @classmethod
    def with_deadlines(cls, header_timeout: float, body_timeout: float) -> type[H11Protocol]:
        """The protocol class to hand uvicorn (`http=`): it builds one per connection."""
        return type(
            "DeadlineH11Protocol",
            (cls,),
            {"header_timeout": header_timeout, "body_timeout": body_timeout},
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for("headers")

    def data_received(self, data: bytes) -> None:
        if self._waiting_for is None and self.conn.their_state is h11.IDLE:
            self._wait_for("headers")  # the first byte of the next request
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Re-arm the deadline for what the client owes now: its body, or nothing."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._wait_for("body")
        elif state is not h11.IDLE or self._waiting_for != "headers":
            # Done sending (or between requests, where uvicorn's keep-alive timer runs).
            self._cancel_deadline()

    def _wait_for(self, part: Literal["headers", "body"]) -> None:
        self._cancel_deadline()
        self._waiting_for = part
        timeout = self.header_timeout if part == "headers" else self.body_timeout
        self._deadline = self.loop.call_later(timeout, self._too_late, part)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting_for = None

    def _too_late(self, part: Literal["headers", "body"]) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle if part == "body" else None
        if cycle is None or not cycle.response_started:
            timeout = self.header_timeout if part == "headers" else self.body_timeout
            self.transport.write(
                _timeout_answer(f"the request's {part} did not arrive within {timeout:g} s")
            )
        if cycle is not None:
            # The app's answer, if it still makes one, goes nowhere; its receive() says the
            # client is gone, so no route acts on half a body.
            cycle.response_started = True
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

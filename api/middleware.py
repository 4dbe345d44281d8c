"""The API's ASGI middleware (the Guard: size, NUL and rate limits) and its request metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from urllib.parse import unquote

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response
from epcis.capture import contains_nul
from epcis.json_input import JsonRefused, loads_guarded
from ledger.log_store import LogProgress

MAX_BODY_BYTES = 1_048_576
# The capture routes check their own payloads, so a refused one is dead-lettered as on MQTT.
EPCIS_CAPTURE_PATH = "/epcis/capture"
CAPTURE_PATHS = frozenset({"/v1/capture", EPCIS_CAPTURE_PATH})
# Rate-limited per client: the routes anyone may call without a key, and /readyz (which asks
# the database, the broker and the chain).
PUBLIC_PREFIXES = ("/01/", "/v1/provenance", "/v1/proofs", "/v1/verify", "/v1/qr", "/readyz")
BODY_METHODS = ("POST", "PUT", "PATCH")
# Recorded in the metrics for a request whose client left before its body was in (nginx's
# "client closed request"); nothing is sent.
CLIENT_GONE = 499


class _ClientGone(Exception):
    """The client disconnected (or was cut off by a deadline) before its body arrived."""


class Metrics:
    """Request counts and latencies, plus how far each worker lags behind the log."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tracefin_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tracefin_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.lag = Gauge(
            "tracefin_lag_positions",
            "log positions a stage is behind",
            ["stage"],
            registry=self.registry,
        )

    def record_lags(self, log: LogProgress, finance_position: int) -> None:
        """Set the lag gauges: positioning (queued), anchoring and finance (behind the log)."""
        self.lag.labels("positioning").set(log.queued)
        self.lag.labels("anchoring").set(log.size - log.anchored)
        self.lag.labels("finance").set(log.size - finance_position)


class RateLimiter:
    """A token bucket per client address for the public routes (no key, so no other identity)."""

    def __init__(self, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > 100_000:  # forget idle clients rather than grow forever
                self._buckets.clear()
            return allowed


def _nul_in_target(scope: Scope) -> bool:
    query = scope.get("query_string", b"").decode("latin-1")
    return "\x00" in scope.get("path", "") or "\x00" in unquote(query)


def _json_refusal(body: bytes) -> tuple[str, str] | None:
    """(code, detail) when a JSON body must not reach the routes: nested too deep (the
    standard parser FastAPI uses would overflow the C stack) or NUL in a string (PostgreSQL
    cannot store it). Anything else that is not JSON the route answers itself."""
    try:
        value = loads_guarded(body, max_bytes=MAX_BODY_BYTES)
    except JsonRefused as refused:
        if refused.code == "json_too_deep":
            return refused.code, refused.detail
        return None
    if b"\\u0000" in body and contains_nul(value):
        return "invalid_text", "text must not contain U+0000 (NUL)"
    return None


# On every response. Pages load nothing (their one style sheet is inline) and run no script
# unless they bring a policy of their own naming it (the product page: api/public.py,
# page_policy); the JSON and images need even less: nothing may frame them, sniff their type
# or learn where a shopper came from.
CSP = b"content-security-policy"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
        b" base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class Guard:
    """Pure ASGI middleware (BaseHTTPMiddleware costs a task and a stream per request).

    Reads every body first (a client that leaves before its end reaches no route), refuses
    oversize bodies (413), JSON bodies nested deeper than `epcis.json_input.MAX_DEPTH`
    (400 `json_too_deep`: every body is read by the guarded reader before a route parses it),
    NUL in the target or a JSON body (400: PostgreSQL cannot
    store it; capture checks its own payloads so they are dead-lettered as on MQTT) and
    over-eager clients of the public routes and /readyz (429, per client address: the peer,
    or the client a trusted proxy names); counts and times every request; adds
    `SECURITY_HEADERS` to every response.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        limiter: RateLimiter,
        capture_limits: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        # The EPCIS capture limit headers: a body too large for the server is over them too,
        # and the standard's 413 names them.
        self.capture_limits = dict(capture_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                # A page with a script of its own (the product page) brings its own policy.
                own = any(name.lower() == CSP for name, _ in headers)
                message["headers"] = [
                    *headers,
                    *(h for h in SECURITY_HEADERS if not (own and h[0] == CSP)),
                ]
            await send(message)

        try:
            refusal, receive = await self._check(scope, receive, path)
            if refusal is not None:
                await refusal(scope, receive, counted)
            else:
                await self.app(scope, receive, counted)
        except _ClientGone:
            status = CLIENT_GONE  # no route acts on half a body; no one is there to answer
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, status).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

    async def _check(
        self, scope: Scope, receive: Receive, path: str
    ) -> tuple[Response | None, Receive]:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return self._too_large(path), receive
        if _nul_in_target(scope):
            return problem_response(
                400, "invalid_text", "text must not contain U+0000 (NUL)", path
            ), receive
        # Every body is read here, before any route: a route's dependencies hold a database
        # connection, which a client sending its body slowly must not keep (the body's
        # deadline is the server's, api/server.py).
        if scope["method"] in BODY_METHODS:
            body, receive = await _buffered(receive, MAX_BODY_BYTES)
            if body is None:
                return self._too_large(path), receive
            refusal = _json_refusal(body) if path not in CAPTURE_PATHS and body else None
            if refusal is not None:
                return problem_response(400, *refusal, path), receive
        client = scope.get("client") or ("-", 0)
        if path.startswith(PUBLIC_PREFIXES) and not self.limiter.allow(client[0]):
            refused = problem_response(429, "rate_limited", "too many requests; slow down", path)
            refused.headers["Retry-After"] = "1"
            return refused, receive
        return None, receive

    def _too_large(self, path: str) -> Response:
        refused = problem_response(
            413, "payload_too_large", f"requests are limited to {MAX_BODY_BYTES} bytes", path
        )
        if path == EPCIS_CAPTURE_PATH:
            refused.headers.update(self.capture_limits)
        return refused


async def _buffered(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """Read the whole body (None once it passes `limit`: a chunked body announces no length),
    and a `receive` that hands it to the app again. Raises _ClientGone when the client leaves
    first: half a body is no body."""
    chunks = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay

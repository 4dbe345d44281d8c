"""The API's ASGI middleware (the Guard: size, NUL and rate limits) and its request metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import in_rest_binding, problem_response
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


# A request target longer than this is refused 414 (the EPCIS REST binding's URITooLong): a
# query naming thousands of values is a query no index serves.
MAX_TARGET_BYTES = 8192
# What the EPCIS REST binding answers in: JSON (and its problems in application/problem+json),
# and XML where a resource has an XML form (api.enterprise: the event queries). An Accept header
# that allows neither is refused 406 before any route does work.
JSON_MEDIA = frozenset({"application/json", "application/ld+json", "application/problem+json"})
XML_MEDIA = frozenset({"application/xml", "text/xml"})
Representation = Literal["json", "xml"]


def negotiated(accept: str) -> Representation | None:
    """The representation an Accept header prefers (RFC 9110 12.5.1): JSON unless an XML type
    is asked with a higher quality than any JSON type (wildcards count for both, JSON first);
    None when it allows neither."""
    best: dict[Representation, float] = {"json": 0.0, "xml": 0.0}
    if not accept.strip():
        return "json"
    for entry in accept.split(","):
        media, *params = (part.strip().lower() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media in ("*/*", "application/*"):
            kinds: tuple[Representation, ...] = ("json", "xml")
        elif media in JSON_MEDIA:
            kinds = ("json",)
        elif media in XML_MEDIA:
            kinds = ("xml",)
        else:
            continue
        for kind in kinds:
            best[kind] = max(best[kind], quality)
    if best["json"] <= 0 and best["xml"] <= 0:
        return None
    return "xml" if best["xml"] > best["json"] else "json"


# The one EPCIS and CBV version this repository speaks, and the request headers that bound what
# a client accepts (GS1 REST binding): a range that excludes it is refused 406.
SPOKEN_VERSION = (2, 0, 0)
_VERSION_BOUNDS = (
    (b"gs1-epcis-min", b"gs1-epcis-max", "EPCIS"),
    (b"gs1-cbv-min", b"gs1-cbv-max", "CBV"),
)


def version_refusal(headers: Mapping[bytes, bytes]) -> tuple[int, str, str] | None:
    """(status, code, detail) when GS1-EPCIS-Min/-Max or GS1-CBV-Min/-Max exclude 2.0.0 (406)
    or are not versions (400); None otherwise."""
    for low_name, high_name, what in _VERSION_BOUNDS:
        for name, at_least in ((low_name, True), (high_name, False)):
            raw = headers.get(name)
            if raw is None:
                continue
            text = raw.decode("latin-1").strip()
            parts = text.split(".")
            if not 1 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 4 for p in parts):
                shown = text[:20]
                return 400, "invalid_version", f"{name.decode()}: {shown!r} is not a version"
            asked = (*(int(p) for p in parts), *(0,) * (3 - len(parts)))
            # A minimum at or below 2.0.0 and a maximum at or above it admit what is spoken.
            if (asked <= SPOKEN_VERSION) if at_least else (asked >= SPOKEN_VERSION):
                continue
            detail = f"this repository speaks {what} 2.0.0 only ({name.decode()}: {text})"
            return 406, "unsupported_version", detail
    return None


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
        if len(scope.get("raw_path") or path.encode()) + len(scope.get("query_string", b"")) > (
            MAX_TARGET_BYTES
        ):
            return problem_response(
                414,
                "uri_too_long",
                f"request targets are limited to {MAX_TARGET_BYTES} bytes",
                path,
            ), receive
        versions = version_refusal(headers) if in_rest_binding(path) else None
        if versions is not None:
            return problem_response(*versions, path), receive
        accept = headers.get(b"accept", b"").decode("latin-1")
        if in_rest_binding(path) and negotiated(accept) is None:
            return problem_response(
                406,
                "not_acceptable",
                "this repository answers application/json, application/ld+json or (the event"
                " queries) application/xml",
                path,
            ), receive
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

"""EPCIS 2.0 named queries and subscriptions: /epcis/queries, their events (also streamed over a
WebSocket) and their webhook subscriptions (delivered by `tracefin subscription-worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import orjson
import psycopg
from fastapi import APIRouter, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from api import auth
from api.capture_jobs import positive_parameter
from api.config import ApiConfig
from api.deps import AnyOrg, Config, DbConn
from api.enterprise import (
    EPCIS_HEADERS,
    VERSION_HEADERS,
    DocumentResponse,
    answer_document,
    epc_format_of,
    next_page_link,
    query_answer,
    query_page,
    recorded_events,
)
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem, problem_response
from api.middleware import MAX_TARGET_BYTES
from epcis.query import QueryParameterError, parse_event_query, query_document
from epcis.subscriptions import (
    MAX_NAME_LENGTH,
    DestRefused,
    ScheduleRefused,
    address_allowed,
    check_dest,
    named_results,
    next_time,
    parse_schedule,
    query_params,
)
from ledger import log_store
from ledger.subscriptions import LOG_PAYLOAD, next_batch, scope_of, start_position
from records import subscription_store
from records.db import Conn
from records.event_query import EventPage
from records.people_store import Person
from records.subscription_store import NamedQuery, Subscription

log = logging.getLogger(__name__)
router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 1000
_QUERY_PROBLEM = "epcisException:QueryParameterException"
_SUBSCRIPTION_PROBLEM = "epcisException:SubscriptionControlsException"
# The GS1 parameters of a subscription (stream and schedule), not of a query.
_SUBSCRIPTION_PARAMS = frozenset(
    {
        "stream",
        "reportIfEmpty",
        "initialRecordTime",
        "second",
        "minute",
        "hour",
        "dayOfMonth",
        "month",
        "dayOfWeek",
    }
)
_SCHEDULE = frozenset({"second", "minute", "hour", "dayOfMonth", "month", "dayOfWeek"})
# WebSocket close codes: the handshake refused (bad key, unknown query, bad parameter), the
# named query deleted while streaming, and a stream no longer counted (reconnect).
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013


def render(page: EventPage) -> dict[str, Any]:
    """The matching events of a page as the REST binding answers them (the events query's own
    rendering): what a subscription delivers."""
    return query_document(recorded_events(page), page.contexts, datetime.now(UTC))


def _reader(org: Person) -> Person:
    if org.role == "financier":
        raise Problem(403, "forbidden_role", "financiers read goods status, not raw events")
    return org


def _own_query(conn: Conn, org: Person, name: str) -> NamedQuery:
    """The caller's named query; another org's answers as an unknown one: 404."""
    named = subscription_store.own_query(conn, org.id, name)
    if named is None:
        raise Problem(
            404,
            "unknown_query",
            "no named query of yours has that name",
            type="epcisException:NoSuchNameException",
        )
    return named


def _query_body(named: NamedQuery) -> dict[str, Any]:
    return {"name": named.name, "query": named.query}


@router.options(
    "/epcis/queries",
    status_code=204,
    responses={204: {"description": "the versions; queries may be listed and created"}},
    summary="EPCIS 2.0 REST binding: what the named queries resource offers",
)
def queries_options(org: AnyOrg) -> Response:
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, GET, POST"})


@router.get(
    "/epcis/queries",
    summary="EPCIS 2.0 REST binding: your named queries, oldest first, paged",
    responses={200: {"description": "[{name, query}]"}},
)
def list_queries(
    request: Request,
    conn: DbConn,
    org: AnyOrg,
    per_page: Annotated[str | None, Query(alias="perPage")] = None,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken")] = None,
) -> JSONResponse:
    _reader(org)
    limit = min(positive_parameter(per_page, "perPage") or DEFAULT_PER_PAGE, MAX_PER_PAGE)
    after = positive_parameter(next_page_token, "nextPageToken")
    found = subscription_store.own_queries(conn, org.id, after, limit + 1)
    headers = dict(EPCIS_HEADERS)
    if len(found) > limit:
        found = found[:limit]
        headers["Link"] = next_page_link(request, found[-1].id)
    return JSONResponse([_query_body(named) for named in found], headers=headers)


def _json_body(raw: bytes, content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(
            400, "not_json", "the body is not JSON", type="epcisException:ValidationException"
        ) from None


@router.post(
    "/epcis/queries",
    status_code=201,
    response_class=Response,
    summary="EPCIS 2.0 REST binding: create a named query ({name, query}); its parameters are"
    " checked as the events query checks them",
    responses={
        201: {"headers": {"Location": {"description": "/epcis/queries/{name}", "schema": {}}}},
        415: {"description": "not a JSON body"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "query"],
                        "properties": {"name": {"type": "string"}, "query": {"type": "object"}},
                    }
                }
            },
        }
    },
)
async def create_query(request: Request, conn: DbConn, org: AnyOrg, config: Config) -> Response:
    # The body was read by the Guard before any connection was taken; the request's one
    # connection (the key check's) does the work: a second one per request could exhaust
    # the pool with every request waiting for another.
    body = _json_body(await request.body(), request.headers.get("content-type", ""))
    return await run_in_threadpool(_create_query, conn, org, body, config.max_named_queries)


def _create_query(conn: Conn, org: Person, body: Any, limit: int) -> Response:
    _reader(org)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise _query_problem("name", 'the body is {"name": ..., "query": {...}}')
    name = body["name"]
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or not name.isprintable()
        or "/" in name
        or name in (".", "..")  # a path segment a client or proxy would resolve away
    ):
        raise _query_problem(
            "name", f"a name of 1 to {MAX_NAME_LENGTH} printable characters, no /, not . or .."
        )
    query = body.get("query")
    try:
        params = query_params(query)
        parse_event_query(params)  # refused here, never stored
    except QueryParameterError as exc:
        raise _query_problem(exc.name, exc.detail) from None
    assert isinstance(query, dict)
    try:
        subscription_store.create_query(conn, org.id, name, query, params, limit)
    except subscription_store.LimitReached as exc:
        raise _limit_reached("named queries", exc.limit) from None
    except subscription_store.DuplicateName:
        raise Problem(
            409,
            "query_exists",
            "you have a named query of that name",
            type="epcisException:ResourceAlreadyExistsException",
        ) from None
    return Response(
        status_code=201,
        headers={"Location": f"/epcis/queries/{quote(name, safe='')}", **EPCIS_HEADERS},
    )


def _limit_reached(what: str, limit: int) -> Problem:
    return Problem(
        403,
        "limit_reached",
        f"an organisation may hold {limit} {what} at most; delete one first",
        limit=limit,
    )


def _query_problem(name: str, detail: str) -> Problem:
    return Problem(400, "query_parameter", detail, type=_QUERY_PROBLEM, parameter=name)


@router.get(
    "/epcis/queries/{query_name}",
    summary="EPCIS 2.0 REST binding: one of your named queries (as the OpenAPI's schema says,"
    " an array holding it)",
    responses={200: {"description": "[{name, query}]"}},
)
def get_query(conn: DbConn, org: AnyOrg, query_name: str) -> JSONResponse:
    named = _own_query(conn, _reader(org), query_name)
    return JSONResponse([_query_body(named)], headers=EPCIS_HEADERS)


@router.delete(
    "/epcis/queries/{query_name}",
    status_code=204,
    response_class=Response,
    summary="EPCIS 2.0 REST binding: delete a named query, its subscriptions and its streams",
)
def delete_query(conn: DbConn, org: AnyOrg, query_name: str) -> Response:
    named = _own_query(conn, _reader(org), query_name)
    subscription_store.delete_query(conn, named.id)
    return Response(status_code=204, headers=EPCIS_HEADERS)


@router.options(
    "/epcis/queries/{query_name}",
    status_code=204,
    responses={204: {"description": "the versions; the query may be read and deleted"}},
    summary="EPCIS 2.0 REST binding: what one of your named queries offers",
)
def query_options(conn: DbConn, org: AnyOrg, query_name: str) -> Response:
    _own_query(conn, _reader(org), query_name)
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, GET, DELETE"})


@router.get(
    "/epcis/queries/{query_name}/events",
    response_class=DocumentResponse,
    summary="EPCIS 2.0 REST binding: the named query's events, as the events query with its"
    " parameters answers them (paged by perPage/nextPageToken); with stream=true and a"
    " WebSocket upgrade, a stream of the newly captured ones",
    responses={
        200: {
            "description": "an EPCISQueryDocument",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        101: {"description": "the WebSocket stream (stream=true, Upgrade: websocket)"},
    },
)
def query_events_route(
    request: Request, response: Response, conn: DbConn, org: AnyOrg, query_name: str
) -> Response:
    named = _own_query(conn, _reader(org), query_name)
    asked = request.query_params.multi_items()
    for name, _ in asked:
        if name in _SUBSCRIPTION_PARAMS:
            raise Problem(
                400,
                "subscription_controls",
                f"{name} is for a subscription: stream=true over a WebSocket, or POST"
                f" /epcis/queries/{query_name}/subscriptions",
                type=_SUBSCRIPTION_PROBLEM,
                parameter=name,
            )
    epc_format = epc_format_of(request)
    page = query_page(request, response, conn, org, [*named.pairs, *asked])
    document, format_header = answer_document(epc_format, conn, page)
    document["epcisBody"]["queryResults"]["queryName"] = named.name
    headers = {**EPCIS_HEADERS, **format_header, **dict(response.headers)}
    headers.pop("content-length", None)
    return query_answer(request, document, headers)


@router.options(
    "/epcis/queries/{query_name}/events",
    status_code=204,
    responses={204: {"description": "the versions of the named query's events"}},
    summary="EPCIS 2.0 REST binding: what the named query's events resource offers",
)
def query_events_options(conn: DbConn, org: AnyOrg, query_name: str) -> Response:
    _own_query(conn, _reader(org), query_name)
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, GET"})


# ---- the WebSocket stream -------------------------------------------------------------------


class LogWakeups:
    """Wakes the API's streams when the anchor worker gives log positions (LISTEN, migration
    0006's notices): one listening connection for every stream of the process, started with
    the first stream. Streams also look every second, should a notice be lost."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._waiters: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters[event] = asyncio.get_running_loop()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._listen, name="log-wakeups", daemon=True
                )
                self._thread.start()
        return event

    def unregister(self, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.pop(event, None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters.items())
        for event, loop in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    log_store.listen_for_page_changes(conn)
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            if notice.payload == LOG_PAYLOAD:
                                self._wake()
            except psycopg.Error as exc:
                log.warning("stream wake-ups lost the database (%s); polling", exc)
                self._stop.wait(1.0)


# How long an open stream counts against its org's cap without being renewed, and how often a
# living stream renews it: a process that dies stops counting within the lease.
STREAM_LEASE = timedelta(seconds=30)
_STREAM_RENEW_EVERY_S = 10.0


def _count_stream(
    pool: ConnectionPool, org_id: int, limit: int
) -> subscription_store.StreamOpening:
    with pool.connection() as conn:
        return subscription_store.open_stream(conn, org_id, limit, STREAM_LEASE)


def _still_counted(pool: ConnectionPool, stream_id: int) -> bool:
    """Renew the stream's lease; False once its row is gone (the lease lapsed and an opening
    dropped it). A database that does not answer is not the stream's fault: True, and the lease
    runs on (if it lapses meanwhile, a later renewal finds out)."""
    try:
        with pool.connection() as conn:
            return subscription_store.renew_stream(conn, stream_id, STREAM_LEASE)
    except psycopg.Error as exc:
        log.warning("stream %d: lease not renewed (%s)", stream_id, exc)
        return True


def _uncount_stream(pool: ConnectionPool, stream_id: int) -> None:
    try:
        with pool.connection() as conn:
            subscription_store.close_stream(conn, stream_id)
    except psycopg.Error as exc:  # its lease lapses instead
        log.warning("stream %d not uncounted (%s); it stops counting at its lease", stream_id, exc)


@dataclass(frozen=True)
class _Stream:
    org_id: int
    query_id: int
    name: str
    scope: int | None
    position: int
    report_if_empty: bool
    # Asked again at every step: a stream lives as long as its key does, not its handshake.
    credentials: HTTPAuthorizationCredentials | None = field(repr=False)


def _refusal(code: str, detail: str) -> Problem:
    return Problem(400, code, detail, type=_SUBSCRIPTION_PROBLEM)


def _open_stream(
    pool: ConnectionPool, authorization: str, query_name: str, asked: list[tuple[str, str]]
) -> _Stream:
    """Authenticate the handshake as the HTTP API does (the API key), find the caller's named
    query and where the stream starts: after `nextPageToken` (a position a delivery carried),
    else before the first event recorded since `initialRecordTime`, else at the log's end.
    The Guard middleware sees no WebSocket, so its checks of the target are made here."""
    texts = [query_name, *(part for pair in asked for part in pair)]
    if any("\x00" in text for text in texts):
        raise Problem(400, "invalid_text", "text must not contain U+0000 (NUL)")
    if sum(map(len, texts)) > MAX_TARGET_BYTES:
        raise Problem(
            414, "uri_too_long", f"request targets are limited to {MAX_TARGET_BYTES} bytes"
        )
    scheme, _, key = authorization.partition(" ")
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=key.strip())
        if scheme.lower() == "bearer" and key.strip()
        else None
    )
    with pool.connection() as conn:
        person = _reader(auth.caller(conn, credentials, "GET"))
        named = _own_query(conn, person, query_name)
        seen: dict[str, str] = {}
        for name, value in asked:
            if name in seen:
                raise _refusal("query_parameter", f"{name} given more than once")
            seen[name] = value
        if seen.pop("stream", "true") != "true":
            raise _refusal("subscription_controls", "stream is true")
        if _SCHEDULE & seen.keys():
            raise _refusal(
                "subscription_controls", "a WebSocket streams: no schedule (POST a subscription)"
            )
        report = seen.pop("reportIfEmpty", "false")
        if report not in ("true", "false"):
            raise _refusal("subscription_controls", "reportIfEmpty is true or false")
        after = seen.pop("nextPageToken", None)
        initial = seen.pop("initialRecordTime", None)
        if seen:
            raise _refusal("query_parameter", f"{sorted(seen)[0]} is not a stream parameter")
        if after is not None:
            if not (after == "-1" or (after.isascii() and after.isdigit() and len(after) < 19)):
                raise _refusal("query_parameter", "nextPageToken is a position a delivery gave")
            position = int(after)
        else:
            since = _time("initialRecordTime", initial) if initial is not None else None
            position = start_position(conn, since)
    return _Stream(
        person.id,
        named.id,
        named.name,
        scope_of(person.id, person.role),
        position,
        report == "true",
        credentials,
    )


def _time(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _refusal("subscription_controls", f"{name} is an RFC 3339 time") from None
    if value.tzinfo is None:
        raise _refusal("subscription_controls", f"{name} gives its time zone")
    return value


@dataclass(frozen=True)
class _Step:
    gone: bool = False
    revoked: bool = False
    message: str | None = None
    position: int | None = None
    full: bool = False


def _stream_step(pool: ConnectionPool, stream: _Stream, position: int) -> _Step:
    """What follows `position` for the stream (run in a worker thread: it waits on the
    database); `gone` once the named query was deleted, `revoked` once the key was."""
    with pool.connection() as conn:
        try:
            auth.caller(conn, stream.credentials, "GET")
        except Problem:
            return _Step(revoked=True)
        named = subscription_store.query_by_id(conn, stream.query_id)
        if named is None:
            return _Step(gone=True)
        batch = next_batch(conn, parse_event_query(named.pairs), stream.scope, position)
    if batch is None:
        return _Step()
    if not batch.page.events and not stream.report_if_empty:
        return _Step(position=batch.position, full=batch.full)
    document = named_results(render(batch.page), stream.name, None, batch.position)
    return _Step(message=orjson.dumps(document).decode(), position=batch.position, full=batch.full)


@router.websocket("/epcis/queries/{query_name}/events")
async def stream_events(websocket: WebSocket, query_name: str) -> None:
    """The named query's newly captured events, each message an EPCISQueryDocument carrying
    the stream position (queryResults' POSITION_KEY) to resume after with nextPageToken."""
    pool: ConnectionPool = websocket.app.state.pool
    try:
        stream = await run_in_threadpool(
            _open_stream,
            pool,
            websocket.headers.get("authorization", ""),
            query_name,
            websocket.query_params.multi_items(),
        )
    except Problem as exc:
        await _refuse_handshake(websocket, exc)
        return
    config: ApiConfig = websocket.app.state.config
    # Counted across every API process (open_streams), not in this one's memory.
    opening = await run_in_threadpool(_count_stream, pool, stream.org_id, config.max_streams)
    stream_id = opening.stream_id
    if stream_id is None:
        await _refuse_handshake(websocket, _limit_reached("open streams", opening.cap))
        return
    try:
        await _serve_stream(websocket, pool, stream, stream_id)
    finally:
        await run_in_threadpool(_uncount_stream, pool, stream_id)


async def _refuse_handshake(websocket: WebSocket, exc: Problem) -> None:
    """Answered as an HTTP problem (the ASGI denial response, which uvicorn offers), like the
    same request without the upgrade; a server without it gets a close with the policy code,
    which it answers 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            problem_response(exc.status, exc.code, exc.detail, websocket.url.path, **exc.extra)
        )
    else:
        await websocket.close(code=POLICY_VIOLATION, reason=exc.code)


async def _serve_stream(
    websocket: WebSocket, pool: ConnectionPool, stream: _Stream, stream_id: int
) -> None:
    wakeups: LogWakeups = websocket.app.state.log_wakeups
    wake = wakeups.register()
    closed = asyncio.Event()

    async def watch() -> None:
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # the client says nothing we need
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            closed.set()

    async def serve() -> None:
        position = stream.position
        try:
            while not closed.is_set():
                wake.clear()  # before reading: a wake-up during the read is kept for the next
                step = await run_in_threadpool(_stream_step, pool, stream, position)
                if step.gone:
                    await websocket.close(code=GOING_AWAY, reason="query deleted")
                    return
                if step.revoked:
                    await websocket.close(code=POLICY_VIOLATION, reason="invalid_api_key")
                    return
                if step.message is not None:
                    await websocket.send_text(step.message)
                if step.position is not None:
                    position = step.position
                if step.full:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left

    await websocket.accept(headers=[(k.encode(), v.encode()) for k, v in EPCIS_HEADERS.items()])
    watcher = asyncio.create_task(watch())
    serving = asyncio.create_task(serve())
    try:
        # The lease is renewed beside the serving, not between its steps: a stream counts for
        # as long as it is served (a send held up by a client that does not read included),
        # and is no longer served once it does not count.
        while not (await asyncio.wait({serving}, timeout=_STREAM_RENEW_EVERY_S))[0]:
            if not await run_in_threadpool(_still_counted, pool, stream_id):
                serving.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        websocket.close(code=TRY_AGAIN_LATER, reason="stream lease lapsed"), 5
                    )
                return
        serving.result()  # a failure of the serving is the handler's, as it always was
    finally:
        serving.cancel()
        wakeups.unregister(wake)
        watcher.cancel()


# ---- webhook subscriptions ------------------------------------------------------------------


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def subscription_body(subscription: Subscription) -> dict[str, Any]:
    """The subscription as the REST binding shows it; never its signatureToken."""
    body: dict[str, Any] = {
        "subscriptionID": str(subscription.subscription_id),
        "queryName": subscription.query_name,
        "dest": subscription.dest,
        "createdAt": _utc(subscription.created_at),
        "reportIfEmpty": subscription.report_if_empty,
        "signed": subscription.signature_token is not None,
        "status": "suspended"
        if subscription.suspended
        else "failing"
        if subscription.failing_since is not None
        else "active",
    }
    if subscription.schedule is not None:
        body["schedule"] = subscription.schedule
    else:
        body["stream"] = True
    if subscription.last_notified_at is not None:
        body["lastNotifiedAt"] = _utc(subscription.last_notified_at)
    if subscription.initial_record_time is not None:
        body["initialRecordTime"] = _utc(subscription.initial_record_time)
    if subscription.last_error is not None:
        body["lastError"] = subscription.last_error
    return body


def _own_subscription(conn: Conn, named: NamedQuery, subscription_id: str) -> Subscription:
    try:
        wanted: UUID | None = UUID(subscription_id)
    except ValueError:
        wanted = None
    found = (
        subscription_store.own_subscription(conn, named.id, wanted) if wanted is not None else None
    )
    if found is None:
        raise Problem(
            404,
            "unknown_subscription",
            "no subscription of that query has that id",
            type="epcisException:NoSuchNameException",
        )
    return found


@router.get(
    "/epcis/queries/{query_name}/subscriptions",
    summary="EPCIS 2.0 REST binding: the named query's webhook subscriptions, paged",
    responses={200: {"description": "the subscriptions"}},
)
def list_subscriptions(
    request: Request,
    conn: DbConn,
    org: AnyOrg,
    query_name: str,
    per_page: Annotated[str | None, Query(alias="perPage")] = None,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken")] = None,
) -> JSONResponse:
    named = _own_query(conn, _reader(org), query_name)
    limit = min(positive_parameter(per_page, "perPage") or DEFAULT_PER_PAGE, MAX_PER_PAGE)
    after = positive_parameter(next_page_token, "nextPageToken")
    found = subscription_store.subscriptions_of(conn, named.id, after, limit + 1)
    headers = dict(EPCIS_HEADERS)
    if len(found) > limit:
        found = found[:limit]
        headers["Link"] = next_page_link(request, found[-1].id)
    return JSONResponse([subscription_body(s) for s in found], headers=headers)


@router.post(
    "/epcis/queries/{query_name}/subscriptions",
    status_code=201,
    summary="EPCIS 2.0 REST binding: subscribe a webhook (dest, signatureToken, reportIfEmpty,"
    " initialRecordTime, and stream: true or a schedule) to the named query",
    responses={
        201: {
            "description": "the subscription",
            "headers": {"Location": {"description": "…/subscriptions/{id}", "schema": {}}},
        },
        415: {"description": "not a JSON body"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def subscribe(
    request: Request, conn: DbConn, org: AnyOrg, config: Config, query_name: str
) -> Response:
    body = _json_body(await request.body(), request.headers.get("content-type", ""))  # as above
    return await run_in_threadpool(
        _subscribe,
        conn,
        org,
        query_name,
        body,
        config.subscription_loopback,
        config.max_subscriptions,
    )


def _subscribe(
    conn: Conn, org: Person, query_name: str, body: Any, loopback: bool, limit: int
) -> Response:
    named = _own_query(conn, _reader(org), query_name)
    if not isinstance(body, dict):
        raise _refusal("subscription_controls", "the body is a JSON object")
    unknown = sorted(
        set(body)
        - {
            "dest",
            "signatureToken",
            "secret",
            "reportIfEmpty",
            "initialRecordTime",
            "stream",
            "schedule",
        }
    )
    if unknown:
        raise _refusal("subscription_controls", f"{unknown[0]!r} is not a subscription member")
    schedule = body.get("schedule")
    stream = body.get("stream")
    if (schedule is None) == (stream is None) or stream not in (None, True):
        raise _refusal("subscription_controls", "give either stream: true or a schedule, not both")
    first_time = datetime.now(UTC)
    if schedule is not None:
        try:
            parsed = parse_schedule(schedule)
        except ScheduleRefused as exc:
            raise _refusal("subscription_controls", str(exc)) from None
        found = next_time(parsed, first_time)
        if found is None:
            raise _refusal("subscription_controls", "the schedule matches no time")
        first_time = found
    dest = body.get("dest")
    try:
        check_dest(dest, loopback)
        assert isinstance(dest, str)
        _resolves_allowed(dest, loopback)
    except DestRefused as exc:
        raise _refusal("dest_refused", str(exc)) from None
    # GS1's schema requires `secret` where its examples and description say signatureToken:
    # either names the token (both: the same one).
    token = body.get("signatureToken", body.get("secret"))
    if "secret" in body and "signatureToken" in body and body["secret"] != token:
        raise _refusal("subscription_controls", "secret and signatureToken differ")
    if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= 1024):
        raise _refusal("subscription_controls", "signatureToken is a string (1-1024 characters)")
    report = body.get("reportIfEmpty", False)
    if not isinstance(report, bool):
        raise _refusal("subscription_controls", "reportIfEmpty is true or false")
    initial = body.get("initialRecordTime")
    if initial is not None and not isinstance(initial, str):
        raise _refusal("subscription_controls", "initialRecordTime is an RFC 3339 time")
    since = _time("initialRecordTime", initial) if initial is not None else None
    with conn.transaction():
        try:
            subscription = subscription_store.subscribe(
                conn,
                named,
                dest,
                token,
                report,
                schedule,
                since,
                start_position(conn, since),
                first_time,
                limit,
            )
        except subscription_store.LimitReached as exc:
            raise _limit_reached("webhook subscriptions", exc.limit) from None
    location = (
        f"/epcis/queries/{quote(named.name, safe='')}/subscriptions/{subscription.subscription_id}"
    )
    return JSONResponse(
        subscription_body(subscription),
        status_code=201,
        headers={"Location": location, **EPCIS_HEADERS},
    )


def _resolves_allowed(dest: str, loopback: bool) -> None:
    """Refuse, before anything is stored, a dest whose name resolves to an address it may not
    reach (the worker checks again, and connects only to an address it checked)."""
    _, host, port = check_dest(dest, loopback)
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise DestRefused(f"dest host {host} does not resolve") from None
    for *_, sockaddr in found:
        if not address_allowed(str(sockaddr[0]), loopback):
            # Which address is not said: the answer would map the operator's internal names.
            raise DestRefused(f"dest host {host} resolves to an address that is not public")


@router.get(
    "/epcis/queries/{query_name}/subscriptions/{subscription_id}",
    summary="EPCIS 2.0 REST binding: one subscription of your named query",
    responses={200: {"description": "the subscription"}},
)
def get_subscription(
    conn: DbConn, org: AnyOrg, query_name: str, subscription_id: str
) -> JSONResponse:
    named = _own_query(conn, _reader(org), query_name)
    found = _own_subscription(conn, named, subscription_id)
    return JSONResponse(subscription_body(found), headers=EPCIS_HEADERS)


@router.delete(
    "/epcis/queries/{query_name}/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="EPCIS 2.0 REST binding: unsubscribe",
)
def unsubscribe(conn: DbConn, org: AnyOrg, query_name: str, subscription_id: str) -> Response:
    named = _own_query(conn, _reader(org), query_name)
    found = _own_subscription(conn, named, subscription_id)
    subscription_store.unsubscribe(conn, found.id)
    return Response(status_code=204, headers=EPCIS_HEADERS)


@router.options(
    "/epcis/queries/{query_name}/subscriptions",
    status_code=204,
    responses={204: {"description": "the versions; subscriptions may be listed and made"}},
    summary="EPCIS 2.0 REST binding: what the named query's subscriptions offer",
)
def subscriptions_options(conn: DbConn, org: AnyOrg, query_name: str) -> Response:
    _own_query(conn, _reader(org), query_name)
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, GET, POST"})


@router.options(
    "/epcis/queries/{query_name}/subscriptions/{subscription_id}",
    status_code=204,
    responses={204: {"description": "the versions; the subscription may be read and deleted"}},
    summary="EPCIS 2.0 REST binding: what one subscription offers",
)
def subscription_options(
    conn: DbConn, org: AnyOrg, query_name: str, subscription_id: str
) -> Response:
    named = _own_query(conn, _reader(org), query_name)
    _own_subscription(conn, named, subscription_id)
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, DELETE, GET"})

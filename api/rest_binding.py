"""The EPCIS 2.0 REST binding's own resources: the top level, OPTIONS on every resource, the
synchronous capture of one event (POST /epcis/events) and page-token invalidation."""

from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

from api.deps import AnyOrg, Config, DbConn, Enterprise
from api.enterprise import (
    EPCIS_HEADERS,
    VERSION_HEADERS,
    DocumentResponse,
    capture_now,
    json_answer,
    query_recorded,
)
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, EPCIS_BASE_PATH, Problem, problems
from epcis.model import EVENT_TYPES
from epcis.query import EPCIS_CONTEXT
from records import page_token_store

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})
EVENTS_TOPIC = "http:/epcis/events"
# The top-level resources this repository serves (GS1 REST binding, GET /).
TOP_LEVEL = (
    "capture",
    "events",
    "eventTypes",
    "epcs",
    "bizSteps",
    "bizLocations",
    "readPoints",
    "dispositions",
    "queries",
)
JSON_MEDIA = ("application/json", "application/ld+json")
# Longer than any token this repository gives (page_token_revocations allows 512).
MAX_TOKEN_LENGTH = 512


@router.get(
    EPCIS_BASE_PATH,
    response_class=DocumentResponse,
    summary="EPCIS 2.0 REST binding: the top-level resources",
)
@router.get(EPCIS_BASE_PATH + "/", response_class=DocumentResponse, include_in_schema=False)
def top_level(request: Request, org: AnyOrg) -> Response:
    collection = {"@context": [EPCIS_CONTEXT], "type": "Collection", "member": list(TOP_LEVEL)}
    return json_answer(request, collection, EPCIS_HEADERS)


@router.delete(
    EPCIS_BASE_PATH + "/nextPageToken/{token:path}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "invalidated: the queries and lists refuse it from now on"}},
    summary="EPCIS 2.0 REST binding: invalidate a page token (for your organisation)",
)
def forget_page_token(conn: DbConn, org: AnyOrg, token: str) -> Response:
    """A page token here is a position, which would work forever: once deleted, every query
    and list refuses it for the caller's organisation (a 400 QueryParameterException); the
    same token is another organisation's own to keep."""
    if not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        raise Problem(
            400, "invalid_page_token", f"a page token has 1 to {MAX_TOKEN_LENGTH} characters"
        )
    page_token_store.revoke(conn, org.id, token)
    return Response(status_code=204)


@router.post(
    EPCIS_BASE_PATH + "/events",
    status_code=201,
    response_class=DocumentResponse,
    responses={
        201: {
            "description": "captured: the event as recorded; Location: its resource",
            "headers": {"Location": {"description": "/epcis/events/{eventID}", "schema": {}}},
        },
        **problems(409, 415),
    },
    summary="EPCIS 2.0 REST binding: capture one event, synchronously",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media: {"schema": {"type": "object"}} for media in JSON_MEDIA},
        }
    },
)
async def capture_one_event(
    request: Request, conn: DbConn, config: Config, org: Enterprise
) -> JSONResponse:
    """One EPCIS event, captured as `POST /epcis/capture` would capture a document holding
    only it, but now: 201 with the event as recorded, 409 if it was captured before, 400 with
    the reject code if it is refused (nothing stored)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_MEDIA:
        raise Problem(415, "unsupported_media_type", "send one event as application/json")
    payload = await request.body()
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Problem(400, "not_json", "the body is not JSON") from None
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise Problem(
            400, "not_one_event", f"send one EPCIS event (type one of {sorted(EVENT_TYPES)})"
        )
    captured = capture_now(request, conn, config, org, EVENTS_TOPIC, "rollback", payload)
    refused = captured.stored.refused or captured.result.refused
    if refused:
        first = refused[0]
        status = 413 if first.code.value == "payload_too_large" else 400
        raise Problem(status, first.code.value, first.detail)
    (answer,) = captured.batch.answers(captured.stored.new)
    if answer.status == "duplicate":
        raise Problem(409, "already_captured", f"this event was captured before: {answer.hash_id}")
    (event,) = query_recorded(conn, org, answer.hash_id)
    location = f"{EPCIS_BASE_PATH}/events/{quote(str(event['eventID']), safe='')}"
    return DocumentResponse(event, status_code=201, headers={**EPCIS_HEADERS, "Location": location})


class _OptionsRoute(APIRoute):
    """A route that matches OPTIONS only: any other method is not its business, so a GET of
    an unknown path stays a 404 (an ordinary route would call it a 405)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("method") != "OPTIONS":
            return Match.NONE, {}
        return super().matches(scope)


options_router = APIRouter(
    route_class=_OptionsRoute, responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS}
)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the app's routes serve at the request's path (OPTIONS by this route)."""
    methods = {"OPTIONS"}
    for route in iter_route_contexts(request.app.router.routes):
        if isinstance(route.original_route, _OptionsRoute) or not route.methods:
            continue
        # Asked as a GET, a route serving the path matches FULL or PARTIAL (another method).
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= route.methods
    methods.discard("HEAD")
    return sorted(methods)


def _options(request: Request) -> Response:
    """The methods and the EPCIS and CBV versions of the resource (GS1 REST binding), to
    anyone: they are the public API's, as the OpenAPI document shows them (and a browser's
    CORS preflight carries no key)."""
    allowed = _allowed_methods(request)
    if allowed == ["OPTIONS"]:
        raise Problem(404, "not_found", "no such resource")
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": ", ".join(allowed)})


async def _options_of_the_top(request: Request) -> Response:
    return _options(request)


async def _options_of_a_resource(request: Request, resource: str) -> Response:
    """`resource`: the path under /epcis (read off the request, as every route's is)."""
    return _options(request)


for _path, _endpoint, _listed in (
    (EPCIS_BASE_PATH, _options_of_the_top, False),
    (EPCIS_BASE_PATH + "/", _options_of_the_top, False),
    (EPCIS_BASE_PATH + "/{resource:path}", _options_of_a_resource, True),
):
    options_router.add_api_route(
        _path,
        _endpoint,
        methods=["OPTIONS"],
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Allow and the GS1-EPCIS/GS1-CBV version headers"}},
        summary="EPCIS 2.0 REST binding: the methods and versions of a resource",
        include_in_schema=_listed,
    )

"""Schemathesis driven by GS1's EPCIS 2.0 OpenAPI document (not tracefin's), against the
running server (`tracefin api` under uvicorn) at the REST binding's base path `/epcis`.

The server's store holds every event of GS1's JSON examples, captured by `maker`, which owns
what they name. Every operation of GS1's document gets generated requests with no key, an
enterprise key, a financier key and a regulator key. Checks: no 5xx; every status answered is
one GS1's document declares for the operation (`ALLOWED_UNDECLARED` lists where the standard
itself requires a status the document leaves out, each with the reason); errors are problem
objects with their status and a stable code; the media types and bodies the document declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from tests.support.api import SeededWorld, copy_of
from tests.support.examples import examples
from tests.support.gs1_examples import EXAMPLES, OPENAPI, own_the_examples, work_all
from tests.support.processes import ApiProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLES = {"anonymous": None, "enterprise": "maker", "financier": "bank", "regulator": "regulator"}
PROBLEM_JSON = "application/problem+json"

schema = schemathesis.openapi.from_path(OPENAPI)


@pytest.fixture(scope="module", params=list(ROLES))
def role(request: pytest.FixtureRequest) -> str:
    """One server per role: each may run on its own test worker (tests/conftest.py)."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(
    role: str, seeded_world: SeededWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    with copy_of(seeded_world) as world:
        own_the_examples(world.database_url)
        api = ApiProcess(
            world.database_url,
            tmp_path_factory.mktemp("api"),
            api_public_rate_per_minute="1000000",
        )
        api.start()
        try:
            capture_the_examples(api.url, world)
            yield api
        finally:
            api.terminate()


def capture_the_examples(url: str, world: SeededWorld) -> None:
    """Every GS1 JSON example, captured by `maker` as jobs and worked to the end."""
    auth = {"Authorization": f"Bearer {world.keys['maker']}"}
    for example in sorted(EXAMPLES.rglob("*.jsonld")):
        queued = httpx.post(
            f"{url}/epcis/capture",
            content=example.read_bytes(),
            headers={**auth, "Content-Type": "application/json"},
            timeout=30,
        )
        assert queued.status_code == 202, (example.name, queued.text)
    work_all(world.database_url)
    found = httpx.get(f"{url}/epcis/events", params={"perPage": "500"}, headers=auth, timeout=30)
    listed = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(listed) > 50, found.text[:500]  # the examples' 56 events, less repeats, and more


# Statuses the standard requires where GS1's OpenAPI document leaves them out, by operation
# (method, path template) or "*" for every operation; docs/api.md lists them too.
ALLOWED_UNDECLARED: dict[tuple[str, str] | str, dict[int, str]] = {
    "*": {
        # EPCIS 2.0 8.2.7.1 / 12.2: a malformed query parameter, path value or header is a
        # QueryParameterException / ValidationException (400); the document declares 400 on
        # some operations only (e.g. not on GET /events).
        400: "a malformed parameter, path value or header",
        # RFC 9110: a method the resource does not serve (e.g. TRACE), with Allow.
        405: "a method the resource does not serve",
        # A request target over 8 KiB (MAX_TARGET_BYTES): 414, declared only on query ops.
        414: "a request target over 8 KiB",
    },
    # The standard's security applies to every operation; GS1's document leaves 401 out here.
    # A page token is invalidated for the caller's organisation, so the caller must be known.
    ("DELETE", "/nextPageToken/{token}"): {401: "no key: whose token would it be?"},
}
# maxEventCount exceeded: the standard's QueryTooLargeException (413), declared only on
# GET /queries/{queryName}/events, answered by every events query.
QUERY_TOO_LARGE = {413: "maxEventCount exceeded (QueryTooLargeException)"}


def declared_status(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """The status is one GS1's document declares for the operation, or one ALLOWED_UNDECLARED
    names for it."""
    operation = case.operation
    declared = set(operation.definition.raw.get("responses", {}))
    status = response.status_code
    allowed = dict(ALLOWED_UNDECLARED["*"])
    allowed |= ALLOWED_UNDECLARED.get((operation.method.upper(), operation.path), {})
    if operation.method.upper() == "GET" and operation.path.endswith("/events"):
        allowed |= QUERY_TOO_LARGE
    assert str(status) in declared or status in allowed, (
        f"{operation.method.upper()} {operation.path} answered {status}, which GS1's document"
        f" does not declare ({sorted(declared)}): {response.text[:300]}"
    )


# A WebSocket upgrade without a valid handshake (GS1's document has `Upgrade: websocket` on the
# named query's events, schemathesis sends no Sec-WebSocket-Key) is answered by uvicorn itself,
# before any route, in plain text: the one error that is no problem object.
MALFORMED_HANDSHAKE = b"Failed to open a WebSocket connection"


def problem_for_errors(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error is a problem object with its status and a stable code, never a traceback."""
    if response.status_code < 400:
        return
    upgrade = {k.lower(): v for k, v in (case.headers or {}).items()}.get("upgrade", "")
    if upgrade.lower() == "websocket" and response.content.startswith(MALFORMED_HANDSHAKE):
        assert response.status_code == 400, response.status_code
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
        f"{response.status_code} answered with {content_type!r}, not {PROBLEM_JSON}"
    )
    body = orjson.loads(response.content)
    assert isinstance(body, dict), f"the problem is not an object: {response.text[:200]}"
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert "Traceback" not in response.text, response.text[:500]


@schema.parametrize()
@settings(
    max_examples=examples(20),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_gs1_openapi_requests_conform(
    case: schemathesis.Case, role: str, server: ApiProcess, seeded_world: SeededWorld
) -> None:
    slug = ROLES[role]
    headers = {"Authorization": f"Bearer {seeded_world.keys[slug]}"} if slug else {}
    logged = len(server.log_text())
    response = case.call(base_url=f"{server.url}/epcis", headers=headers)
    try:
        case.validate_response(
            response,
            checks=[not_a_server_error, declared_status, problem_for_errors],
            headers=headers,
        )
    except FailureGroup as failure:
        failure.add_note(f"The server logged:\n{server.log_text()[logged:][-4000:]}")
        raise

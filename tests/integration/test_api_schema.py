"""Schemathesis against the app's own OpenAPI document, in process, over a seeded world.

Every operation of /openapi.json gets generated requests (schemathesis' examples, coverage and
fuzzing phases; at most 30 fuzzed examples each) four times: with no key, an enterprise key, a
financier key and a regulator key. Each role gets its own copy of test_api's world (orgs with
keys, 14 anchored events, a product, a supervised warehouse, a credit line and a pledged lot), so
what one role's requests write cannot change what another role's requests see.

Checks that run:
- `not_a_server_error`: no generated request, valid or not, may get a 5xx; the traceback the app
  logged is attached to the failure.
- `status_code_conformance`, `content_type_conformance`: every status and media type an operation
  answers is declared (problems as application/problem+json on every router; HTML, QR images and
  Prometheus text where they are served).
- `response_schema_conformance`, `response_headers_conformance`, `missing_required_header`: these
  pass today. Note that a body is only validated when its status code and media type are
  declared, which in practice means the 2xx JSON bodies.
- `problem_for_errors` (ours, from the design's "HTTP API"): every 4xx/5xx is an
  `application/problem+json` object whose `status` matches and which carries a stable `code`.

Checks switched off, because the OpenAPI document does not describe input rules the routes
check in code (they answer 400/422 problems, never a crash):
- `positive_data_acceptance`: path and query values the routes check in code (GTIN digits, event
  hash, EPC and lot identifiers, http(s) URLs for QR codes, a capture body) have no `pattern` or
  request body in the document, so schema-valid requests get a 400/422.
- `negative_data_rejection`: pydantic's lax mode accepts what the document forbids (a number for a
  `date-time` query parameter, `0` for a boolean), which is harmless.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from psycopg_pool import ConnectionPool
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.examples import examples
from tests.support.postgres import admin_url
from tests.support.world import seed_world
from tracefin.processes.api import build_app
from tracefin.schema import scratch_database
from tracefin.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Role under test -> the org of test_api's world whose key it sends (None: no key at all).
ROLES = {"anonymous": None, "enterprise": "maker", "financier": "bank", "regulator": "regulator"}
PROBLEM_JSON = "application/problem+json"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _settings(database_url: str, chain_rpc_url: str | None) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,  # type: ignore[call-arg]
        chain_rpc_url=chain_rpc_url,
        api_public_rate_per_minute=1_000_000,  # thousands of requests from one client
    )


# The document comes from /openapi.json of an app whose pool is never opened (the schema does not
# depend on data); the generated requests go to the seeded app of the `seeded` fixture.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    build_app(
        _settings("postgresql://unused@127.0.0.1/unused", None),
        ConnectionPool("postgresql://unused@127.0.0.1/unused", open=False),
    ),
)


class CrashRecorder:
    """An ASGI wrapper keeping the traceback of every exception the app lets escape.

    Starlette answers an unhandled exception with the app's 500 problem and then re-raises it;
    this keeps the 500 as the response and the traceback for the failure report.
    """

    def __init__(self, app: Callable[[Message, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.tracebacks: list[str] = []

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            self.tracebacks.append(traceback.format_exc())
            if not started:
                raise

    def take(self) -> list[str]:
        taken, self.tracebacks = self.tracebacks, []
        return taken


class Seeded:
    def __init__(self, app: CrashRecorder, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers


@pytest.fixture(scope="module", params=list(ROLES))
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def seeded(role: str, chain_rpc_url: str) -> Iterator[Seeded]:
    """test_api's `world`, rebuilt for each role in a database of its own."""
    with (
        scratch_database(admin_url(), "tracefin_test") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        keys, _ = seed_world(conn, chain_rpc_url)
        with ConnectionPool(url, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
            slug = ROLES[role]
            yield Seeded(
                CrashRecorder(build_app(_settings(url, chain_rpc_url), pool)),
                {"Authorization": f"Bearer {keys[slug]}"} if slug else {},
            )


def problem_for_errors(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error is a problem object with its status and a stable code, never a traceback."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
        f"{response.status_code} answered with {content_type!r}, not {PROBLEM_JSON}"
    )
    body = response.json()
    assert isinstance(body, dict), f"the problem is not an object: {response.text[:200]}"
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert "Traceback" not in response.text, response.text[:500]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    missing_required_header,
    problem_for_errors,
]


@schema.parametrize()
@settings(
    max_examples=examples(30),
    deadline=None,
    derandomize=True,  # the same requests every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_requests_conform(case: schemathesis.Case, seeded: Seeded) -> None:
    response = case.call(app=seeded.app, headers=seeded.headers)
    crashes = seeded.app.take()
    try:
        case.validate_response(response, checks=CHECKS, headers=seeded.headers)
    except FailureGroup as failure:
        for crash in crashes:
            failure.add_note(f"The app raised:\n{crash}")
        raise

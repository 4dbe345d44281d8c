"""Schemathesis driven by GS1's own OpenAPI document (the REST binding, tests/fixtures/epcis-2.0,
with GS1's LICENSE and Disclaimer), not tracefin's, against the named-query and subscription
operations (`/queries…`, served under `/epcis`): no generated request may get a 5xx or a
status code the GS1 document does not declare for the operation (beyond the problems every
tracefin route may answer: 400, 405, 413, 422, 429)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from psycopg_pool import ConnectionPool
from schemathesis.checks import not_a_server_error

from tests.support.examples import examples
from tests.support.postgres import admin_url
from tests.support.world import seed_world
from tracefin.processes.api import build_app
from tracefin.schema import scratch_database
from tracefin.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OPENAPI = Path(__file__).parents[1] / "fixtures" / "epcis-2.0" / "rest-binding" / "openapi.json"
# Every tracefin route may answer these problems (api/errors.py COMMON_PROBLEMS).
COMMON = {400, 405, 413, 422, 429}


def _document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(OPENAPI.read_bytes())
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith("/queries")
    }
    document["servers"] = [{"url": "/epcis"}]
    return document


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture(scope="module")
def served(chain_rpc_url: str) -> Iterator[tuple[Any, dict[str, str]]]:
    with (
        scratch_database(admin_url(), "tracefin_test") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        keys, _ = seed_world(conn, chain_rpc_url)
        conn.execute(
            "INSERT INTO named_queries (org_id, name, query, params)"
            " SELECT id, 'myQuery', '{\"EQ_bizStep\": \"shipping\"}',"
            " '[[\"EQ_bizStep\", \"shipping\"]]' FROM orgs WHERE slug = 'maker'"
        )
        app_settings = Settings(
            _env_file=None,
            database_url=url,  # type: ignore[call-arg]
            chain_rpc_url=chain_rpc_url,
            api_public_rate_per_minute=1_000_000,
        )
        with ConnectionPool(url, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
            yield build_app(app_settings, pool), {"Authorization": f"Bearer {keys['maker']}"}


def declared_or_common(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """The status is one GS1 declares for the operation, or a problem every route may give."""
    declared = {int(code) for code in case.operation.definition.raw["responses"] if code.isdigit()}
    assert response.status_code in declared | COMMON, (
        f"{case.method} {case.path}: {response.status_code} is not declared ({sorted(declared)})"
        f": {response.text[:300]}"
    )


@schema.parametrize()
@settings(
    max_examples=examples(30),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_gs1_openapi_requests_get_no_5xx_and_no_undeclared_status(
    case: schemathesis.Case, served: tuple[Any, dict[str, str]]
) -> None:
    app, headers = served
    response = case.call(app=app, headers=headers)
    case.validate_response(
        response, checks=[not_a_server_error, declared_or_common], headers=headers
    )

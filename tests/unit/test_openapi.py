"""The OpenAPI document says what the API really answers (others' clients are generated from it)."""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

from tracefin.processes.api import build_app
from tracefin.settings import Settings


def spec() -> dict[str, Any]:
    pool = ConnectionPool("postgresql://unused@127.0.0.1/unused", open=False)
    return build_app(Settings(_env_file=None), pool).openapi()  # type: ignore[call-arg]


def test_media_types_of_pages_qr_codes_and_metrics() -> None:
    paths = spec()["paths"]
    assert set(paths["/01/{gtin}/21/{serial}"]["get"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/html",
    }
    assert set(paths["/v1/qr"]["get"]["responses"]["200"]["content"]) == {
        "image/svg+xml",
        "image/png",
    }
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_every_operation_declares_problem_answers() -> None:
    for path, operations in spec()["paths"].items():
        for method, operation in operations.items():
            problems = {
                status
                for status, response in operation["responses"].items()
                if "application/problem+json" in response.get("content", {})
            }
            assert {"400", "422", "429", "500"} <= problems, (method, path)


def test_keyed_routes_declare_the_bearer_scheme() -> None:
    document = spec()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    keyed = document["paths"]["/v1/events"]["get"]
    assert keyed["security"] == [{"HTTPBearer": []}]
    assert {"401", "403"} <= set(keyed["responses"])
    assert "security" not in document["paths"]["/01/{gtin}/10/{lot}"]["get"]


def test_page_events_carry_their_origin() -> None:
    """Who recorded an event, who else attested it, and whether it counts (issue 13)."""
    schemas = spec()["components"]["schemas"]
    event = schemas["EventPublic"]
    assert {"recorded_by", "signed", "attested_by", "evidence"} <= set(event["required"])
    assert "reason" not in event["required"]  # only when the event does not count
    assert event["properties"]["evidence"]["enum"] == ["counts", "unattested", "declared_erroneous"]
    assert set(schemas["Recorder"]["properties"]) == {"org", "device"}
    assert set(schemas["Attester"]["properties"]) == {"org", "device", "signed"}
    assert "not_site_operator" in schemas["Reason"]["enum"]

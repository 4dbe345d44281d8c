"""The EPCIS 2.0 REST binding's own resources (issue 16 item 1): the top level, OPTIONS on
every resource, POST /epcis/events, page-token invalidation, the discovery lists' pages and
sub-resources, content negotiation, and the standard's exception types. Real PostgreSQL; the
API in process."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import orjson
import psycopg
import pytest
from lxml import etree

from epcis.event_hash import event_hash_digest, hash_id_from_digest
from epcis.query import EPCIS_CONTEXT
from tests.support.api import Api, SeededWorld, serve
from tests.support.events import make_event
from tests.support.gs1_examples import FIXTURES

pytestmark = pytest.mark.integration


def post_event(api: Api, event: dict[str, object], who: str | None = "maker") -> httpx.Response:
    """POST /epcis/events with the event as JSON (the synchronous single-event capture)."""
    return api.call(
        "POST",
        "/epcis/events",
        who,
        content=orjson.dumps(event),
        headers={"Content-Type": "application/json"},
    )


XSD = FIXTURES / "XSD" / "EPCglobal-epcis-query-2_0.xsd"


def test_the_top_level_lists_the_resources(world: Api) -> None:
    for path in ("/epcis", "/epcis/"):
        answer = world.get(path, "maker")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "@context": [EPCIS_CONTEXT],
            "type": "Collection",
            "member": [
                "capture",
                "events",
                "eventTypes",
                "epcs",
                "bizSteps",
                "bizLocations",
                "readPoints",
                "dispositions",
                "queries",
            ],
        }
        assert answer.headers["gs1-epcis-version"] == "2.0.0"
    refused = world.get("/epcis", None)
    assert (refused.status_code, refused.json()["type"]) == (
        401,
        "epcisException:SecurityException",
    )


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/epcis", "GET, OPTIONS"),
        ("/epcis/events", "GET, OPTIONS, POST"),
        ("/epcis/events/ni:x", "GET, OPTIONS"),
        ("/epcis/eventTypes", "GET, OPTIONS"),
        ("/epcis/eventTypes/ObjectEvent", "GET, OPTIONS"),
        ("/epcis/bizSteps/shipping/events", "GET, OPTIONS"),
        ("/epcis/nextPageToken/abc", "DELETE, OPTIONS"),
    ],
)
def test_options_names_the_methods_and_versions_of_each_resource(
    world: Api, path: str, allow: str
) -> None:
    answer = world.call("OPTIONS", path, "maker")
    assert answer.status_code == 204, answer.text
    assert answer.headers["allow"] == allow
    # What a resource offers is public, as the OpenAPI document is (and preflights have no key).
    assert world.call("OPTIONS", path, None).headers["allow"] == allow
    for header in ("gs1-epcis-min", "gs1-epcis-max", "gs1-cbv-min", "gs1-cbv-max"):
        assert answer.headers[header] == "2.0.0"


def test_options_and_get_of_an_unknown_resource_are_404(world: Api) -> None:
    for method in ("OPTIONS", "GET"):
        answer = world.call(method, "/epcis/gadgets", "maker")
        assert (answer.status_code, answer.json()["type"]) == (
            404,
            "epcisException:NoSuchResourceException",
        )


def test_one_event_is_captured_synchronously_and_found_at_its_location(world: Api) -> None:
    event = make_event()
    created = post_event(world, event)
    assert created.status_code == 201, created.text
    hash_id = hash_id_from_digest(event_hash_digest(event))
    assert created.headers["location"] == f"/epcis/events/{quote(hash_id, safe='')}"
    recorded = created.json()
    assert (recorded["eventID"], recorded["bizStep"]) == (hash_id, "commissioning")
    assert recorded["recordTime"].endswith("Z")
    found = world.get(created.headers["location"], "maker")
    assert found.status_code == 200, found.text
    [listed] = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert listed["eventID"] == hash_id
    # The same event again: it exists (409), and nothing more is stored.
    again = post_event(world, event)
    assert (again.status_code, again.json()["type"]) == (
        409,
        "epcisException:ResourceAlreadyExistsException",
    )
    count = world.conn.execute(
        "SELECT count(*) FROM events WHERE event_hash = %s", (event_hash_digest(event),)
    ).fetchone()
    assert count == (1,)


@pytest.mark.parametrize(
    ("content", "media", "status", "code"),
    [
        (orjson.dumps(make_event(action="DANCE")), "application/json", 400, "invalid_vocabulary"),
        (b"{", "application/json", 400, "not_json"),
        (orjson.dumps([make_event()]), "application/json", 400, "not_one_event"),
        (orjson.dumps({"type": "EPCISDocument"}), "application/json", 400, "not_one_event"),
        (orjson.dumps(make_event()), "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_a_refused_single_event_stores_nothing(
    world: Api, content: bytes, media: str, status: int, code: str
) -> None:
    before = world.conn.execute("SELECT count(*) FROM events").fetchone()
    answer = world.call(
        "POST", "/epcis/events", "maker", content=content, headers={"Content-Type": media}
    )
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert answer.json()["type"].startswith("epcisException:")
    assert world.conn.execute("SELECT count(*) FROM events").fetchone() == before


def test_only_enterprises_capture_single_events(world: Api) -> None:
    event = make_event()
    for who, status in (("bank", 403), ("regulator", 403), (None, 401)):
        answer = post_event(world, event, who)
        assert answer.status_code == status, (who, answer.text)


def test_an_invalidated_page_token_is_refused_for_its_organisation_only(world: Api) -> None:
    first = world.get("/epcis/events", "maker", params={"perPage": "3"})
    following = first.headers["link"].split(">")[0].lstrip("<").split("testserver", 1)[-1]
    token = following.split("nextPageToken=", 1)[1]
    assert world.get(following, "maker").status_code == 200
    assert world.get(following, "regulator").status_code == 200
    deleted = world.call("DELETE", f"/epcis/nextPageToken/{token}", "maker")
    assert deleted.status_code == 204, deleted.text
    refused = world.get(following, "maker")
    assert (refused.status_code, refused.json()["type"], refused.json()["parameter"]) == (
        400,
        "epcisException:QueryParameterException",
        "nextPageToken",
    )
    # The same position is the regulator's own token to keep; deleting again changes nothing.
    assert world.get(following, "regulator").status_code == 200
    assert world.call("DELETE", f"/epcis/nextPageToken/{token}", "maker").status_code == 204
    # Discovery lists refuse an invalidated token too.
    listed = world.get("/epcis/bizSteps", "maker", params={"perPage": "2"})
    list_token = listed.headers["link"].split("nextPageToken=", 1)[1].split(">")[0]
    assert world.call("DELETE", f"/epcis/nextPageToken/{list_token}", "maker").status_code == 204
    again = world.get("/epcis/bizSteps", "maker", params={"nextPageToken": list_token})
    assert again.status_code == 400


def test_discovery_lists_come_in_pages(world: Api) -> None:
    whole = world.get("/epcis/bizSteps", "maker").json()["member"]
    assert len(whole) == 7
    seen: list[str] = []
    pages = 0
    url = "/epcis/bizSteps?perPage=3"
    while True:
        answer = world.get(url, "maker")
        assert answer.status_code == 200, answer.text
        seen += answer.json()["member"]
        pages += 1
        link = answer.headers.get("link")
        if link is None:
            break
        url = link.split(">")[0].lstrip("<").split("testserver", 1)[-1]
    assert (seen, pages) == (whole, 3)
    for bad in ({"perPage": "0"}, {"nextPageToken": "%%%"}, {"EQ_bizStep": "x"}):
        refused = world.get("/epcis/bizSteps", "maker", params=bad)
        assert (refused.status_code, refused.json()["type"]) == (
            400,
            "epcisException:QueryParameterException",
        ), bad


def test_a_discovered_value_has_its_events_sub_resource(world: Api) -> None:
    for path in ("/epcis/bizSteps/shipping", "/epcis/eventTypes/ObjectEvent"):
        answer = world.get(path, "maker")
        assert answer.status_code == 200, answer.text
        assert answer.json()["member"] == ["events"]
    # A value none of your events has is no resource of yours.
    for path, who in (
        ("/epcis/bizSteps/shipping", "rival"),
        ("/epcis/eventTypes/NoSuchEvent", "maker"),
        ("/epcis/bizSteps/destroying", "maker"),
    ):
        assert world.get(path, who).status_code == 404, (path, who)
    malformed = world.get("/epcis/bizSteps/no such step", "maker")
    assert malformed.status_code == 400


def test_an_answer_the_client_cannot_accept_is_refused_406(world: Api) -> None:
    refused = world.get("/epcis/events", "maker", headers={"Accept": "text/html"})
    assert (refused.status_code, refused.json()["type"]) == (
        406,
        "epcisException:NotAcceptableException",
    )
    for accept in ("application/ld+json", "application/json;q=0.5, text/html", "*/*"):
        served = world.get("/epcis/events", "maker", headers={"Accept": accept})
        assert served.status_code == 200, accept
        assert served.headers["content-type"].startswith("application/json"), accept
    # Collections have no XML form here.
    xml_only = world.get("/epcis/bizSteps", "maker", headers={"Accept": "application/xml"})
    assert xml_only.status_code == 406


def test_events_are_answered_in_xml_valid_against_gs1s_xsd(world: Api) -> None:
    xsd = etree.XMLSchema(etree.parse(str(XSD)))
    asked = {"Accept": "application/json;q=0.5, application/xml"}
    answer = world.get("/epcis/events", "maker", headers=asked)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    assert answer.headers["gs1-epcis-version"] == "2.0.0"
    document = etree.fromstring(answer.content)
    assert xsd.validate(document), [str(error) for error in xsd.error_log][:5]
    steps = [element.text for element in document.iter("bizStep")]
    assert len(steps) == 14  # the world's every event
    assert "urn:epcglobal:cbv:bizstep:shipping" in steps
    # The same events, in the same order, as the JSON answer.
    json_answer = world.get("/epcis/events", "maker").json()
    stored = [
        e["eventID"] for e in json_answer["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    ]
    assert [element.text for element in document.iter("eventID")] == stored
    web = world.get(
        "/epcis/events",
        "maker",
        headers={"Accept": "application/xml", "GS1-CBV-XML-Format": "Always_Web_URI"},
    )
    assert "https://ref.gs1.org/cbv/BizStep-shipping" in [
        element.text for element in etree.fromstring(web.content).iter("bizStep")
    ]
    one = world.get(
        f"/epcis/events/{quote(stored[0], safe='')}", "maker", headers={"Accept": "text/xml"}
    )
    assert one.status_code == 200, one.text
    assert [e.text for e in etree.fromstring(one.content).iter("eventID")] == [stored[0]]
    bad = world.get(
        "/epcis/events",
        "maker",
        headers={"Accept": "application/xml", "GS1-CBV-XML-Format": "Sometimes"},
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cbv_xml_format")


def test_an_overlong_query_is_refused_414(world: Api) -> None:
    values = "|".join(f"urn:epc:id:sgtin:0614141.012345.{n}" for n in range(300))
    refused = world.get("/epcis/events", "maker", params={"MATCH_epc": values})
    assert (refused.status_code, refused.json()["type"]) == (
        414,
        "epcisException:URITooLongException",
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"GS1-EPCIS-Min": "1.0.0", "GS1-EPCIS-Max": "2.0.0"}, 200),
        ({"GS1-CBV-Min": "2.0", "GS1-CBV-Max": "2.1.0"}, 200),
        ({"GS1-EPCIS-Max": "1.2.0"}, 406),
        ({"GS1-EPCIS-Min": "2.1.0"}, 406),
        ({"GS1-CBV-Max": "1.2.0"}, 406),
        ({"GS1-EPCIS-Min": "two"}, 400),
    ],
)
def test_a_version_range_that_excludes_2_0_is_refused(
    world: Api, headers: dict[str, str], status: int
) -> None:
    answer = world.get("/epcis/events", "maker", headers=headers)
    assert answer.status_code == status, answer.text
    if status == 406:
        assert answer.json()["code"] == "unsupported_version"


def test_only_a_known_caller_invalidates_page_tokens(world: Api) -> None:
    assert world.call("DELETE", "/epcis/nextPageToken/7", None).status_code == 401
    assert world.call("DELETE", "/epcis/nextPageToken/" + "x" * 600, "maker").status_code == 400


def test_a_reading_with_an_offset_postgresql_cannot_read_fails_no_query(world: Api) -> None:
    """Capture takes any RFC 3339 offset Python parses (+20:00); a sensor-time filter skips
    such a reading instead of failing everyone's query (the regulator's included)."""
    event = make_event(
        sensorElementList=[
            {
                "sensorReport": [
                    {
                        "type": "Temperature",
                        "value": 4,
                        "uom": "CEL",
                        "time": "2024-01-01T00:00:00+20:00",
                    }
                ]
            }
        ]
    )
    created = post_event(world, event)
    assert created.status_code == 201, created.text
    for who in ("maker", "regulator"):
        answer = world.get("/epcis/events", who, params={"GE_time": "2000-01-01T00:00:00Z"})
        assert answer.status_code == 200, (who, answer.text)


def test_a_list_token_that_decodes_to_nul_is_refused(world: Api) -> None:
    for path in ("/epcis/epcs", "/epcis/bizSteps"):
        answer = world.get(path, "maker", params={"nextPageToken": "AA"})
        assert (answer.status_code, answer.json()["parameter"]) == (400, "nextPageToken"), path


def test_a_statement_past_the_timeout_is_cancelled_and_answered_as_a_problem(
    mine: SeededWorld,
) -> None:
    """A query that runs (here: waits on a lock) past api_statement_timeout_ms is cancelled by
    PostgreSQL: reads get 413 query_too_complex, a capture 503 with nothing stored; the
    server goes on answering once the cause is gone."""
    event = make_event()
    with serve(mine, public_rate_per_minute=10_000, api_statement_timeout_ms=200) as api:
        assert api.get("/epcis/events", "maker").status_code == 200
        with psycopg.connect(mine.database_url) as locker:  # holds the lock until it ends
            # Should the timeout not work, the lock goes after 10 s and the asserts fail.
            locker.execute("SET idle_in_transaction_session_timeout = '10s'")
            locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            epcis = api.get("/epcis/events", "maker")
            own = api.get("/v1/events", "maker")
            captured = post_event(api, event)
            # Cancelled at the timeout, not answered once the lock went away: the locker's
            # session still holds it (a session ended by its idle timeout raises here).
            held = locker.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()"
                " AND mode = 'AccessExclusiveLock' AND granted"
            ).fetchone()
            assert held is not None
            assert held[0] >= 1
        assert (epcis.status_code, epcis.json()["code"], epcis.json()["type"]) == (
            413,
            "query_too_complex",
            "epcisException:QueryTooComplexException",
        )
        assert (own.status_code, own.json()["code"]) == (413, "query_too_complex")
        assert own.json()["type"] == "https://tracefin.dev/problems/query_too_complex"
        assert (captured.status_code, captured.json()["code"]) == (503, "statement_timeout")
        assert captured.headers["retry-after"] == "5"
        assert "Traceback" not in captured.text
        stored = api.conn.execute(
            "SELECT count(*) FROM events WHERE event_hash = %s", (event_hash_digest(event),)
        ).fetchone()
        assert stored == (0,)
        assert api.get("/epcis/events", "maker").status_code == 200

"""The EPCIS 2.0 REST binding's events query (issue 16, in part): `GET /epcis/events` answers an
EPCISQueryDocument that validates against GS1's own JSON Schema (tests/fixtures/epcis-2.0, with
GS1's LICENSE and Disclaimer), with the binding's version headers; `GET /epcis/events/{id}` finds
one event by its event hash ID; the strict parameters are those of `/v1/events`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import jsonschema_rs
import orjson
import pytest

from epcis.event_hash import event_hash_id, hash_id_from_digest
from epcis.query import EPCIS_CONTEXT
from tests.support.api import Api
from tests.support.world import ITEM

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).parents[1] / "fixtures" / "epcis-2.0" / "EPCIS-JSON-Schema.json"


@pytest.fixture(scope="module")
def gs1_schema() -> jsonschema_rs.Draft7Validator:
    return jsonschema_rs.Draft7Validator(orjson.loads(SCHEMA.read_bytes()))


def test_the_events_come_back_as_a_valid_epcis_query_document(
    world: Api, gs1_schema: jsonschema_rs.Draft7Validator
) -> None:
    answer = world.get("/epcis/events", "maker", params={"perPage": "500"})
    assert answer.status_code == 200, answer.text
    assert (answer.headers["gs1-epcis-version"], answer.headers["gs1-cbv-version"]) == (
        "2.0.0",
        "2.0.0",
    )
    document = answer.json()
    assert [error.message for error in gs1_schema.iter_errors(document)] == []
    assert document["type"] == "EPCISQueryDocument"
    assert document["@context"][0] == EPCIS_CONTEXT
    events = document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(events) == 14  # maker's, the world's every event
    # The repository's fields: recordTime set, eventID filled with the hash ID; neither is part
    # of the hash, so the hash recomputed from the answer is the stored one, for every event.
    stored = {hash_id_from_digest(digest) for digest in world.digests}
    for event in events:
        assert event["recordTime"].endswith("Z")
        assert event_hash_id(event, document["@context"]) == event["eventID"]
        assert event["eventID"] in stored
    # The same filters as /v1/events, and the same refusals.
    shipped = world.get("/epcis/events", "maker", params={"EQ_bizStep": "shipping"}).json()
    listed = shipped["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["bizStep"] for e in listed] == ["shipping", "shipping"]
    refused = world.get("/epcis/events", "maker", params={"EQ_bizstep": "shipping"})
    assert refused.status_code == 400
    assert refused.json()["type"] == "epcisException:QueryParameterException"
    assert (
        world.get("/epcis/events", "rival").json()["epcisBody"]["queryResults"]["resultsBody"][
            "eventList"
        ]
        == []
    )
    assert world.get("/epcis/events", "bank").status_code == 403


def test_one_event_by_its_hash_id(world: Api, gs1_schema: jsonschema_rs.Draft7Validator) -> None:
    hash_id = hash_id_from_digest(world.digests[0])
    found = world.get(f"/epcis/events/{quote(hash_id, safe='')}", "maker")
    assert found.status_code == 200, found.text
    assert [error.message for error in gs1_schema.iter_errors(found.json())] == []
    [event] = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert event["type"] in ("ObjectEvent", "AggregationEvent")
    assert event["eventID"] == hash_id
    # Another org's event is not found, as if there were none; nor is an unknown one.
    hidden = world.get(f"/epcis/events/{quote(hash_id, safe='')}", "rival")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_event")
    unknown = world.get("/epcis/events/no-such-event", "maker")
    assert unknown.status_code == 404


def test_discovery_resources_list_their_events(world: Api) -> None:
    def steps(path: str, **params: str) -> list[str]:
        answer = world.get(path, "maker", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        return sorted(event["bizStep"] for event in body)

    assert steps("/epcis/bizSteps/shipping/events") == ["shipping", "shipping"]
    assert steps("/epcis/bizSteps/urn:epcglobal:cbv:bizstep:shipping/events") == [
        "shipping",
        "shipping",
    ]
    assert steps("/epcis/eventTypes/AggregationEvent/events") == ["packing", "packing"]
    assert steps("/epcis/dispositions/in_transit/events", eventType="ObjectEvent") == [
        "shipping",
        "shipping",
    ]
    item = quote("https://id.gs1.org" + ITEM, safe="")
    assert steps(f"/epcis/epcs/{item}/events") == ["commissioning", "packing", "retail_selling"]
    # The path's filter cannot be given twice, and only the binding's resources exist.
    twice = world.get("/epcis/bizSteps/shipping/events", "maker", params={"EQ_bizStep": "x"})
    assert twice.status_code == 400
    assert world.get("/epcis/gadgets/x/events", "maker").status_code == 404
    options = world.client.options("/epcis/events", headers=world.auth("maker"))
    assert options.status_code == 204
    assert (options.headers["gs1-epcis-min"], options.headers["gs1-epcis-max"]) == (
        "2.0.0",
        "2.0.0",
    )


def test_discovery_lists_are_collections_of_what_the_caller_may_see(world: Api) -> None:
    def members(path: str, who: str = "maker") -> list[str]:
        answer = world.get(path, who)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["type"], body["@context"]) == ("Collection", [EPCIS_CONTEXT])
        return body["member"]  # type: ignore[no-any-return]

    assert members("/epcis/eventTypes") == [
        "AggregationEvent",
        "AssociationEvent",
        "ObjectEvent",
        "TransactionEvent",
        "TransformationEvent",
    ]
    assert members("/epcis/bizSteps") == [
        "accepting",
        "commissioning",
        "inspecting",
        "packing",
        "retail_selling",
        "shipping",
        "storing",
    ]
    assert "https://id.gs1.org" + ITEM in members("/epcis/epcs")
    assert members("/epcis/bizSteps", "rival") == []  # rival has no events
    assert members("/epcis/dispositions", "regulator") == members("/epcis/dispositions")
    assert world.get("/epcis/bizSteps", "bank").status_code == 403


def test_recorded_since_finds_exactly_the_events_recorded_since_in_any_ingest_order(
    world: Api,
) -> None:
    """GE_/LT_recordTime compare when the repository received each event. The query bounds
    ingest positions by the first one recorded since (records/event_query.py): exact even where
    receipt and ingest order disagree, as here, where the last stored was received first."""
    conn = world.conn
    rows = conn.execute("SELECT ingest_seq FROM events ORDER BY ingest_seq").fetchall()
    assert len(rows) == 14
    start = datetime(2026, 12, 1, tzinfo=UTC)
    received = {}
    for rank, (seq,) in enumerate(rows):
        # Reversed, and the middle ones interleaved: no order of the one follows the other.
        at = start + timedelta(minutes=(len(rows) - rank) if rank % 3 else rank)
        conn.execute("UPDATE events SET received_at = %s WHERE ingest_seq = %s", (at, seq))
        received[seq] = at
    digest_of = {
        seq: hash_id_from_digest(bytes(digest))
        for seq, digest in conn.execute("SELECT ingest_seq, event_hash FROM events")
    }
    for since in (start + timedelta(minutes=m) for m in (0, 4, 7, 9, 13, 15)):
        iso = since.isoformat().replace("+00:00", "Z")
        answer = world.get("/epcis/events", "maker", params={"GE_recordTime": iso})
        assert answer.status_code == 200, answer.text
        listed = answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        expected = [digest_of[seq] for seq in sorted(received) if received[seq] >= since]
        assert [event["eventID"] for event in listed] == expected, iso
        before = world.get("/epcis/events", "maker", params={"LT_recordTime": iso}).json()
        earlier = before["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert len(earlier) + len(listed) == len(rows)

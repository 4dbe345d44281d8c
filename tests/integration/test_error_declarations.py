"""EPCIS error declarations (issue 16 item 4), over real PostgreSQL, a private Mosquitto and anvil.

An event captured again with an `errorDeclaration` by the party entitled to declare it is
recorded as a declaration (answered `error_declared`, the same one again likewise, another one
`already_declared`), anyone else is refused `not_entitled_to_declare` and nothing changes; the
declaration is queryable by every parameter of the standard, returned with the event (still
schema-valid, its hash unchanged), marked on the product page, and void evidence for finance,
which reacts exactly once, across a crash.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import orjson
import psycopg
import pytest

from epcis.event_hash import event_hash_digest, event_hash_id, hash_id_from_digest
from epcis.signatures import address_of, sign_digest
from finance import rules, valuation
from finance.audit import declaration_findings
from finance.store import goods
from finance.store.journal import Journal
from finance.worker import FinanceConfig, FinanceWorker
from records import declaration_store, registry_store
from records.db import Conn
from tests.support.api import Api
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.processes import IngestProcess
from tests.support.world import JOURNAL, LOT, LOT_URI
from tracefin.simulate import Publication, Publisher

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).parents[1] / "fixtures" / "epcis-2.0" / "EPCIS-JSON-Schema.json"
CORRECTION = "urn:uuid:6d3e9d6a-4c1b-4b7e-9a39-3f3f1c1e2a10"
DECLARED_AT = "2026-12-01T08:00:00+08:00"


@pytest.fixture(scope="module")
def gs1_schema() -> jsonschema_rs.Draft7Validator:
    return jsonschema_rs.Draft7Validator(orjson.loads(SCHEMA.read_bytes()))


def declaration(reason: str = "incorrect_data") -> dict[str, Any]:
    return {
        "declarationTime": DECLARED_AT,
        "reason": reason,
        "correctiveEventIDs": [CORRECTION],
        "example:ticket": "QC-42",  # an extension, kept as captured
    }


def inspection(conn: Conn) -> tuple[bytes, dict[str, Any]]:
    """The seeded world's conformant inspection of lot 0 (by maker's own device): its digest
    and its stored JSON (which hashes to the same digest)."""
    row = conn.execute(
        "SELECT event_hash, event FROM events WHERE biz_step = 'inspecting' AND %s = ANY(lots)",
        (LOT_URI,),
    ).fetchone()
    assert row is not None
    return bytes(row[0]), row[1]


def capture(world: Api, who: str, event: dict[str, Any]) -> Any:
    return world.call("POST", "/v1/capture", who, content=orjson.dumps(event))


def counts_of(conn: Conn, digest: bytes) -> tuple[int, int, int]:
    """(events rows, attestations, declarations) of one event."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM events WHERE event_hash = %(d)s),"
        " (SELECT count(*) FROM attestations WHERE event_hash = %(d)s),"
        " (SELECT count(*) FROM error_declarations WHERE event_hash = %(d)s)",
        {"d": digest},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def dead_reasons(conn: Conn) -> list[str]:
    rows = conn.execute(
        "SELECT reason FROM dead_letters WHERE topic = 'http:/v1/capture' ORDER BY id"
    ).fetchall()
    return [str(row[0]) for row in rows]


# --- HTTP: recorded, idempotent, refused ------------------------------------------------------


def test_a_declaration_is_recorded_answered_and_idempotent(world: Api) -> None:
    conn = world.conn
    digest, stored = inspection(conn)
    before = counts_of(conn, digest)
    assert before == (1, 1, 0)
    declared = {**stored, "errorDeclaration": declaration()}
    assert event_hash_digest(declared) == digest  # the hash leaves the declaration out

    first = capture(world, "maker", declared)
    assert first.status_code == 201, first.text
    assert first.json()["accepted"] == [
        {"index": 0, "event_hash": hash_id_from_digest(digest), "status": "error_declared"}
    ]
    [recorded] = declaration_store.declarations_for(conn, [digest]).values()
    assert (recorded.org, recorded.channel, recorded.device_id) == ("maker", "http", None)
    assert recorded.api_user == world.keys["maker"][:8]
    assert recorded.declaration_time == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert (recorded.reason, recorded.corrective_event_ids) == ("incorrect_data", [CORRECTION])
    assert recorded.declaration == declaration()  # as captured, the extension included
    assert recorded.record().digest() == bytes(recorded.digest)
    # Neither an attestation (declaring is not vouching) nor a change to the stored event.
    assert counts_of(conn, digest) == (1, 1, 1)
    assert inspection(conn)[1] == stored

    again = capture(world, "maker", declared)  # a retry after a lost answer
    assert again.status_code == 201, again.text
    assert again.json()["accepted"][0]["status"] == "error_declared"
    assert counts_of(conn, digest) == (1, 1, 1)

    # Another declaration of a declared event: the first stands, this one is refused.
    other = capture(world, "maker", {**stored, "errorDeclaration": declaration("did_not_occur")})
    assert other.status_code == 422, other.text
    assert [r["reason"] for r in other.json()["rejected"]] == ["already_declared"]
    assert dead_reasons(conn) == ["already_declared"]
    assert declaration_store.declarations_for(conn, [digest])[digest].reason == "incorrect_data"

    # A plain copy is still what it always was: a duplicate.
    plain = capture(world, "maker", stored)
    assert plain.json()["accepted"][0]["status"] == "duplicate"


def test_another_orgs_api_key_may_not_declare(world: Api) -> None:
    conn = world.conn
    digest, stored = inspection(conn)
    before = counts_of(conn, digest)
    answer = capture(world, "rival", {**stored, "errorDeclaration": declaration()})
    assert answer.status_code == 422, answer.text
    [refused] = answer.json()["rejected"]
    assert refused["reason"] == "not_entitled_to_declare"
    assert "maker" in refused["detail"]  # whose attestation makes it count
    assert dead_reasons(conn) == ["not_entitled_to_declare"]
    assert counts_of(conn, digest) == before  # no declaration, no attestation, no event
    # Nor does copying the owner's declaration word for word make a stranger's acceptable.
    assert capture(world, "maker", {**stored, "errorDeclaration": declaration()}).status_code == 201
    copied = capture(world, "rival", {**stored, "errorDeclaration": declaration()})
    assert [r["reason"] for r in copied.json()["rejected"]] == ["not_entitled_to_declare"]
    before = counts_of(conn, digest)
    # With rollback, a refused declaration leaves nothing either (the refusal is kept).
    rolled = world.call(
        "POST",
        "/v1/capture",
        "rival",
        content=orjson.dumps({**stored, "errorDeclaration": declaration()}),
        headers={"GS1-Capture-Error-Behaviour": "rollback"},
    )
    assert (rolled.status_code, rolled.json()["code"]) == (422, "capture_rolled_back")
    assert counts_of(conn, digest) == before


# --- queries -----------------------------------------------------------------------------------


def listed(world: Api, **params: str) -> list[dict[str, Any]]:
    answer = world.get("/epcis/events", "maker", params=params)
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"
    ]
    return events


def test_declared_events_are_queried_and_returned_with_their_declaration(
    world: Api, gs1_schema: jsonschema_rs.Draft7Validator
) -> None:
    digest, stored = inspection(world.conn)
    hash_id = hash_id_from_digest(digest)
    assert listed(world, EXISTS_errorDeclaration="true") == []
    assert capture(world, "maker", {**stored, "errorDeclaration": declaration()}).status_code == 201

    def ids(**params: str) -> list[str]:
        return [event["eventID"] for event in listed(world, **params)]

    assert ids(EXISTS_errorDeclaration="true") == [hash_id]
    assert len(ids(EXISTS_errorDeclaration="false")) == 14  # false: declared or not
    for reason in (
        "incorrect_data",
        "https://ref.gs1.org/cbv/ER-incorrect_data",
        "urn:epcglobal:cbv:er:incorrect_data",
        "did_not_occur|incorrect_data",
    ):
        assert ids(EQ_errorReason=reason) == [hash_id], reason
    assert ids(EQ_errorReason="did_not_occur") == []
    assert ids(EQ_correctiveEventID=f"urn:uuid:{secrets.token_hex(4)}|{CORRECTION}") == [hash_id]
    assert ids(EQ_correctiveEventID="urn:uuid:other") == []
    assert ids(GE_errorDeclarationTime="2026-12-01T00:00:00Z") == [hash_id]
    assert ids(GE_errorDeclarationTime="2026-12-01T00:00:01Z") == []
    assert ids(LT_errorDeclarationTime="2026-12-01T00:00:01Z") == [hash_id]
    assert ids(LT_errorDeclarationTime="2026-12-01T00:00:00Z") == []
    assert ids(EQ_errorReason="incorrect_data", EQ_bizStep="inspecting") == [hash_id]
    for bad in ({"EXISTS_errorDeclaration": "yes"}, {"EQ_errorReason": "wrong"}):
        refused = world.get("/epcis/events", "maker", params=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["type"] == "epcisException:QueryParameterException"
    # Another org sees nothing of maker's, declared or not.
    other = world.get("/epcis/events", "rival", params={"EXISTS_errorDeclaration": "true"})
    assert other.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []

    # Returned with the event, as captured, in a document valid against GS1's schema, and the
    # hash recomputed from the answer is the stored one.
    found = world.get(f"/epcis/events/{quote(hash_id, safe='')}", "maker")
    assert found.status_code == 200, found.text
    document = found.json()
    assert [error.message for error in gs1_schema.iter_errors(document)] == []
    [event] = document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert event["errorDeclaration"] == declaration()
    assert event_hash_id(event, document["@context"]) == hash_id
    everything = world.get("/epcis/events", "maker", params={"perPage": "500"}).json()
    assert [error.message for error in gs1_schema.iter_errors(everything)] == []
    v1 = world.get("/v1/events", "maker", params={"EXISTS_errorDeclaration": "true"})
    assert [e["errorDeclaration"] for e in v1.json()["events"]] == [declaration()]


# --- pages and finance ------------------------------------------------------------------------


def bank_view(conn: Conn) -> tuple[str | None, tuple[rules.Reason, ...]]:
    """Lot 0 as the bank sees it: its last inspection and why it may not back financing."""
    bank = registry_store.get_org(conn, "bank")
    assert bank is not None
    state = valuation.lot_state(conn, LOT_URI, bank.id)
    assert state is not None
    policy = valuation.policy(conn, bank.id, "frozen")
    eligible = rules.eligibility(state, policy, datetime.now(UTC), "bank")
    lot = conn.execute(
        "SELECT last_inspection_disposition FROM lots WHERE lot_uri = %s", (LOT_URI,)
    ).fetchone()
    assert lot is not None
    return lot[0], eligible.failures


def declared_entries(conn: Conn) -> list[tuple[str, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT subject, detail FROM finance_journal"
        " WHERE action = 'evidence_declared_erroneous' ORDER BY id"
    ).fetchall()
    return [(str(row[0]), row[1]) for row in rows]


class CrashingJournal(Journal):
    """A journal whose writes fail as a lost connection would: the worker's transaction rolls
    back as if the process died before its commit."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        raise psycopg.OperationalError("connection lost (simulated crash)")


def test_a_declared_inspection_is_void_evidence_on_the_page_and_for_finance(
    world: Api,
) -> None:
    conn = world.conn
    digest, stored = inspection(conn)
    hash_id = hash_id_from_digest(digest)
    disposition, failures = bank_view(conn)
    assert disposition == "conformant"
    assert rules.Reason.NO_INSPECTION not in failures
    page = world.get(LOT, headers={"Accept": "application/json"}).json()  # cached now
    assert [e["evidence"] for e in page["events"] if e["event_hash"] == hash_id] == ["counts"]

    assert capture(world, "maker", {**stored, "errorDeclaration": declaration()}).status_code == 201

    # The page: marked, with who, when and why, in JSON and in both languages.
    page = world.get(LOT, headers={"Accept": "application/json"}).json()
    [shown] = [e for e in page["events"] if e["event_hash"] == hash_id]
    assert shown["evidence"] == "declared_erroneous"
    assert shown["reason"] == "error_declared"
    assert shown["error_declaration"] == {
        "declared_by": "maker",
        "declaration_time": "2026-12-01T00:00:00+00:00",  # as the page gives every time
        "reason": "incorrect_data",
        "corrective_event_ids": [CORRECTION],
    }
    assert all(e["error_declaration"] is None for e in page["events"] if e is not shown)
    english = world.get(LOT, headers={"Accept": "text/html", "Accept-Language": "en"}).text
    assert "Declared erroneous by maker" in english
    assert "its data is wrong" in english
    chinese = world.get(LOT, headers={"Accept": "text/html", "Accept-Language": "zh"}).text
    assert "声明此记录有误" in chinese
    assert "记录数据有误" in chinese

    # Finance: a worker that crashes before its commit changes nothing ...
    with pytest.raises(psycopg.OperationalError):
        FinanceWorker("unused", FinanceConfig(), CrashingJournal(JOURNAL.key)).apply_next_chunk(
            conn
        )
    assert bank_view(conn)[0] == "conformant"
    assert declared_entries(conn) == []
    assert conn.execute("SELECT count(*) FROM declarations_applied").fetchone() == (0,)

    # ... the restarted one applies the declaration once: the inspection no longer counts, so
    # the lot has no inspection and no longer backs financing for want of one.
    assert FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_declarations(conn) == 1
    disposition, failures = bank_view(conn)
    assert disposition is None
    assert rules.Reason.NO_INSPECTION in failures
    [evidence] = [r for r in goods.lot_evidence(conn, LOT_URI) if r.event_hash == digest]
    assert (evidence.counts, evidence.reason) == (False, "error_declared")
    [(subject, detail)] = declared_entries(conn)
    assert subject == hash_id
    assert detail["declared_by"] == "maker"
    assert detail["reason"] == "incorrect_data"
    assert LOT_URI in detail["lots"]
    [recorded] = declaration_store.declarations_for(conn, [digest]).values()
    assert detail["declaration"] == bytes(recorded.digest).hex()  # sealed in the journal

    # Exactly once: further passes, by this worker or another after a restart, add nothing.
    for _ in range(2):
        assert FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_declarations(conn) == 0
        FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_next_chunk(conn)
    assert len(declared_entries(conn)) == 1
    assert bank_view(conn)[0] is None


# --- MQTT --------------------------------------------------------------------------------------


def owner_with_device(db: Conn, prefix: str) -> RegisteredDevice:
    """A manufacturer holding `prefix`, with a signing device."""
    slug = f"org-{secrets.token_hex(4)}"
    registry_store.add_org(db, slug, "manufacturer", [prefix])
    key = secrets.token_bytes(32)
    device_id = f"dev-{secrets.token_hex(4)}"
    registry_store.add_device(db, slug, device_id, address_of(key))
    return RegisteredDevice(slug, device_id, key)


def signed(device: RegisteredDevice, event: dict[str, Any]) -> Publication:
    assert device.private_key is not None
    digest = event_hash_digest(event)
    return Publication(
        device.events_topic,
        orjson.dumps({"event": event, "sig": sign_digest(device.private_key, digest)}),
    )


def inspection_of(prefix: str) -> dict[str, Any]:
    """A conformant inspection of one item of `prefix`'s goods."""
    return {
        "type": "ObjectEvent",
        "eventTime": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"urn:epc:id:sgtin:{prefix}.0123.{secrets.token_hex(4)}"],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "conformant",
    }


def test_over_mqtt_only_the_attesting_party_declares(
    start_ingest: Callable[..., IngestProcess],
    publisher: Publisher,
    listener: Listener,
    db: Conn,
) -> None:
    start_ingest()
    prefixes = [f"9{secrets.randbelow(10**8):08d}" for _ in range(2)]
    owner, stranger = (owner_with_device(db, prefix) for prefix in prefixes)
    original = inspection_of(prefixes[0])
    digest = event_hash_digest(original)
    declared = {**original, "errorDeclaration": declaration()}
    publisher.publish(signed(owner, original))
    assert listener.wait_for(owner.receipts, 1)[0]["status"] == "accepted"

    # Another org's device, signing with its own (valid) key: refused, dead-lettered, no change.
    publisher.publish(signed(stranger, declared))
    [refused] = listener.wait_for(stranger.rejects, 1)
    assert refused["reason"] == "not_entitled_to_declare"
    assert listener.received(stranger.receipts) == []
    assert counts_of(db, digest) == (1, 1, 0)
    dead = db.execute(
        "SELECT reason FROM dead_letters WHERE topic = %s", (stranger.events_topic,)
    ).fetchall()
    assert dead == [("not_entitled_to_declare",)]

    # The device that attested it: recorded; the same again (a redelivery): answered alike.
    publisher.publish(signed(owner, declared))
    publisher.publish(signed(owner, declared))
    receipts = listener.wait_for(owner.receipts, 3)
    assert [r["status"] for r in receipts[1:]] == ["error_declared", "error_declared"]
    assert {r["event_hash"] for r in receipts} == {hash_id_from_digest(digest)}
    [recorded] = declaration_store.declarations_for(db, [digest]).values()
    assert (recorded.org, recorded.device_id, recorded.channel) == (
        owner.org,
        owner.device_id,
        "mqtt",
    )
    assert counts_of(db, digest) == (1, 1, 1)


def test_an_event_declared_before_it_was_stored_is_stored_declared(
    start_ingest: Callable[..., IngestProcess],
    publisher: Publisher,
    listener: Listener,
    db: Conn,
) -> None:
    # Messages may arrive out of order (two ingest workers, a device replaying its buffer):
    # the declaration first stores the event declared from the start, and the original that
    # follows is a duplicate, so either order ends the same.
    start_ingest()
    prefix = f"9{secrets.randbelow(10**8):08d}"
    owner = owner_with_device(db, prefix)
    original = inspection_of(prefix)
    digest = event_hash_digest(original)
    publisher.publish(signed(owner, {**original, "errorDeclaration": declaration()}))
    assert listener.wait_for(owner.receipts, 1)[0]["status"] == "error_declared"
    stored = db.execute("SELECT event FROM events WHERE event_hash = %s", (digest,)).fetchone()
    assert stored is not None
    assert "errorDeclaration" not in stored[0]
    assert counts_of(db, digest) == (1, 0, 1)
    publisher.publish(signed(owner, original))
    assert listener.wait_for(owner.receipts, 2)[1]["status"] == "duplicate"
    assert counts_of(db, digest) == (1, 1, 1)


def test_the_audit_catches_an_edited_or_deleted_declaration(world: Api) -> None:
    conn = world.conn
    digest, stored = inspection(conn)
    assert capture(world, "maker", {**stored, "errorDeclaration": declaration()}).status_code == 201
    FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_declarations(conn)
    assert declaration_findings(conn) == []

    # Who declared it, edited: the digest no longer recomputes.
    conn.execute("UPDATE error_declarations SET received_at = received_at - interval '1 day'")
    assert [f.kind for f in declaration_findings(conn)] == ["declaration_altered"]
    # What it says, edited digest and all (the digest is a plain hash anyone can recompute): the
    # sealed journal entry still names the first one.
    conn.execute(
        "UPDATE error_declarations SET reason = 'did_not_occur',"
        " declaration = jsonb_set(declaration, '{reason}', '\"did_not_occur\"')"
    )
    [row] = declaration_store.all_declarations(conn)
    conn.execute("UPDATE error_declarations SET digest = %s", (row.record().digest(),))
    assert [f.kind for f in declaration_findings(conn)] == ["declaration_differs_from_journal"]
    # Deleted, so that the void evidence would count again: the journal still names it.
    conn.execute("DELETE FROM declarations_applied")
    conn.execute("DELETE FROM error_declarations")
    [finding] = declaration_findings(conn)
    assert finding.kind == "declaration_differs_from_journal"
    assert hash_id_from_digest(digest) in finding.detail


class PoisonJournal(Journal):
    """A journal that cannot write the reaction to a declaration (a bug, a bad row): anything
    but a lost connection."""

    def write(self, conn: Conn, actor: str, action: str, *args: Any, **kwargs: Any) -> None:
        if action == "evidence_declared_erroneous":
            raise ValueError("cannot journal this declaration")
        JOURNAL.write(conn, actor, action, *args, **kwargs)


def test_a_declaration_finance_cannot_apply_is_set_aside(world: Api) -> None:
    conn = world.conn
    digest, stored = inspection(conn)
    assert capture(world, "maker", {**stored, "errorDeclaration": declaration()}).status_code == 201
    worker = FinanceWorker("unused", FinanceConfig(), PoisonJournal(JOURNAL.key))
    assert worker.apply_declarations(conn) == 1
    assert worker.dead_lettered == 1
    rows = conn.execute(
        "SELECT subject, detail->>'error' FROM finance_journal"
        " WHERE action = 'declaration_not_applied'"
    ).fetchall()
    assert rows == [(hash_id_from_digest(digest), "ValueError: cannot journal this declaration")]
    # Set aside, not retried for ever: monitoring carries on.
    assert worker.apply_declarations(conn) == 0
    assert worker.apply_next_chunk(conn) == 0

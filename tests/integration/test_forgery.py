"""Forged origin, replays, edited replays, SQL injection: refused, or stored verbatim and inert."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from eth_account import Account

from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.signatures import address_of, sign_digest
from ledger import merkle
from ledger.bundle import AnchoredBatch, Bundle, Inclusion, TrustedAnchor
from ledger.chain import Chain, connect, deploy
from ledger.contracts import TRACE_ANCHOR
from ledger.verify import verify_bundle
from records import registry_store
from records.db import Conn
from tests.support.api import Api, seeded_api
from tests.support.cli import tracefin_only
from tests.support.events import envelope, make_event
from tests.support.hostile import SQL_INJECTIONS, base_events
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.processes import IngestProcess
from tests.support.world import GTIN, LOT, LOT_URI
from tracefin.simulate import Publication, Publisher

pytestmark = pytest.mark.integration

TABLES = ("events", "orgs", "devices", "api_keys", "dead_letters", "products", "credit_lines")


@pytest.fixture(scope="module")
def ingest(database_url: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> object:
    worker = IngestProcess(database_url, mqtt_url, tmp_path_factory.mktemp("forgery"))
    worker.start()
    worker.wait_until_subscribed()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def api(chain_rpc_url: str) -> Iterator[Api]:
    with seeded_api(chain_rpc_url) as seeded:
        yield seeded


def signed_by(key: bytes, event: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": event, "sig": sign_digest(key, event_hash_digest(event))})


def rows_of(db: Conn, event: dict[str, Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT device_id, topic, event FROM events WHERE event_hash = %s",
        (event_hash_digest(event),),
    ).fetchall()


def dead_letters(db: Conn, topic: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT reason, item_index FROM dead_letters WHERE topic = %s ORDER BY id", (topic,)
    ).fetchall()


def tables_intact(conn: Conn) -> None:
    for table in TABLES:
        found = conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()
        assert found is not None
        assert found[0] is not None, f"table {table} is gone"


# --- forged origin -----------------------------------------------------------------------------


def test_a_device_signing_for_another_devices_topic_is_refused(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    # Device B is registered and signs correctly, but publishes on device A's topic: the topic
    # names A, the key is B's, so ingest must refuse it (broker ACLs are not the only defence).
    a, b = make_device(), make_device()
    assert a.private_key is not None
    assert b.private_key is not None
    event = make_event()
    payload = signed_by(b.private_key, event)
    publisher.publish(Publication(a.events_topic, payload))
    reject = listener.wait_for(a.rejects, 1)[0]
    assert (reject["reason"], reject["index"]) == ("signature_mismatch", 0)
    assert address_of(b.private_key) in str(reject["detail"])
    assert rows_of(db, event) == []
    assert dead_letters(db, a.events_topic) == [("signature_mismatch", 0)]
    # The very same bytes on B's own topic are fine: only the claimed origin was wrong.
    publisher.publish(Publication(b.events_topic, payload))
    receipt = listener.wait_for(b.receipts, 1)[0]
    assert receipt == {"event_hash": event_hash_id(event), "status": "accepted"}
    assert [(row[0], row[1]) for row in rows_of(db, event)] == [(b.device_id, b.events_topic)]
    assert listener.received(a.receipts) == []


def test_a_device_of_another_org_cannot_publish_as_this_org(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    victim = make_device()
    other_org = f"org-{secrets.token_hex(4)}"
    registry_store.add_org(db, other_org, "manufacturer")
    intruder_key = secrets.token_bytes(32)
    registry_store.add_device(db, other_org, victim.device_id, address_of(intruder_key))
    event = make_event()
    payload = signed_by(intruder_key, event)
    # Same device id, other organisation: the victim's topic still belongs to the victim.
    publisher.publish(Publication(victim.events_topic, payload))
    assert listener.wait_for(victim.rejects, 1)[0]["reason"] == "signature_mismatch"
    assert rows_of(db, event) == []


# --- replays -----------------------------------------------------------------------------------


def test_replaying_another_devices_signed_event_is_refused(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    owner, thief = make_device(), make_device()
    event = make_event()
    payload = envelope(owner, event)
    publisher.publish(Publication(owner.events_topic, payload))
    listener.wait_for(owner.receipts, 1)
    # The thief republishes the owner's signed envelope as its own: the signature is the
    # owner's, so it does not vouch for the thief.
    publisher.publish(Publication(thief.events_topic, payload))
    assert listener.wait_for(thief.rejects, 1)[0]["reason"] == "signature_mismatch"
    assert listener.received(thief.receipts) == []
    assert [(row[0], row[1]) for row in rows_of(db, event)] == [
        (owner.device_id, owner.events_topic)
    ]


def test_a_replay_inside_one_payload_is_stored_once(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    event = make_event()
    item = orjson.loads(envelope(device, event))
    publisher.publish(Publication(device.events_topic, orjson.dumps([item, item, item])))
    receipts = listener.wait_for(device.receipts, 3)
    assert [r["status"] for r in receipts] == ["accepted", "duplicate", "duplicate"]
    assert len(rows_of(db, event)) == 1
    # One log position, not three: the anchor would otherwise prove the same event thrice.
    queued = db.execute(
        "SELECT (SELECT count(*) FROM log_queue WHERE event_hash = %s)"
        " + (SELECT count(*) FROM log_entries WHERE event_hash = %s)",
        (event_hash_digest(event), event_hash_digest(event)),
    ).fetchone()
    assert queued == (1,)


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "disposition": lambda e: e.update(disposition="damaged"),
    "biz_step": lambda e: e.update(bizStep="shipping"),
    "epc": lambda e: e.update(epcList=["urn:epc:id:sgtin:0614141.012345.999999"]),
    "event_time_plus_1ms": lambda e: e.update(
        eventTime=(datetime.fromisoformat(e["eventTime"]) + timedelta(milliseconds=1)).isoformat(
            timespec="milliseconds"
        )
    ),
    "read_point": lambda e: e.update(readPoint={"id": "urn:epc:id:sgln:0614141.00009.0"}),
    "added_extension": lambda e: e.update({"example:note": "paid in full"}),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_replay_is_refused_and_the_original_kept(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
    edit: str,
) -> None:
    device = make_device()
    original = make_event()
    genuine = orjson.loads(envelope(device, original))
    publisher.publish(Publication(device.events_topic, orjson.dumps(genuine)))
    listener.wait_for(device.receipts, 1)
    stored_before = rows_of(db, original)

    edited = orjson.loads(orjson.dumps(original))
    EDITS[edit](edited)
    assert event_hash_digest(edited) != event_hash_digest(original)  # a new identity...
    forged = orjson.dumps({"event": edited, "sig": genuine["sig"]})  # ...under the old sig
    publisher.publish(Publication(device.events_topic, forged))
    reject = listener.wait_for(device.rejects, 1)[0]
    assert (reject["reason"], reject["index"]) == ("signature_mismatch", 0)
    assert rows_of(db, edited) == []
    assert rows_of(db, original) == stored_before
    count = db.execute(
        "SELECT count(*) FROM events WHERE device_id = %s", (device.device_id,)
    ).fetchone()
    assert count == (1,)


def test_a_replay_with_unhashed_fields_changed_changes_nothing(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    # CBV 2.0 leaves eventID, recordTime and errorDeclaration out of the hash, so the old
    # signature still verifies: the replay must be a duplicate that rewrites nothing stored; with
    # an errorDeclaration it is a declaration, refused here (the org owns no prefix, so no one
    # may declare this commissioning erroneous) and rewriting nothing either.
    device = make_device()
    original = make_event()
    genuine = orjson.loads(envelope(device, original))
    publisher.publish(Publication(device.events_topic, orjson.dumps(genuine)))
    listener.wait_for(device.receipts, 1)
    stored_before = rows_of(db, original)
    edited = {
        **original,
        "eventID": "urn:uuid:" + secrets.token_hex(16),
        "recordTime": "2020-01-01T00:00:00Z",
    }
    declared = {
        **edited,
        "errorDeclaration": {"declarationTime": "2020-01-01T00:00:00Z", "reason": "incorrect_data"},
    }
    assert event_hash_digest(edited) == event_hash_digest(declared) == event_hash_digest(original)
    for replay in (edited, declared):
        publisher.publish(
            Publication(device.events_topic, orjson.dumps({"event": replay, "sig": genuine["sig"]}))
        )
    receipts = listener.wait_for(device.receipts, 2)
    assert receipts[1] == {"event_hash": event_hash_id(original), "status": "duplicate"}
    [refused] = listener.wait_for(device.rejects, 1)
    assert refused["reason"] == "not_entitled_to_declare"
    assert rows_of(db, original) == stored_before
    assert "errorDeclaration" not in stored_before[0][2]


# --- SQL injection -----------------------------------------------------------------------------

NO_SPACE = "');DROP/**/TABLE/**/events;--"  # URIs may not contain spaces; quotes are fine


def injected_event(serial: str) -> dict[str, Any]:
    """A valid event with an injection string in every free-text field EPCIS allows."""
    event = base_events(serial)[1]  # the ObjectEvent with a sensor report
    event.update(
        {
            "eventID": SQL_INJECTIONS[0],
            "certificationInfo": "urn:x:" + NO_SPACE,
            "readPoint": {"id": "urn:x:" + NO_SPACE},
            "bizLocation": {"id": "urn:x:'OR'1'='1"},
            "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:" + NO_SPACE}],
            "sourceList": [{"type": "owning_party", "source": "urn:x:'OR'1'='1--"}],
            "destinationList": [{"type": "owning_party", "destination": "urn:x:" + NO_SPACE}],
            **{f"example:i{i}": text for i, text in enumerate(SQL_INJECTIONS)},
            "example:" + SQL_INJECTIONS[0]: SQL_INJECTIONS[1],  # as a key, too
            "example:nested": {"example:a": [SQL_INJECTIONS[2], {"example:b": SQL_INJECTIONS[3]}]},
        }
    )
    report = event["sensorElementList"][0]["sensorReport"][0]
    report.update({"stringValue": SQL_INJECTIONS[4], "deviceID": "urn:x:" + NO_SPACE})
    return event


INJECTED_FIELDS = [
    "eventID",
    "certificationInfo",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
    *(f"example:i{i}" for i in range(len(SQL_INJECTIONS))),
    "example:" + SQL_INJECTIONS[0],
    "example:nested",
]


def test_sql_injection_over_mqtt_is_stored_verbatim(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    event = injected_event(secrets.token_hex(4))
    orgs_before = db.execute("SELECT count(*) FROM orgs").fetchone()
    publisher.publish(Publication(device.events_topic, envelope(device, event)))
    assert listener.wait_for(device.receipts, 1)[0]["status"] == "accepted"
    ((_, _, stored),) = rows_of(db, event)
    for field in INJECTED_FIELDS:
        assert stored[field] == event[field], field
    columns = db.execute(
        "SELECT read_point, biz_location FROM events WHERE event_hash = %s",
        (event_hash_digest(event),),
    ).fetchone()
    assert columns == ("urn:x:" + NO_SPACE, "urn:x:'OR'1'='1")
    tables_intact(db)
    assert db.execute("SELECT count(*) FROM orgs").fetchone() == orgs_before


def test_sql_injection_in_identifiers_over_mqtt_is_stored_verbatim(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    # Lot numbers and serials allow quotes and semicolons (GS1 character set 82): they reach
    # the lots/epcs array columns and their GIN indexes.
    device = make_device()
    lot = f"L{secrets.token_hex(2)}');DROP--"
    event = base_events(secrets.token_hex(4))[0]
    event["ilmd"] = {"cbvmda:lotNumber": lot}
    event["epcList"] = [f"urn:epc:id:sgtin:0614141.012345.{secrets.token_hex(2)}'OR'1'='1"]
    publisher.publish(Publication(device.events_topic, envelope(device, event)))
    assert listener.wait_for(device.receipts, 1)[0]["status"] == "accepted"
    ((_, _, stored),) = rows_of(db, event)
    assert stored["ilmd"]["cbvmda:lotNumber"] == lot
    lots = db.execute(
        "SELECT lots FROM events WHERE event_hash = %s", (event_hash_digest(event),)
    ).fetchone()
    assert lots is not None
    assert len(lots[0]) == 1
    assert "DROP" in lots[0][0]
    # The injected lot is findable as data, by the exact value the array holds.
    found = db.execute("SELECT count(*) FROM events WHERE lots @> %s", ([lots[0][0]],)).fetchone()
    assert found == (1,)
    tables_intact(db)


def test_sql_injection_over_http_capture_reads_back_verbatim(api: Api) -> None:
    event = injected_event(secrets.token_hex(4))
    captured = api.call("POST", "/v1/capture", "maker", json=event)
    assert captured.status_code == 201, captured.text
    page = api.call("GET", "/v1/events", "maker", params={"EQ_bizLocation": "urn:x:'OR'1'='1"})
    assert page.status_code == 200, page.text
    (returned,) = page.json()["events"]
    for field in INJECTED_FIELDS:
        assert returned[field] == event[field], field
    tables_intact(api.conn)


QUERY_ROUTES = [
    ("/v1/events", "maker", ("EQ_bizStep", "MATCH_epc", "EQ_bizLocation")),
    ("/v1/events", "regulator", ("EQ_bizStep", "MATCH_epc", "EQ_bizLocation", "GE_eventTime")),
    ("/v1/risk-flags", "bank", ("since",)),
    (f"/v1/trace{LOT}", "regulator", ("direction",)),
    ("/v1/provenance", None, ("epc",)),
    ("/v1/qr", None, ("url", "format")),
]


@pytest.mark.parametrize("injection", SQL_INJECTIONS)
def test_sql_injection_in_query_parameters_is_data(api: Api, injection: str) -> None:
    events_before = api.conn.execute("SELECT count(*) FROM events").fetchone()
    for path, who, names in QUERY_ROUTES:
        for name in names:
            response = api.call("GET", path, who, params={name: injection})
            assert response.status_code < 500, (path, name, response.text)
            if path == "/v1/events" and response.status_code == 200:
                # A filter that matches nothing finds nothing, it does not widen the query.
                assert response.json()["events"] == [], (name, injection)
    for path in (
        f"/v1/lots/{quote(injection, safe='')}",
        f"/v1/trace/{quote(injection, safe='')}",
        f"/01/{GTIN}/10/{quote(injection, safe='')}",
        f"/01/{GTIN}/21/{quote(injection, safe='')}",
        f"/v1/proofs/{quote(injection, safe='')}",
        f"/v1/pledges/{quote(injection, safe='')}",
    ):
        who = "bank" if "pledges" in path else "regulator"
        method = "DELETE" if "pledges" in path else "GET"
        response = api.call(method, path, who)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert response.json()["code"], response.text
    assert api.conn.execute("SELECT count(*) FROM events").fetchone() == events_before
    tables_intact(api.conn)


def test_sql_injection_in_json_bodies_is_stored_verbatim_or_refused(api: Api) -> None:
    text = SQL_INJECTIONS[0] + " <script>alert(1)</script>"
    # The seeded product (maker's GTIN) renamed by its owner: stored and shown as written.
    renamed = api.call(
        "POST",
        "/v1/products",
        "maker",
        json={
            "gtin": GTIN,
            "name": text,
            "category": SQL_INJECTIONS[1],
            "unit_price": "12.50",
            "currency": "CNY",
        },
    )
    assert renamed.status_code == 201, renamed.text
    row = api.conn.execute(
        "SELECT name, category FROM products WHERE gtin = %s", (GTIN,)
    ).fetchone()
    assert row == (text, SQL_INJECTIONS[1])
    page = api.call("GET", LOT, headers={"Accept": "application/json"}).json()
    assert page["product"]["name"] == text
    # In HTML the name is text, not markup.
    html = api.call("GET", LOT, headers={"Accept": "text/html"}).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Identifier fields are patterned: an injection there is refused, not executed.
    for who, path, body in (
        ("maker", "/v1/devices", {"device_id": SQL_INJECTIONS[0], "unsigned": True}),
        ("bank", "/v1/lines", {"borrower": SQL_INJECTIONS[2], "limit": "1", "currency": "CNY"}),
        (
            "maker",
            "/v1/applications",
            {"financier": "bank", "lot": SQL_INJECTIONS[0], "amount": "1"},
        ),
        (
            "maker",
            "/v1/applications",
            {"financier": SQL_INJECTIONS[1], "lot": LOT_URI, "amount": "1"},
        ),
        ("bank", "/v1/lines/1/repayments", {"amount": SQL_INJECTIONS[4]}),
        (None, "/v1/verify", {"version": 1, "status": "anchored", "event_hash": SQL_INJECTIONS[0]}),
    ):
        response = api.call("POST", path, who, json=body)
        assert response.status_code < 500, (path, response.text)
        if path == "/v1/verify":
            assert response.json()["valid"] is False
        else:
            assert response.status_code in (400, 404, 409, 422), (path, response.text)
    tables_intact(api.conn)
    lines = api.conn.execute("SELECT limit_minor FROM credit_lines").fetchall()
    assert all(row[0] > 0 for row in lines)  # "UPDATE credit_lines SET limit_minor = 0" did not run


# --- a proof anchored on someone else's contract -----------------------------------------------


def forged_bundle(chain_rpc_url: str) -> dict[str, Any]:
    """The attack: from a spare account, deploy a TraceAnchor of one's own, anchor a 4-leaf tree
    holding a conformant event tracefin never stored, and write the bundle for it."""
    w3 = connect(chain_rpc_url)
    attacker = Account.create()
    w3.provider.make_request("anvil_setBalance", [attacker.address, hex(10**20)])
    key = "0x" + bytes(attacker.key).hex()
    contract, _ = deploy(w3, key, TRACE_ANCHOR)
    digest = event_hash_digest(make_event(bizStep="inspecting"))
    leaves = [digest, *(secrets.token_bytes(32) for _ in range(3))]
    tree_root = merkle.root(leaves)
    sent = Chain(w3, contract, None, key).anchor_batch(0, len(leaves), tree_root)
    batch = AnchoredBatch(
        batch_id=sent.batch_id,
        root=tree_root,
        first_index=0,
        tree_size=len(leaves),
        chain_id=int(w3.eth.chain_id),
        contract=contract,
        tx_hash=sent.tx_hash,
        block_number=sent.block_number,
    )
    inclusion = Inclusion(0, tuple(merkle.audit_path(leaves, 0)), batch)
    return Bundle(digest, None, inclusion).to_json()


def test_a_bundle_anchored_on_an_attackers_own_contract_is_unknown_contract(
    api: Api, tmp_path: Path
) -> None:
    bundle = forged_bundle(api.chain_rpc_url)
    w3 = connect(api.chain_rpc_url)
    # Its own contract vouches for it: exactly what verification used to accept.
    attacker = TrustedAnchor.of(int(w3.eth.chain_id), bundle["contract"])
    assert verify_bundle(bundle, w3, {attacker}).valid

    # The public route checks it against this deployment's TraceAnchor.
    answer = api.call("POST", "/v1/verify", json=bundle)
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is False
    assert answer.json()["reasons"][0].startswith("unknown_contract:"), answer.json()
    genuine = api.get(f"/v1/proofs/{api.digests[0].hex()}").json()
    assert api.call("POST", "/v1/verify", json=genuine).json() == {"valid": True, "reasons": []}

    # The CLI: pinned by the deployment document the server publishes, or by --contract.
    published = api.get("/v1/deployment")
    assert published.status_code == 200, published.text
    assert published.json()["trusted_anchors"] == [
        {"chain_id": attacker.chain_id, "contract": published.json()["trace_anchor"].lower()}
    ]
    (tmp_path / "deployment.json").write_text(published.text)
    (tmp_path / "forged.json").write_text(orjson.dumps(bundle).decode())
    (tmp_path / "genuine.json").write_text(orjson.dumps(genuine).decode())
    rpc = ("--rpc", api.chain_rpc_url)

    def verify_cli(bundle_file: str, *options: str) -> subprocess.CompletedProcess[str]:
        return tracefin_only("verify", "--bundle", bundle_file, *options, env={}, cwd=tmp_path)

    for pin in (
        ("--deployment", "deployment.json"),
        ("--chain-id", str(attacker.chain_id), "--contract", published.json()["trace_anchor"]),
    ):
        refused = tracefin_only(
            "verify", "--bundle", "forged.json", *rpc, *pin, env={}, cwd=tmp_path
        )
        assert refused.returncode == 1, refused.stderr
        assert orjson.loads(refused.stdout)["reasons"][0].startswith("unknown_contract:")
        kept = verify_cli("genuine.json", *rpc, *pin)
        assert kept.returncode == 0, kept.stdout + kept.stderr
    # With nothing to pin to, a bundle is not taken at its own word.
    unpinned = verify_cli("forged.json", *rpc)
    assert unpinned.returncode == 2
    assert "--contract" in unpinned.stderr

"""Devices and attestations over HTTP: unique addresses, site bindings, capture attested."""

from __future__ import annotations

import secrets

import pytest

from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.signatures import address_of
from records import attestation_store
from tests.support.api import Api
from tests.support.events import make_event
from tracefin.simulate import WAREHOUSE_GLN

pytestmark = pytest.mark.integration


def test_an_address_is_registered_once_across_orgs(world: Api) -> None:
    address = address_of(secrets.token_bytes(32))
    first = world.call(
        "POST", "/v1/devices", "maker", json={"device_id": "reader-1", "address": address}
    )
    assert first.status_code == 201, first.text
    taken = world.call(
        "POST", "/v1/devices", "rival", json={"device_id": "reader-1", "address": address}
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "address_in_use")
    assert taken.headers["content-type"].startswith("application/problem+json")
    # A new address for the same device rotates its key.
    rotated = world.call(
        "POST",
        "/v1/devices",
        "maker",
        json={"device_id": "reader-1", "address": address_of(secrets.token_bytes(32))},
    )
    assert rotated.status_code == 201, rotated.text
    back = world.call(
        "POST", "/v1/devices", "maker", json={"device_id": "reader-1", "address": address}
    )
    assert (back.status_code, back.json()["code"]) == (409, "address_in_use")


def test_devices_are_bound_to_sites_their_org_operates(world: Api) -> None:
    site = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"  # maker operates it (the seeded world)
    bound = world.call(
        "POST",
        "/v1/devices",
        "maker",
        json={"device_id": "probe-1", "unsigned": True, "sites": [site]},
    )
    assert (bound.status_code, bound.json()["sites"]) == (201, [WAREHOUSE_GLN]), bound.text
    foreign = world.call(
        "POST",
        "/v1/devices",
        "rival",
        json={"device_id": "probe-1", "unsigned": True, "sites": [WAREHOUSE_GLN]},
    )
    assert (foreign.status_code, foreign.json()["code"]) == (403, "not_site_operator")
    wrong = WAREHOUSE_GLN[:-1] + str((int(WAREHOUSE_GLN[-1]) + 1) % 10)
    bad = world.call(
        "POST",
        "/v1/devices",
        "maker",
        json={"device_id": "probe-2", "unsigned": True, "sites": [wrong]},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_identifier")


def test_http_capture_is_an_attestation_and_so_is_a_duplicate(world: Api) -> None:
    event = make_event()
    digest = event_hash_digest(event)
    first = world.call("POST", "/v1/capture", "maker", json=event)
    assert first.status_code == 201, first.text
    assert first.json()["accepted"][0]["status"] == "accepted"
    again = world.call("POST", "/v1/capture", "rival", json=event)
    assert again.status_code == 201, again.text
    assert again.json()["accepted"][0] == {
        "index": 0,
        "event_hash": event_hash_id(event),
        "status": "duplicate",
    }
    world.call("POST", "/v1/capture", "rival", json=event)  # resent: no second attestation
    attestations = attestation_store.attestations_for(world.conn, [digest])[digest]
    assert [(a.org, a.device, a.user, a.channel, a.signed) for a in attestations] == [
        ("maker", None, world.keys["maker"][:8], "http", False),
        ("rival", None, world.keys["rival"][:8], "http", False),
    ]


def test_the_seeded_events_carry_their_devices_attestations(world: Api) -> None:
    found = attestation_store.attestations_for(world.conn, world.digests)
    assert set(found) == set(world.digests)
    for attestations in found.values():
        assert [(a.org, a.channel, a.signed) for a in attestations] == [("maker", "mqtt", True)]

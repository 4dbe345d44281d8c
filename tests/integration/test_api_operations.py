"""The write routes over a real database and chain: the financing story through the API."""

from __future__ import annotations

import pytest

from finance import pledges, service
from finance.pledges import PledgeRegistry
from finance.store import credit
from ledger.chain import Chain, connect
from ledger.log_store import current_deployment
from tests.support.api import Api
from tests.support.world import JOURNAL, LOT, LOT_URI, WAREHOUSE

pytestmark = pytest.mark.integration


def auth(world: Api, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[who]}"}


def test_enterprise_registers_products_and_devices(world: Api) -> None:
    product = {
        "gtin": "00614141099993",  # in maker's GS1 Company Prefix, with its check digit
        "name": "Ice cream",
        "category": "frozen",
        "unit_price": "8.90",
        "currency": "CNY",
        "min_temp_c": "-25",
    }
    created = world.client.post("/v1/products", json=product, headers=auth(world, "maker"))
    assert (created.status_code, created.json()["unit_price_minor"]) == (201, 890)
    # The same GTIN cannot be taken over by another organisation.
    taken = world.client.post("/v1/products", json=product, headers=auth(world, "rival"))
    assert (taken.status_code, taken.json()["code"]) == (403, "not_your_product")
    bad = world.client.post(
        "/v1/products", json={**product, "unit_price": "8.9.0"}, headers=auth(world, "maker")
    )
    assert bad.status_code == 422
    device = world.client.post(
        "/v1/devices",
        json={"device_id": "scanner-9", "unsigned": True},
        headers=auth(world, "maker"),
    )
    assert device.json()["publish_to"] == "tf/maker/scanner-9/events"
    twice = world.client.post(
        "/v1/devices",
        json={"device_id": "scanner-9", "unsigned": True},
        headers=auth(world, "maker"),
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "device_exists")
    financier = world.client.post(
        "/v1/devices", json={"device_id": "x", "unsigned": True}, headers=auth(world, "bank")
    )
    assert financier.status_code == 403


def test_financier_runs_a_line_through_the_api(world: Api) -> None:
    # Lot 1 is still in the supervised warehouse after its first four events.
    lines = world.client.get("/v1/lines", headers=auth(world, "bank")).json()
    assert [line["status"] for line in lines] == ["active"]
    line_id = lines[0]["id"]
    assert world.client.get("/v1/lines", headers=auth(world, "other-bank")).json() == []

    # Another bank cannot touch this line: it does not exist for them.
    foreign = world.client.post(f"/v1/lines/{line_id}/freeze", headers=auth(world, "other-bank"))
    assert (foreign.status_code, foreign.json()["code"]) == (404, "unknown_line")
    frozen = world.client.post(f"/v1/lines/{line_id}/freeze", headers=auth(world, "bank"))
    assert frozen.json()["status"] == "frozen"
    refused = world.client.post(
        "/v1/applications",
        headers=auth(world, "maker"),
        json={"financier": "bank", "lot": LOT_URI, "amount": "1.00"},
    )
    assert refused.json()["decision"] == "decline"
    assert "line_frozen" in refused.json()["reasons"]
    active = world.client.post(f"/v1/lines/{line_id}/unfreeze", headers=auth(world, "bank"))
    assert active.json()["status"] == "active"
    overpaid = world.client.post(
        f"/v1/lines/{line_id}/repayments", json={"amount": "5.00"}, headers=auth(world, "bank")
    )
    assert (overpaid.status_code, overpaid.json()["code"]) == (422, "invalid_amount")


def test_pledge_and_release_on_chain_through_the_api(world: Api) -> None:
    deployment = current_deployment(world.conn)
    assert deployment is not None
    chain = Chain(
        connect(world.chain_rpc_url), deployment.anchor_address, deployment.pledge_address
    )
    key = pledges.lot_key(LOT_URI)
    # The fixture's pledge released (on chain too), and lot 0 back in the supervised warehouse.
    assert PledgeRegistry(chain).pledgee(key) is not None
    released = world.client.delete(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert released.status_code == 200, released.text
    assert PledgeRegistry(chain).pledgee(key) is None
    world.conn.execute(
        "UPDATE lots SET custody = 'warehouse', location = %s WHERE lot_uri = %s",
        (WAREHOUSE, LOT_URI),
    )
    pledged = world.client.post(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert pledged.status_code == 200, pledged.text
    assert PledgeRegistry(chain).pledgee(key) is not None
    again = world.client.post(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert (again.status_code, again.json()["code"]) == (409, "already_pledged")
    # A second bank, supervising the same warehouse, is refused by the contract.
    world.client.post(
        "/v1/lines",
        json={"borrower": "maker", "limit": "100.00", "currency": "CNY"},
        headers=auth(world, "other-bank"),
    )
    service.supervise(world.conn, JOURNAL, "other-bank", WAREHOUSE)
    double = world.client.post(f"/v1/pledges{LOT}", headers=auth(world, "other-bank"))
    assert (double.status_code, double.json()["code"]) == (409, "double_pledge")
    released = world.client.delete(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert released.status_code == 200, released.text
    assert PledgeRegistry(chain).pledgee(key) is None
    assert credit.live_pledge(world.conn, LOT_URI) is None
    again = world.client.delete(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert (again.status_code, again.json()["code"]) == (409, "not_pledged")

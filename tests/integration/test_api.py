"""The HTTP API over a real database and chain: pages, proofs, capture, query, access control."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.i18n import TEXTS
from api.schemas import ProvenancePublic
from epcis.authority import Reason
from epcis.identifiers import check_digit, normalise_epc
from ledger.chain import connect
from records import attestation_store, people_store, registry_store
from records.attestation_store import AttestationToStore
from tests.support.api import METRICS_TOKEN, Api
from tests.support.cold_lot import EXCURSION_C, EXCURSION_MINUTES, seed_cold_lot
from tests.support.cold_lot import LOT as COLD_LOT
from tests.support.cold_lot import WAREHOUSE_CITY as COLD_CITY
from tests.support.cold_lot import WAREHOUSE_NAME as COLD_STORE
from tests.support.events import make_event
from tests.support.world import GTIN, ITEM, LOT, LOT_URI
from tracefin.processes.api import build_app
from tracefin.settings import Settings
from tracefin.simulate import COMPANY_PREFIX, FACTORY_GLN, SHOP_GLN, WAREHOUSE_GLN, gtin_for

pytestmark = pytest.mark.integration


def test_item_page_json_shows_only_public_fields_with_verification(world: Api) -> None:
    response = world.get(ITEM, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    page = response.json()  # type: ignore[attr-defined]
    assert page["product"] == {
        "gtin": GTIN,
        "name": "Frozen dumplings",
        "lot": None,
        "serial": "0000000000",
        "digital_link": f"https://id.gs1.org{ITEM}",
        # Issue 20: names, not codes: the brand owner and the lot's best-before date.
        "producer": "maker",
        "producer_name": "maker",  # it registered no name: its slug
        "best_before": "2027-12-31",
        "category": "frozen",
        "min_temp_c": None,
        "max_temp_c": None,
    }
    steps = [event["biz_step"] for event in page["events"]]
    # The item itself, its pallet and its lot: all five stages.
    assert steps == [
        "commissioning",
        "packing",
        "inspecting",
        "storing",
        "shipping",
        "accepting",
        "retail_selling",
    ]
    assert (page["verified"], page["pending"], page["failed"]) == (7, 0, 0)
    first = page["events"][0]
    assert set(first) - {"reason"} == {
        "event_hash",
        "event_time",
        "event_time_zone_offset",
        "event_type",
        "action",
        "biz_step",
        "disposition",
        "stage",
        "read_point",
        "biz_location",
        "place",
        "sensor_readings",
        "verification",
        # Its origin (issue 13): who recorded it, who else attested it, whether it counts.
        "recorded_by",
        "signed",
        "attested_by",
        "evidence",
        # Who declared it erroneous, when and why (issue 16 item 4): null when no one did.
        "error_declaration",
    }
    assert first["error_declaration"] is None
    assert ("reason" in first) == (first["evidence"] == "unattested")
    assert first["verification"]["state"] == "anchored"
    assert "price" not in response.text  # type: ignore[attr-defined]
    # Devices appear only as who recorded or attested an event, never their keys or topics.
    assert "address" not in response.text  # type: ignore[attr-defined]
    assert "tf/" not in response.text  # type: ignore[attr-defined]


def test_lot_page_and_epc_lookup(world: Api) -> None:
    lot = world.get(LOT, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert lot["product"]["lot"] == "L0000000"
    assert {e["stage"] for e in lot["events"]} >= {
        "manufacturing",
        "quality_inspection",
        "inventory",
        "logistics",
        "sales",
    }
    by_urn = world.get(
        "/v1/provenance", params={"epc": "urn:epc:class:lgtin:0614141.000000.L0000000"}
    )
    assert by_urn.status_code == 200  # type: ignore[attr-defined]
    by_link = world.get("/v1/provenance", params={"epc": f"https://id.gs1.org{ITEM}"})
    assert by_link.status_code == 200  # type: ignore[attr-defined]
    bad = world.get("/v1/provenance", params={"epc": "urn:epc:id:sgtin:junk"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_identifier")  # type: ignore[attr-defined]
    # A GTIN whose check digit is wrong is refused, not looked up (a typo is not "not found").
    gtin = ITEM.split("/")[2]
    wrong = gtin[:-1] + str((int(gtin[-1]) + 1) % 10)
    for path in (ITEM.replace(gtin, wrong), f"/01/{wrong}/10/L0000000"):
        typo = world.get(path)
        assert (typo.status_code, typo.json()["code"]) == (400, "invalid_identifier"), path  # type: ignore[attr-defined]


def test_html_page_in_english_and_chinese(world: Api) -> None:
    english = world.get(ITEM, headers={"Accept": "text/html", "Accept-Language": "en-GB"})
    assert english.headers["content-type"].startswith("text/html")  # type: ignore[attr-defined]
    assert english.text.count('class="event anchored ') == 7  # type: ignore[attr-defined]
    assert "Anchored on chain: 7" in english.text  # type: ignore[attr-defined]
    # One script, this site's own file: nothing inline (the CSP would refuse it anyway).
    assert re.findall(r"<script[^>]*>", english.text) == [  # type: ignore[attr-defined]
        '<script src="/static/page.js" defer>'
    ]
    assert "http://" not in english.text  # no external assets: the page works offline  # type: ignore[attr-defined]
    chinese = world.get(
        ITEM, headers={"Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    )
    assert "已上链存证: 7" in chinese.text  # type: ignore[attr-defined]
    assert "生产" in chinese.text  # type: ignore[attr-defined]


def test_unknown_product_is_a_404_problem(world: Api) -> None:
    response = world.get(f"/01/{gtin_for(999)}/21/nope")
    assert response.status_code == 404  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert response.json()["code"] == "unknown_product"  # type: ignore[attr-defined]


def test_tampered_event_shows_as_failed(world: Api) -> None:
    # Seen once intact first: what is remembered of that view must not hide the edit.
    before = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert before["failed"] == 0
    world.conn.execute(
        "UPDATE events SET event = jsonb_set(event, '{disposition}', '\"damaged\"')"
        " WHERE biz_step = 'inspecting' AND epcs = '{}' AND lots @> ARRAY[%s]",
        (LOT_URI,),
    )
    page = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    states = {e["biz_step"]: e["verification"]["state"] for e in page["events"]}
    assert states["inspecting"] == "failed"
    assert page["failed"] == 1
    html = world.get(ITEM, headers={"Accept": "text/html"}).text  # type: ignore[attr-defined]
    assert 'class="event failed ' in html


def test_proof_bundle_verifies_and_tampering_does_not(world: Api) -> None:
    digest = world.digests[3]
    bundle = world.get(f"/v1/proofs/{digest.hex()}").json()  # type: ignore[attr-defined]
    assert bundle["status"] == "anchored"
    ok = world.client.post("/v1/verify", json=bundle)
    assert ok.json() == {"valid": True, "reasons": []}
    forged = world.client.post("/v1/verify", json={**bundle, "root": "0x" + "00" * 32})
    assert forged.json()["valid"] is False
    assert world.get("/v1/proofs/" + "ab" * 32).status_code == 404  # type: ignore[attr-defined]
    assert world.get("/v1/proofs/zz").json()["code"] == "invalid_event_hash"  # type: ignore[attr-defined]
    junk = world.client.post(
        "/v1/verify", content=b"[1,2]", headers={"Content-Type": "application/json"}
    )
    assert junk.status_code == 422


def test_every_answer_forbids_framing_sniffing_scripts_and_referrers(world: Api) -> None:
    """Pages, JSON and problems alike (issue 17): a CSP allowing no script and nothing loaded
    (the page's one style sheet is inline), no framing, no type sniffing, no referrer. The
    product page runs its own script file only (issue 20): no inline script, nothing loaded."""
    answers = [
        world.get(ITEM, headers={"Accept": "text/html"}),
        world.get(ITEM),
        world.get("/v1/lots/01/00000000000000/10/nope", "bank"),  # a problem
    ]
    assert answers[2].status_code == 404  # type: ignore[attr-defined]
    for answer in answers:
        headers = answer.headers  # type: ignore[attr-defined]
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        scripts = re.findall(r"script-src ([^;]*)", policy)
        if answer is answers[0]:
            assert scripts == ["'self'"], policy  # the page's own file, never inline code
        else:
            assert scripts == [], policy  # scripts fall under default-src 'none'
        assert (headers["x-content-type-options"], headers["x-frame-options"]) == (
            "nosniff",
            "DENY",
        )
        assert headers["referrer-policy"] == "no-referrer"


def test_page_embeds_the_proof_bundles_that_verify(world: Api) -> None:
    page = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    for event in page["events"]:
        embedded = event["verification"]["proof"]
        linked = world.get(event["verification"]["proof_url"]).json()  # type: ignore[attr-defined]
        assert embedded == linked
        assert embedded["status"] == "anchored"
        assert embedded["tx_hash"] == event["verification"]["tx_hash"]
    verdict = world.client.post("/v1/verify", json=page["events"][-1]["verification"]["proof"])
    assert verdict.json() == {"valid": True, "reasons": []}


def test_cold_lot_json_charts_its_stays_and_spells_out_the_check_for_apps(world: Api) -> None:
    """Issue 20 in JSON: the cold chain (stays from counting events, bucketed readings, the
    excursion), the page's shape as documented, and the check an app can replay by itself."""
    lot = seed_cold_lot(world.conn, world.chain_rpc_url)
    page = world.get(COLD_LOT, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    ProvenancePublic.model_validate(page)
    assert (page["product"]["min_temp_c"], page["product"]["max_temp_c"]) == (-25, -15)
    cold = page["cold_chain"]
    assert cold["bucket_minutes"] == 15
    assert cold["open"] is False  # shipped: the claims at the unregistered shop move nothing
    assert [(s["gln"], s["name"]) for s in cold["stays"]] == [
        (FACTORY_GLN, "Factory"),
        (WAREHOUSE_GLN, COLD_STORE),
    ]
    placed = {(e["place"]["name"], e["place"]["city"]) for e in page["events"] if e["place"]}
    assert (COLD_STORE, COLD_CITY) in placed
    assert ("Factory", None) in placed
    [excursion] = cold["excursions"]
    assert (excursion["name"], excursion["minutes"], excursion["extreme"]) == (
        COLD_STORE,
        EXCURSION_MINUTES,
        EXCURSION_C,
    )
    assert datetime.fromisoformat(excursion["start"]) == lot.start + timedelta(hours=5)
    # The warehouse's readings only (its bound sensor), 12 h in 15-minute buckets.
    assert {b["gln"] for b in cold["buckets"]} == {WAREHOUSE_GLN}
    assert len(cold["buckets"]) == 48

    w3 = connect(world.chain_rpc_url)
    for event in page["events"]:
        proof, check = event["verification"]["proof"], event["verification"]["check"]
        assert check["steps"][0]["side"] == "leaf"
        assert check["steps"][-1]["hash"] == proof["root"]
        assert check["leads_to_root"] is True
        assert check["eth_call"]["to"] == proof["contract"]
        answer = bytes(w3.eth.call(check["eth_call"]))
        assert "0x" + answer[:32].hex() == proof["root"]
        assert int.from_bytes(answer[32:64], "big") == proof["first_index"]
        assert int.from_bytes(answer[64:96], "big") == proof["tree_size"]


def test_a_lot_still_in_a_measured_site_is_never_served_from_the_cache(world: Api) -> None:
    """Its readings keep coming and change no page generation: the page is built every time,
    so the chart is never older than the request."""
    cache = world.client.app.state.page_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not cache.listening:  # the listener connects in the background
        assert time.monotonic() < deadline, "the page cache listener never connected"
        time.sleep(0.02)
    seed_cold_lot(world.conn, world.chain_rpc_url, shipped=False)
    page = world.get(COLD_LOT, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert page["cold_chain"]["open"] is True
    assert page["cold_chain"]["stays"][-1]["gln"] == WAREHOUSE_GLN
    assert f"https://id.gs1.org{COLD_LOT}" not in cache
    # The item page of the world's other product (no temperature range) is cached as before.
    world.get(ITEM, headers={"Accept": "application/json"})
    assert f"https://id.gs1.org{ITEM}" in cache


def test_cached_page_follows_every_change(world: Api) -> None:
    cache = world.client.app.state.page_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not cache.listening:  # the listener connects in the background
        assert time.monotonic() < deadline, "the page cache listener never connected"
        time.sleep(0.02)
    first = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert f"https://id.gs1.org{ITEM}" in cache
    world.conn.execute("UPDATE products SET name = 'Renamed dumplings' WHERE gtin = %s", (GTIN,))
    renamed = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert (first["product"]["name"], renamed["product"]["name"]) == (
        "Frozen dumplings",
        "Renamed dumplings",
    )
    # A removed batch (a devnet reset wipes them) turns anchored events back to pending.
    world.conn.execute("DELETE FROM anchor_batches")
    after = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    assert (after["verified"], after["pending"]) == (0, 7)
    assert after["events"][0]["verification"]["proof"]["status"] == "pending"


# --- origin: who recorded each event, who attested it, whether it counts (issue 13) ------------

# The device of each step of the seeded lifecycle (tracefin.simulate.lifecycle).
STEP_DEVICES = {
    "commissioning": "line-1",
    "packing": "line-1",
    "inspecting": "qc-1",
    "storing": "wh-1",
    "shipping": "truck-1",
    "accepting": "shop-1",
    "retail_selling": "shop-1",
}


def page_events(world: Api) -> dict[str, dict[str, object]]:
    """The item page's events by bizStep (each step occurs once on it)."""
    page = world.get(ITEM, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    return {event["biz_step"]: event for event in page["events"]}


def cached_events(world: Api) -> dict[str, dict[str, object]]:
    """`page_events`, viewed until the page is in the cache (a change's notice arriving while
    the page is built keeps it out), so that what follows shows a cached page is not stale."""
    cache = world.client.app.state.page_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        events = page_events(world)
        if f"https://id.gs1.org{ITEM}" in cache:
            return events
        assert time.monotonic() < deadline, "the page was never cached"
        time.sleep(0.05)


def html_card(html: str, event_hash: str) -> tuple[list[str], str]:
    """The classes and the inner HTML of an event's card on the page."""
    found = re.search(
        r'<li class="([^"]*)" data-event-hash="' + re.escape(event_hash) + r'">(.*?)</li>',
        html,
        re.DOTALL,
    )
    assert found is not None, f"no card for {event_hash}"
    return found.group(1).split(), found.group(2)


def register(world: Api, *, shop: bool) -> None:
    """`maker` holds the GS1 prefix of the world's goods and operates its warehouse and (with
    `shop`, else nobody does) the shop; attestations start empty, so each test says exactly who
    attested what."""
    world.conn.execute("DELETE FROM attestations")
    if COMPANY_PREFIX not in registry_store.org_prefixes(world.conn, "maker"):
        registry_store.add_prefix(world.conn, "maker", COMPANY_PREFIX)
    registry_store.add_site(world.conn, "maker", WAREHOUSE_GLN, "Cold store")
    if shop:
        registry_store.add_site(world.conn, "maker", SHOP_GLN, "Shop")
    else:
        world.conn.execute("DELETE FROM device_sites WHERE gln = %s", (SHOP_GLN,))
        world.conn.execute("DELETE FROM sites WHERE gln = %s", (SHOP_GLN,))


def attest(
    world: Api,
    event: dict[str, object],
    org: str,
    device: str | None,
    *,
    signed: bool,
    at: datetime,
) -> None:
    found = registry_store.get_org(world.conn, org)
    assert found is not None
    digest = bytes.fromhex(str(event["verification"]["proof_url"]).rsplit("/", 1)[1])  # type: ignore[index]
    attestation_store.insert_attestations(
        world.conn,
        [
            AttestationToStore(
                digest,
                found.id,
                device,
                None if device is not None else f"{org}-user",
                "mqtt" if device is not None else "http",
                b"\x01" * 65 if signed else None,
                at,
            )
        ],
    )


def test_every_reason_has_words_in_both_languages() -> None:
    for lang in ("en", "zh"):
        assert set(TEXTS[lang]["reasons"]) == {reason.value for reason in Reason}, lang


def test_page_shows_who_recorded_each_event_and_whether_it_counts(world: Api) -> None:
    register(world, shop=False)
    now = datetime.now(UTC)
    for step, event in page_events(world).items():
        attest(world, event, "maker", STEP_DEVICES[step], signed=True, at=now)
    storing = page_events(world)["storing"]
    attest(world, storing, "rival", None, signed=False, at=now + timedelta(seconds=1))

    events = page_events(world)
    assert events["commissioning"]["recorded_by"] == {"org": "maker", "device": "line-1"}
    assert events["commissioning"]["signed"] is True
    assert events["commissioning"]["attested_by"] == []
    for step in ("commissioning", "packing", "inspecting", "storing", "shipping"):
        assert events[step]["evidence"] == "counts", (step, events[step])
        assert "reason" not in events[step]
    assert events["storing"]["recorded_by"] == {"org": "maker", "device": "wh-1"}
    assert events["storing"]["attested_by"] == [{"org": "rival", "device": None, "signed": False}]
    # The shop is nobody's registered site: its claims are stored, shown, and do not count.
    for step in ("accepting", "retail_selling"):
        assert (events[step]["evidence"], events[step]["reason"]) == ("unattested", "unknown_site")
        assert events[step]["recorded_by"] == {"org": "maker", "device": "shop-1"}

    english = world.get(ITEM, headers={"Accept": "text/html", "Accept-Language": "en"}).text  # type: ignore[attr-defined]
    assert re.findall(r"<script[^>]*>", english) == ['<script src="/static/page.js" defer>']
    assert english.count('<span class="mark counts">Attested by the responsible party</span>') == 5
    assert "Attested by the responsible party: 5" in english
    assert "Not attested: 2" in english
    assert "Anchored on chain: 7" in english
    assert (
        "Claim by maker, not attested: nobody is registered as the operator of this site" in english
    )
    classes, card = html_card(english, str(storing["event_hash"]))
    assert classes == ["event", "anchored", "counts"]
    assert "Recorded by maker (device wh-1), signed" in card
    assert "Also submitted by: rival (over the API), not signed" in card
    classes, card = html_card(english, str(events["accepting"]["event_hash"]))
    assert classes == ["event", "anchored", "unattested"]
    assert "mark counts" not in card

    chinese = world.get(ITEM, headers={"Accept": "text/html", "Accept-Language": "zh-CN"}).text  # type: ignore[attr-defined]
    assert "<script>" not in chinese
    assert chinese.count('<span class="mark counts">责任方已确认</span>') == 5
    assert "maker 的单方声明，未经责任方确认：该地点没有登记运营方" in chinese  # noqa: RUF001
    _, card = html_card(chinese, str(storing["event_hash"]))
    assert "由 maker 记录（设备 wh-1），已签名" in card  # noqa: RUF001
    assert "同时提交此记录的还有：rival（通过接口提交），未签名" in card  # noqa: RUF001


def test_a_claim_by_an_unrelated_org_counts_once_the_rightful_party_attests(world: Api) -> None:
    cache = world.client.app.state.page_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not cache.listening:  # the listener connects in the background
        assert time.monotonic() < deadline, "the page cache listener never connected"
        time.sleep(0.02)
    register(world, shop=False)
    now = datetime.now(UTC)
    events = page_events(world)
    # Only `rival`, with a signed device of its own, says the goods were stored at maker's site.
    attest(world, events["storing"], "rival", "evil-1", signed=True, at=now)
    attest(world, events["accepting"], "maker", "shop-1", signed=True, at=now)

    storing = cached_events(world)["storing"]
    assert storing["recorded_by"] == {"org": "rival", "device": "evil-1"}
    assert storing["signed"] is True  # signed, and still not evidence: the rules decide that
    assert (storing["evidence"], storing["reason"]) == ("unattested", "not_site_operator")
    html = world.get(ITEM, headers={"Accept": "text/html"}).text  # type: ignore[attr-defined]
    classes, card = html_card(html, str(storing["event_hash"]))
    # Anchored, but no green mark: the chain proves the record, not the claim.
    assert classes == ["event", "anchored", "unattested"]
    assert "mark counts" not in card
    assert (
        "Claim by rival, not attested: only the operator of this site, with its devices there,"
        " may record this" in card
    )
    zh = world.get(ITEM, headers={"Accept": "text/html", "Accept-Language": "zh"}).text  # type: ignore[attr-defined]
    _, card = html_card(zh, str(storing["event_hash"]))
    assert "rival 的单方声明，未经责任方确认：只有该地点的运营方" in card  # noqa: RUF001

    # The warehouse's operator attests the same event later: it counts on the very next view.
    assert cached_events(world)["storing"]["evidence"] == "unattested"
    attest(world, storing, "maker", "wh-1", signed=True, at=now + timedelta(seconds=1))
    storing = page_events(world)["storing"]
    assert storing["evidence"] == "counts"
    assert "reason" not in storing
    assert storing["recorded_by"] == {"org": "rival", "device": "evil-1"}
    assert storing["attested_by"] == [{"org": "maker", "device": "wh-1", "signed": True}]
    html = world.get(ITEM, headers={"Accept": "text/html"}).text  # type: ignore[attr-defined]
    classes, card = html_card(html, str(storing["event_hash"]))
    assert classes == ["event", "anchored", "counts"]
    assert '<span class="mark counts">Attested by the responsible party</span>' in card

    # A registry change reaches the cached page too: the shop becomes maker's registered site.
    assert cached_events(world)["accepting"]["reason"] == "unknown_site"
    registry_store.add_site(world.conn, "maker", SHOP_GLN, "Shop")
    assert page_events(world)["accepting"]["evidence"] == "counts"


def test_a_transit_claim_counts_only_from_the_carrier_a_counting_shipment_named(
    world: Api,
) -> None:
    register(world, shop=True)
    carrier_gln = "0614142" + "00000" + check_digit("061414200000")
    carrier_key = registry_store.add_org(world.conn, "carrier", "logistics", ["0614142"])[1]
    epc = f"urn:epc:id:sgtin:0614141.012345.{secrets.token_hex(4)}"
    path = normalise_epc(epc).removeprefix("https://id.gs1.org")
    start = datetime.now(UTC) - timedelta(minutes=30)

    def event(minute: int, **fields: object) -> dict[str, object]:
        at = (start + timedelta(minutes=minute)).isoformat(timespec="milliseconds")
        return make_event(epcList=[epc], eventTime=at, **fields)

    moving = {"action": "OBSERVE", "disposition": "in_transit"}
    shipping = event(
        1,
        bizStep="shipping",
        bizLocation={"id": f"https://id.gs1.org/414/{WAREHOUSE_GLN}"},
        destinationList=[
            {
                "type": "possessing_party",
                "destination": f"https://id.gs1.org/417/{carrier_gln}",
            }
        ],
        **moving,
    )
    for who, events in (
        (world.keys["maker"], [event(0), shipping]),
        (carrier_key, [event(2, bizStep="transporting", **moving)]),
        (world.keys["rival"], [event(3, bizStep="transporting", **moving)]),
    ):
        captured = world.client.post(
            "/v1/capture", json=events, headers={"Authorization": f"Bearer {who}"}
        )
        assert captured.status_code == 201, captured.text
        assert captured.json()["rejected"] == [], captured.text

    def steps() -> list[tuple[str, str | None, str, str | None]]:
        page = world.get(path, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
        return [
            (e["biz_step"], e["recorded_by"]["org"], e["evidence"], e.get("reason"))
            for e in page["events"]
        ]

    # Shipped over the API, not by the warehouse's device: no custody was handed to anyone.
    assert steps() == [
        ("commissioning", "maker", "counts", None),
        ("shipping", "maker", "unattested", "device_required"),
        ("transporting", "carrier", "unattested", "no_custodian"),
        ("transporting", "rival", "unattested", "no_custodian"),
    ]
    page = world.get(path, headers={"Accept": "application/json"}).json()  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(seconds=1)
    attest(world, page["events"][1], "maker", "wh-1", signed=True, at=later)
    assert steps() == [
        ("commissioning", "maker", "counts", None),
        ("shipping", "maker", "counts", None),
        ("transporting", "carrier", "counts", None),
        ("transporting", "rival", "unattested", "not_custodian"),
    ]


def test_qr_codes(world: Api) -> None:
    svg = world.get("/v1/qr", params={"url": f"https://id.gs1.org{ITEM}"})
    assert svg.headers["content-type"] == "image/svg+xml"  # type: ignore[attr-defined]
    assert b"<svg" in svg.content  # type: ignore[attr-defined]
    png = world.get("/v1/qr", params={"url": f"https://id.gs1.org{ITEM}", "format": "png"})
    assert png.content.startswith(b"\x89PNG")  # type: ignore[attr-defined]
    assert world.get("/v1/qr", params={"url": "javascript:alert(1)"}).status_code == 400  # type: ignore[attr-defined]


def test_capture_over_http_uses_the_mqtt_pipeline(world: Api) -> None:
    good, bad = make_event(), make_event(bizStep="teleporting")
    headers = {"Authorization": f"Bearer {world.keys['maker']}"}
    response = world.client.post("/v1/capture", json=[good, bad], headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [a["status"] for a in body["accepted"]] == ["accepted"]
    assert body["rejected"][0]["reason"] == "invalid_vocabulary"
    again = world.client.post("/v1/capture", json=good, headers=headers)
    assert again.json()["accepted"][0]["status"] == "duplicate"
    not_json = world.client.post("/v1/capture", content=b"{nope", headers=headers)
    assert (not_json.status_code, not_json.json()["code"]) == (400, "not_json")
    dead = world.conn.execute("SELECT reason FROM dead_letters ORDER BY id").fetchall()
    assert [r[0] for r in dead] == ["invalid_vocabulary", "not_json"]
    nul = world.client.post(
        "/v1/capture", json=make_event(**{"example:note": "a\x00"}), headers=headers
    )
    assert (nul.status_code, nul.json()["code"]) == (400, "invalid_text")
    kept = world.conn.execute("SELECT reason FROM dead_letters ORDER BY id DESC LIMIT 1").fetchone()
    assert kept == ("invalid_text",)  # dead-lettered, as on MQTT
    huge = world.client.post("/v1/capture", content=b"x" * 2_000_000, headers=headers)
    assert (huge.status_code, huge.json()["code"]) == (413, "payload_too_large")


def test_capture_error_behaviour_rollback_stores_nothing_of_a_failing_payload(
    world: Api,
) -> None:
    headers = {"Authorization": f"Bearer {world.keys['maker']}"}
    good, bad = make_event(), make_event(bizStep="teleporting")

    def stored() -> int:
        row = world.conn.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    before = stored()
    rolled = world.client.post(
        "/v1/capture",
        json=[good, bad],
        headers={**headers, "GS1-Capture-Error-Behaviour": "rollback"},
    )
    assert (rolled.status_code, rolled.json()["code"]) == (422, "capture_rolled_back")
    assert [(r["index"], r["reason"]) for r in rolled.json()["rejected"]] == [
        (1, "invalid_vocabulary")
    ]
    assert stored() == before  # the good event was not stored either
    kept = world.conn.execute("SELECT reason FROM dead_letters ORDER BY id DESC LIMIT 1").fetchone()
    assert kept == ("invalid_vocabulary",)  # the refusal is kept to inspect, as always
    # Rolled back: the good event is new when sent again; a clean payload is stored whole.
    clean = world.client.post(
        "/v1/capture", json=[good], headers={**headers, "GS1-Capture-Error-Behaviour": "rollback"}
    )
    assert clean.status_code == 201, clean.text
    assert [a["status"] for a in clean.json()["accepted"]] == ["accepted"]
    # proceed (tracefin's default at /v1/capture) stores the good ones; anything else is refused.
    proceed = world.client.post(
        "/v1/capture",
        json=[make_event(), bad],
        headers={**headers, "GS1-Capture-Error-Behaviour": "proceed"},
    )
    assert [a["status"] for a in proceed.json()["accepted"]] == ["accepted"]
    odd = world.client.post(
        "/v1/capture", json=[good], headers={**headers, "GS1-Capture-Error-Behaviour": "maybe"}
    )
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid_capture_error_behaviour")
    assert stored() == before + 2


def test_event_query_is_scoped_filtered_and_paginated(world: Api) -> None:
    mine = world.get("/v1/events", "maker", params={"limit": 5}).json()  # type: ignore[attr-defined]
    assert len(mine["events"]) == 5
    assert mine["next_cursor"] is not None
    rest = world.get(
        "/v1/events",
        "maker",  # type: ignore[attr-defined]
        params={"limit": 500, "cursor": mine["next_cursor"]},
    ).json()
    assert len(mine["events"]) + len(rest["events"]) == 14
    assert rest["next_cursor"] is None
    assert world.get("/v1/events", "rival").json()["events"] == []  # type: ignore[attr-defined]
    assert len(world.get("/v1/events", "regulator").json()["events"]) == 14  # type: ignore[attr-defined]
    shipping = world.get("/v1/events", "maker", params={"EQ_bizStep": "shipping"}).json()  # type: ignore[attr-defined]
    assert [e["bizStep"] for e in shipping["events"]] == ["shipping", "shipping"]

    # The standard's MATCH_ semantics: a class is matched in the quantity lists, an instance
    # in epcList/childEPCs (MATCH_epc) or as the parent (MATCH_parentID), never across them.
    def steps(**params: str) -> list[str]:
        found = world.get("/v1/events", "maker", params=params)  # type: ignore[attr-defined]
        assert found.status_code == 200, found.text
        return sorted(e["bizStep"] for e in found.json()["events"])

    assert steps(MATCH_anyEPCClass=LOT_URI) == ["inspecting", "storing"]
    assert steps(MATCH_epc=LOT_URI) == []
    item = f"https://id.gs1.org{ITEM}"
    assert steps(MATCH_epc=item) == ["commissioning", "packing", "retail_selling"]
    assert steps(MATCH_parentID=item) == []
    # Values are any-of, CBV words in any of their forms, filters combine with AND.
    assert steps(
        EQ_bizStep="https://ref.gs1.org/cbv/BizStep-shipping|urn:epcglobal:cbv:bizstep:accepting"
    ) == [
        "accepting",
        "accepting",
        "shipping",
        "shipping",
    ]
    assert steps(EQ_disposition="in_transit", eventType="ObjectEvent") == ["shipping", "shipping"]
    assert steps(eventType="AggregationEvent", EQ_action="ADD") == ["packing", "packing"]
    assert steps(eventType="AggregationEvent", EQ_action="DELETE") == []
    # An unknown or unsupported parameter, or a malformed value, is refused by name, never
    # ignored.
    for name, value in (
        ("perpage", "2"),
        ("orderBy", "quantity"),
        ("EQ_quantity", "three"),
        ("HASATTR_readPoint", "urn:x:attr"),
    ):
        refused = world.get("/v1/events", "maker", params={name: value})  # type: ignore[attr-defined]
        assert refused.status_code == 400, name
        body = refused.json()
        assert (body["type"], body["parameter"]) == ("epcisException:QueryParameterException", name)
    # perPage pages, and the Link header names the next page.
    first = world.get("/v1/events", "maker", params={"perPage": "5"})  # type: ignore[attr-defined]
    assert len(first.json()["events"]) == 5
    assert 'rel="next"' in first.headers["link"]
    assert f"nextPageToken={first.json()['next_cursor']}" in first.headers["link"]


# Every route x every role: the exact status (own org's objects where that matters).
MATRIX = [
    ("GET", "/v1/events", {"maker": 200, "rival": 200, "bank": 403, "regulator": 200}),
    (
        "GET",
        f"/v1/lots{LOT}",
        {"maker": 200, "rival": 404, "bank": 200, "other-bank": 404, "regulator": 200},
    ),
    ("GET", "/v1/risk-flags", {"maker": 403, "bank": 200, "regulator": 200}),
    ("GET", f"/v1/trace{LOT}", {"maker": 403, "bank": 403, "regulator": 200}),
    ("GET", "/v1/audit", {"maker": 403, "bank": 403, "regulator": 200}),
    ("GET", "/v1/lines", {"maker": 200, "bank": 200, "other-bank": 200, "regulator": 200}),
    ("POST", "/v1/capture", {"maker": 201, "rival": 201, "bank": 403, "regulator": 403}),
    ("POST", "/v1/devices", {"maker": 201, "rival": 201, "bank": 403, "regulator": 403}),
    # The line belongs to `bank` and `maker`: another bank does not even see it.
    (
        "POST",
        "/v1/lines/1/freeze",
        {"maker": 403, "other-bank": 404, "regulator": 403, "bank": 200},
    ),
    (
        "POST",
        "/v1/lines/1/repayments",
        {"maker": 403, "other-bank": 404, "regulator": 403, "bank": 422},
    ),
    (
        "POST",
        "/v1/applications",
        {"bank": 403, "regulator": 403, "rival": 409, "maker": 200},
    ),
    ("GET", "/v1/policies", {"maker": 403, "regulator": 403, "bank": 200}),
    # The line holds a live pledge: not settled.
    (
        "POST",
        "/v1/lines/1/close",
        {"maker": 403, "other-bank": 404, "regulator": 403, "bank": 409},
    ),
    ("GET", "/v1/programmes/run-offs", {"maker": 403, "bank": 200, "regulator": 200}),
    ("POST", "/v1/programmes/run-off", {"maker": 403, "bank": 403, "regulator": 200}),
    ("GET", "/v1/reports/exposure", {"maker": 403, "bank": 200, "regulator": 200}),
    ("GET", "/v1/reports/concentration", {"rival": 403, "other-bank": 200, "regulator": 200}),
    ("GET", "/v1/reports/aging", {"maker": 403, "bank": 200, "regulator": 200}),
    ("GET", "/v1/reports/runoff", {"maker": 403, "bank": 200, "regulator": 200}),
    ("GET", "/v1/journal", {"maker": 403, "bank": 403, "regulator": 200}),
    # Receivable 1: maker's goods, accepted at the shop maker runs (maker sells and buys).
    ("GET", "/v1/receivables", {"maker": 200, "rival": 200, "bank": 200, "regulator": 200}),
    (
        "POST",
        "/v1/receivables/1/confirm",
        {"bank": 403, "regulator": 403, "rival": 404, "maker": 200},
    ),
    (
        "POST",
        "/v1/receivables/1/finance",
        {"maker": 403, "regulator": 403, "other-bank": 404, "bank": 409},
    ),
    (
        "POST",
        "/v1/receivables/1/payments",
        {"maker": 403, "regulator": 403, "other-bank": 404, "bank": 404},
    ),
    ("PUT", "/v1/policies/*", {"maker": 403, "regulator": 403, "bank": 200}),
    # No loan exists in this world: the loan routes with one are in test_loan_servicing.py.
    ("GET", "/v1/loans/1/statement", {"maker": 404, "regulator": 404, "bank": 404}),
    ("POST", "/v1/loans/1/repayments", {"maker": 403, "regulator": 403, "bank": 404}),
    (
        "DELETE",
        f"/v1/pledges{LOT}",
        {"maker": 403, "regulator": 403, "other-bank": 409, "bank": 200},
    ),
]


def matrix_body(path: str, who: str) -> dict[str, object] | None:
    """A valid body for each write route, so the status shows the access decision."""
    if path == "/v1/capture":
        return make_event()
    if path == "/v1/devices":
        return {"device_id": f"probe-{who}", "unsigned": True}
    if path.endswith(("/repayments", "/payments")):
        return {"amount": "1.00"}
    if path == "/v1/programmes/run-off":
        return {"financier": None, "reason": "matrix"}
    if path.startswith("/v1/policies/"):
        return {"rate": "0.05", "tenor_days": 90}
    if path == "/v1/applications":
        return {"financier": "bank", "lot": LOT_URI, "amount": "1.00"}
    return None


@pytest.mark.parametrize(("method", "path", "expected"), MATRIX, ids=[m[1] for m in MATRIX])
def test_authorization_matrix(world: Api, method: str, path: str, expected: dict[str, int]) -> None:
    for who, status in expected.items():
        headers = {"Authorization": f"Bearer {world.keys[who]}"}
        response = world.client.request(method, path, headers=headers, json=matrix_body(path, who))
        assert response.status_code == status, (who, response.text)
    anonymous = world.client.request(method, path, json=matrix_body(path, "anonymous"))
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    wrong = world.client.request(method, path, headers={"Authorization": "Bearer tf_nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_api_key")


# People and four eyes (issue 15 item 5), with `bank`'s four eyes on: its users mia (maker),
# chris (checker) and vic (viewer), added per test, `bank` itself (its admin: every role), the
# borrower `maker`, another bank, a guarantor and the regulator; anonymous callers get 401 as
# above. The operator has no API key (it works at the CLI: tests/integration/test_cli.py).
# {request} is a request bank/mia made; in each row, the callers ask in the order given.
PEOPLE_MATRIX = [
    (
        "GET",
        "/v1/requests",
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 200,
            "bank/vic": 200,
            "bank/mia": 200,
            "bank/chris": 200,
            "bank": 200,
        },
    ),
    *(
        (
            "POST",
            f"/v1/requests/{{request}}/{decision}",
            {
                "maker": 403,
                "guarantor": 403,
                "regulator": 403,
                "other-bank": 404,  # another org's request: as if there were none
                "bank/vic": 403,
                "bank/mia": 403,  # neither a checker nor another person than the maker
                "bank/chris": 200,
                "bank": 409,  # decided already
            },
        )
        for decision in ("approve", "reject")
    ),
    # The gated operations: a maker's request (202) while four eyes is on.
    (
        "POST",
        "/v1/lines/1/unfreeze",
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 404,
            "bank/vic": 403,
            "bank/chris": 403,
            "bank/mia": 202,
            "bank": 202,
        },
    ),
    (
        "POST",
        "/v1/lines",  # re-limiting bank's line to maker; other-bank opens a line (not gated)
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 201,
            "bank/vic": 403,
            "bank/chris": 403,
            "bank/mia": 202,
            "bank": 202,
        },
    ),
    (
        "DELETE",
        f"/v1/pledges{LOT}",
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 409,
            "bank/vic": 403,
            "bank/chris": 403,
            "bank/mia": 202,
            "bank": 202,
        },
    ),
    (
        "POST",
        "/v1/lines/1/close",  # a live pledge: refused line_not_settled at once
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 404,
            "bank/vic": 403,
            "bank/chris": 403,
            "bank/mia": 409,
            "bank": 409,
        },
    ),
    (
        "POST",
        "/v1/applications/1/review",  # no application: refused at once, no request stored
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 404,
            "bank/vic": 403,
            "bank/chris": 403,
            "bank/mia": 404,
            "bank": 404,
        },
    ),
]


# Issue 15's other routes, for the same callers: a viewer reads and never writes; the
# regulator reads everything and writes only a run-off; a borrower reads its own.
_EVERY_READER = {
    "maker": 200,
    "guarantor": 200,
    "regulator": 200,
    "other-bank": 200,
    "bank/vic": 200,
    "bank/mia": 200,
    "bank/chris": 200,
    "bank": 200,
}
_OVERSIGHT_READER = {**_EVERY_READER, "maker": 403, "guarantor": 403}
PEOPLE_MATRIX += [
    ("GET", "/v1/policies", {**_OVERSIGHT_READER, "regulator": 403}),
    (
        "PUT",
        "/v1/policies/*",
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "bank/vic": 403,
            "other-bank": 200,
            "bank/chris": 200,
            "bank/mia": 200,
            "bank": 200,
        },
    ),
    # No loan in this world: to every reader it is unknown, not forbidden.
    ("GET", "/v1/loans/1/statement", {who: 404 for who in _EVERY_READER}),
    (
        "POST",
        "/v1/loans/1/repayments",
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "bank/vic": 403,
            "other-bank": 404,
            "bank/chris": 404,
            "bank/mia": 404,
            "bank": 404,
        },
    ),
    ("GET", "/v1/programmes/run-offs", _OVERSIGHT_READER),
    (
        "POST",
        "/v1/programmes/run-off",
        {**{who: 403 for who in _EVERY_READER if who != "regulator"}, "regulator": 200},
    ),
    *(("GET", f"/v1/reports/{name}", _OVERSIGHT_READER) for name in ("exposure", "runoff")),
    ("GET", "/v1/journal", {**{who: 403 for who in _EVERY_READER}, "regulator": 200}),
    ("GET", "/v1/receivables", _EVERY_READER),
    ("GET", "/v1/decisions", _EVERY_READER),
    (
        "POST",
        "/v1/receivables/1/confirm",  # maker's, bought at the shop maker runs: maker confirms
        {
            "guarantor": 403,
            "regulator": 403,
            "other-bank": 403,
            "bank/vic": 403,
            "bank/mia": 403,
            "bank/chris": 403,
            "bank": 403,
            "maker": 200,
        },
    ),
    (
        "POST",
        "/v1/receivables/1/finance",  # not confirmed yet
        {
            "maker": 403,
            "guarantor": 403,
            "regulator": 403,
            "bank/vic": 403,
            "other-bank": 404,
            "bank/chris": 409,
            "bank/mia": 409,
            "bank": 409,
        },
    ),
]


def _people_body(path: str) -> dict[str, object] | None:
    if path == "/v1/programmes/run-off":
        return {"financier": "bank", "reason": "matrix"}
    if path.startswith("/v1/policies/"):
        return {"rate": "0.05"}
    if path.endswith("/repayments"):
        return {"amount": "1.00"}
    if path == "/v1/lines":
        return {"borrower": "maker", "limit": "2000.00", "currency": "CNY"}
    if path.endswith("/review"):
        return {"decision": "approve", "reason": "goods are fine"}
    return None


@pytest.mark.parametrize(
    ("method", "path", "expected"), PEOPLE_MATRIX, ids=[f"{m[0]} {m[1]}" for m in PEOPLE_MATRIX]
)
def test_people_and_four_eyes_authorization_matrix(
    world: Api, method: str, path: str, expected: dict[str, int]
) -> None:
    keys = dict(world.keys)
    keys["guarantor"] = registry_store.add_org(world.conn, "guarantor", "guarantor")[1]
    for name, role in (("mia", "maker"), ("chris", "checker"), ("vic", "viewer")):
        keys[f"bank/{name}"] = people_store.add_user(world.conn, "bank", name, [role])[1]
    people_store.set_four_eyes(world.conn, "bank", True)
    made = world.client.post(
        "/v1/lines/1/unfreeze", headers={"Authorization": f"Bearer {keys['bank/mia']}"}
    )
    assert made.status_code == 202, made.text
    route = path.format(request=made.json()["request"])
    for who, status in expected.items():
        headers = {"Authorization": f"Bearer {keys[who]}"}
        response = world.client.request(method, route, headers=headers, json=_people_body(path))
        assert response.status_code == status, (who, response.text)
    anonymous = world.client.request(method, route, json=_people_body(path))
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")


def test_revoked_key_is_refused(world: Api) -> None:
    assert world.get("/v1/events", "maker").status_code == 200  # type: ignore[attr-defined]
    registry_store.revoke_keys(world.conn, "maker")
    refused = world.get("/v1/events", "maker")
    assert refused.json()["code"] == "invalid_api_key"  # type: ignore[attr-defined]


def test_regulator_traces_forward_and_backward(world: Api) -> None:
    forward = world.get(f"/v1/trace{LOT}", "regulator", params={"direction": "forward"}).json()  # type: ignore[attr-defined]
    steps = [s["biz_step"] for s in forward["steps"]]
    assert steps == ["shipping", "accepting", "retail_selling"]
    assert any("PO0" in party for party in forward["steps"][0]["parties"])
    backward = world.get(f"/v1/trace{LOT}", "regulator", params={"direction": "backward"}).json()  # type: ignore[attr-defined]
    assert [s["biz_step"] for s in backward["steps"]] == ["commissioning", "packing"]
    assert world.get("/v1/audit", "regulator").json()["clean"] is True  # type: ignore[attr-defined]


def test_ops_routes(world: Api) -> None:
    assert world.get("/healthz").json() == {"status": "ok"}  # type: ignore[attr-defined]
    ready = world.get("/readyz")
    assert ready.status_code == 200, ready.text  # type: ignore[attr-defined]
    assert ready.json()["checks"] == {"database": "ok", "chain": "ok"}  # type: ignore[attr-defined]
    metrics = world.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text  # type: ignore[attr-defined]
    assert "tracefin_http_requests_total" in metrics
    assert 'tracefin_lag_positions{stage="anchoring"} 0.0' in metrics


def test_errors_are_problems_never_tracebacks(world: Api) -> None:
    missing = world.client.get("/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong_method = world.client.delete("/healthz")
    assert wrong_method.json()["code"] == "method_not_allowed"
    invalid = world.get("/v1/events", "maker", params={"limit": 0})
    assert (invalid.status_code, invalid.json()["code"]) == (400, "query_parameter")  # type: ignore[attr-defined]
    for response in (missing, wrong_method, invalid):
        assert "Traceback" not in response.text  # type: ignore[attr-defined]


def test_nul_anywhere_is_a_400_not_a_crash(world: Api) -> None:
    for response in (
        world.get(f"/01/{GTIN}/21/a%00b"),
        world.get("/v1/events", "maker", params={"EQ_bizLocation": "x\x00"}),
        world.client.post(
            "/v1/products",
            headers={"Authorization": f"Bearer {world.keys['maker']}"},
            json={
                "gtin": "00614141099996",
                "name": "a\x00",
                "category": "c",
                "unit_price": "1.00",
                "currency": "CNY",
            },
        ),
    ):
        assert (response.status_code, response.json()["code"]) == (400, "invalid_text")  # type: ignore[attr-defined]
    allowed = world.client.delete("/healthz")
    assert allowed.headers["allow"] == "GET"


def test_public_routes_are_rate_limited_per_client(fresh_database_url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=fresh_database_url,  # type: ignore[call-arg]
        api_public_rate_per_minute=3,
    )
    with ConnectionPool(
        fresh_database_url, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as pool:
        client = TestClient(build_app(settings, pool), raise_server_exceptions=False)
        statuses = [
            client.get("/v1/qr", params={"url": "https://id.gs1.org/01/1"}).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
        limited = client.get("/v1/qr", params={"url": "https://id.gs1.org/01/1"})
        assert limited.json()["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"
        # Keyed and operational routes are not rate-limited this way.
        assert client.get("/healthz").status_code == 200

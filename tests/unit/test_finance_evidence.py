"""Finance's decisions with evidence (pure): movements of pledged goods, custody in transit, and
which attestations an applied event is judged on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from epcis.authority import (
    Attestation,
    Fact,
    Parties,
    Whereabouts,
    evaluate,
    fact_of,
    whereabouts_after,
)
from finance.tracking import (
    LoggedEvent,
    moves_pledged_goods,
    recorder_attestation,
    registry_fingerprint,
)

GTIN = "00614141000012"
PALLET = "https://id.gs1.org/00/006141410000000017"
WAREHOUSE_GLN = "0614141000012"
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
OTHER_GLN = "0999999000019"
OTHER = f"https://id.gs1.org/414/{OTHER_GLN}"
CARRIER_GLN = "0888888000011"
T0 = datetime(2026, 11, 26, 8, tzinfo=UTC)
PARTIES = Parties(
    prefixes={"0614141": "acme", "0999999": "evil", "0888888": "haul-co"},
    site_operators={WAREHOUSE_GLN: "acme", OTHER_GLN: "evil"},
)


def logged(
    biz_step: str | None,
    location: str | None = WAREHOUSE,
    *,
    event_type: str = "ObjectEvent",
    recorded_by: Attestation | None = None,
    **body: Any,
) -> LoggedEvent:
    return LoggedEvent(
        log_index=1,
        event_hash=bytes(32),
        event_time=T0,
        event_type=event_type,
        action="OBSERVE",
        biz_step=biz_step,
        disposition=None,
        biz_location=location,
        epcs=[PALLET],
        lots=[],
        event=body,
        read_point=location,
        recorded_by=recorded_by,
    )


def attestation(org: str, device: str | None = "dev-1", *, at: int = 0) -> Attestation:
    return Attestation(
        org=org,
        device=device,
        user=None,
        channel="mqtt" if device else "http",
        signed=False,
        received_at=T0 + timedelta(seconds=at),
    )


def fact(event: LoggedEvent) -> Fact:
    return fact_of(event.columns)


@pytest.mark.parametrize(
    ("step", "location", "moves"),
    [
        ("shipping", WAREHOUSE, True),  # leaving, at the pledged site itself
        ("loading", WAREHOUSE, True),
        ("departing", WAREHOUSE, True),
        ("transporting", None, True),  # custody in transit, wherever
        ("receiving", OTHER, True),  # the goods are at another site
        ("accepting", OTHER, True),
        ("retail_selling", OTHER, True),
        ("https://example.com/steps/relocating", OTHER, True),  # a custom step elsewhere
        ("storing", WAREHOUSE, False),  # where they are pledged
        ("receiving", WAREHOUSE, False),
        ("https://example.com/steps/counting", WAREHOUSE, False),
        ("storing", None, False),  # no place named, no movement claimed
        ("inspecting", OTHER, False),  # inspecting and making do not move goods
        ("commissioning", OTHER, False),
    ],
)
def test_any_claim_of_place_or_custody_away_from_the_pledged_site_is_a_movement(
    step: str, location: str | None, moves: bool
) -> None:
    event = logged(step, location)
    assert moves_pledged_goods(event, fact(event), WAREHOUSE, WAREHOUSE_GLN) is moves
    # A claim about a time the goods were not yet (or no longer) at the pledged site moves
    # nothing pledged: the leg that brought them there, arriving late.
    assert not moves_pledged_goods(event, fact(event), WAREHOUSE, OTHER_GLN)
    assert not moves_pledged_goods(event, fact(event), WAREHOUSE, None)


def held_after(custodian: str | None, event: LoggedEvent) -> str | None:
    """Who holds the goods after `event`, as finance's fold asks the pure rule."""
    where = Whereabouts(None, custodian)
    return whereabouts_after(where, fact(event), event.columns, event.event, PARTIES).custodian


def test_a_shipping_hands_custody_to_the_carrier_it_names() -> None:
    named = logged(
        "shipping",
        destinationList=[
            {"type": "possessing_party", "destination": f"https://id.gs1.org/417/{CARRIER_GLN}"}
        ],
    )
    assert held_after(None, named) == "haul-co"
    unnamed = logged("shipping")
    assert held_after("haul-co", unnamed) is None
    # Loading and departing keep the carrier unless they name one; transit claims keep it.
    for step in ("loading", "departing", "transporting"):
        event = logged(step)
        assert held_after("haul-co", event) == "haul-co", step
    # Goods at a site are in no carrier's custody; making and inspecting change nothing.
    for step in ("receiving", "storing", "accepting", "retail_selling"):
        event = logged(step, OTHER)
        assert held_after("haul-co", event) is None, step
    for step in ("inspecting", "commissioning"):
        assert held_after("haul-co", logged(step, OTHER)) == "haul-co", step


def test_the_recorder_is_an_attestation_when_none_is_stored() -> None:
    recorder = recorder_attestation("acme", "dev-1", "tf/acme/dev-1/events", False, T0)
    event = logged("storing", recorded_by=recorder)
    assert event.attestations([]) == [recorder]
    assert evaluate(event.columns, event.attestations([]), PARTIES).counts
    # Stored attestations include the recorder's: it is not counted twice.
    assert event.attestations([attestation("acme")]) == [attestation("acme")]
    # Another party's stored attestation does not hide the recorder's.
    assert event.attestations([attestation("evil")]) == [attestation("evil"), recorder]


def test_a_capture_over_http_names_no_device() -> None:
    recorder = recorder_attestation("acme", "http-capture", "http:/v1/capture", True, T0)
    assert (recorder.channel, recorder.device, recorder.signed) == ("http", None, True)
    # Custody at a site counts only from a device of its operator.
    event = logged("storing", recorded_by=recorder)
    judged = evaluate(event.columns, event.attestations([]), PARTIES)
    assert (judged.counts, judged.reason) == (False, "device_required")


def test_a_transit_claim_counts_only_from_the_custodian() -> None:
    event = logged("transporting", None)
    by_carrier, by_evil = [attestation("haul-co")], [attestation("evil")]
    in_transit = Whereabouts(custodian="haul-co")
    assert evaluate(event.columns, by_carrier, PARTIES, where=in_transit).counts
    judged = evaluate(event.columns, by_evil, PARTIES, where=in_transit)
    assert (judged.counts, judged.reason) == (False, "not_custodian")
    judged = evaluate(event.columns, by_carrier, PARTIES, where=Whereabouts())
    assert (judged.counts, judged.reason) == (False, "no_custodian")


def test_the_columns_the_rules_read_come_from_the_logged_event() -> None:
    event = logged("receiving", OTHER)
    columns = event.columns
    assert (columns.biz_step, columns.biz_location, columns.read_point) == (
        "receiving",
        OTHER,
        OTHER,
    )
    assert columns.epcs == (PALLET,)


def test_the_registry_fingerprint_changes_with_what_the_rules_read() -> None:
    base = registry_fingerprint(PARTIES, {})
    assert registry_fingerprint(Parties(**vars(PARTIES)), {}) == base
    more_sites = Parties(
        prefixes=PARTIES.prefixes,
        site_operators={**PARTIES.site_operators, "0614141000036": "acme"},
    )
    assert registry_fingerprint(more_sites, {}) != base
    assert registry_fingerprint(PARTIES, {"urn:x:step": Fact.SITE_CUSTODY}) != base
    authorised = Parties(
        prefixes=PARTIES.prefixes,
        site_operators=PARTIES.site_operators,
        authorisations=frozenset({("acme", "evil", "manufacture", None)}),
    )
    assert registry_fingerprint(authorised, {}) != base

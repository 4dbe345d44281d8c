"""Evidence authority: who may attest which fact, and what counts (the pure rules)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api.i18n import TEXTS
from epcis.authority import (
    RULES,
    Attestation,
    Fact,
    Parties,
    Reason,
    Whereabouts,
    carrier_named,
    declaration_refusal,
    evaluate,
    fact_of,
    goods_keys,
    reading_counts,
    recorder_and_others,
    rules_table,
    site_of,
    whereabouts_after,
)
from epcis.capture import IndexColumns
from epcis.identifiers import check_digit

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
ACME_PREFIX = "6901234"
EVIL_PREFIX = "6909999"
ACME_GTIN = "0" + ACME_PREFIX + "00001" + check_digit("0" + ACME_PREFIX + "00001")
COLD_STORE = "6905555" + "00001" + check_digit("6905555" + "00001")  # GLN of the warehouse
SHOP = "6907777" + "00001" + check_digit("6907777" + "00001")
CARRIER_PGLN = "6908888" + "00001" + check_digit("6908888" + "00001")
ACME_SITE = ACME_PREFIX + "00002" + check_digit(ACME_PREFIX + "00002")  # acme's own depot

PARTIES = Parties(
    prefixes={
        ACME_PREFIX: "acme",
        EVIL_PREFIX: "evil",
        "6905555": "coldstore",
        "6907777": "shop",
        "6908888": "carrier",
    },
    site_operators={COLD_STORE: "coldstore", SHOP: "shop"},
    device_sites={("coldstore", "probe-1"): frozenset({COLD_STORE})},
    authorisations=frozenset(
        {("acme", "lab", "inspect", None), ("acme", "oem", "manufacture", ACME_GTIN)}
    ),
    roles={"acme": "manufacturer", "lab": "inspector", "oem": "manufacturer", "evil": "retailer"},
)


def columns(
    biz_step: str | None,
    *,
    site: str | None = COLD_STORE,
    epcs: tuple[str, ...] = (f"https://id.gs1.org/01/{ACME_GTIN}/21/1",),
    event_type: str = "ObjectEvent",
) -> IndexColumns:
    location = f"https://id.gs1.org/414/{site}" if site else None
    return IndexColumns(
        event_time=T0,
        event_time_zone_offset="+00:00",
        event_type=event_type,
        action="OBSERVE",
        biz_step=biz_step,
        disposition=None,
        stage=None,
        read_point=None,
        biz_location=location,
        epcs=epcs,
        lots=(),
    )


def by(org: str, device: str | None = "dev-1", *, at: int = 0, signed: bool = True) -> Attestation:
    return Attestation(
        org=org,
        device=device,
        user=None if device else "admin",
        channel="mqtt" if device else "http",
        signed=signed,
        received_at=T0 + timedelta(seconds=at),
    )


@pytest.mark.parametrize(
    ("step", "fact"),
    [
        ("commissioning", Fact.MAKING),
        ("packing", Fact.MAKING),
        ("inspecting", Fact.INSPECTION),
        ("receiving", Fact.SITE_CUSTODY),
        ("shipping", Fact.SITE_CUSTODY),
        ("transporting", Fact.TRANSIT),
        ("accepting", Fact.ACCEPTANCE),
        ("retail_selling", Fact.RETAIL_SALE),
        ("https://example.com/steps/quarantine", Fact.SITE_CUSTODY),  # custom step at a site
    ],
)
def test_the_fact_an_event_states(step: str, fact: Fact) -> None:
    assert fact_of(columns(step)) == fact


def test_a_custom_step_without_a_site_is_the_goods_makers_to_state() -> None:
    assert fact_of(columns("https://example.com/steps/x", site=None)) == Fact.MAKING
    assert fact_of(columns(None, event_type="TransformationEvent")) == Fact.MAKING


def test_operator_extensions_name_the_fact_of_a_custom_step() -> None:
    step = "https://example.com/steps/handover"
    assert fact_of(columns(step), {step: Fact.TRANSIT}) == Fact.TRANSIT


def test_commissioning_counts_only_from_the_prefix_owner_or_its_manufacturer() -> None:
    event = columns("commissioning")
    assert evaluate(event, [by("acme")], PARTIES).counts
    assert evaluate(event, [by("oem")], PARTIES).counts  # authorised for this GTIN
    refused = evaluate(event, [by("evil")], PARTIES)
    assert (refused.counts, refused.reason, refused.status) == (
        False,
        Reason.NOT_GOODS_OWNER,
        "unattested",
    )


def test_a_manufacturer_authorised_for_another_gtin_may_not_commission_this_one() -> None:
    other = "0" + ACME_PREFIX + "00002" + check_digit("0" + ACME_PREFIX + "00002")
    event = columns("commissioning", epcs=(f"https://id.gs1.org/01/{other}/21/1",))
    assert evaluate(event, [by("oem")], PARTIES).reason == Reason.NOT_GOODS_OWNER


def test_goods_of_an_unregistered_prefix_have_no_owner_to_attest() -> None:
    event = columns("commissioning", epcs=("https://id.gs1.org/01/04000000000007/21/1",))
    assert evaluate(event, [by("acme")], PARTIES).reason == Reason.UNKNOWN_GOODS_OWNER


def test_inspection_counts_from_the_owners_devices_or_an_authorised_inspector() -> None:
    event = columns("inspecting")
    assert evaluate(event, [by("acme")], PARTIES).counts
    assert evaluate(event, [by("lab", None)], PARTIES).counts
    assert evaluate(event, [by("acme", None)], PARTIES).reason == Reason.DEVICE_REQUIRED
    assert evaluate(event, [by("evil")], PARTIES).reason == Reason.NOT_OWNER_DEVICE_OR_INSPECTOR


def test_an_inspector_role_without_the_owners_authorisation_does_not_count() -> None:
    parties = replace(PARTIES, roles={**PARTIES.roles, "evil": "inspector"})
    assert not evaluate(columns("inspecting"), [by("evil")], parties).counts


def test_site_custody_counts_from_the_site_operators_devices_only() -> None:
    event = columns("shipping")
    assert evaluate(event, [by("coldstore")], PARTIES).counts
    assert evaluate(event, [by("coldstore", None)], PARTIES).reason == Reason.DEVICE_REQUIRED
    assert evaluate(event, [by("acme")], PARTIES).reason == Reason.NOT_SITE_OPERATOR
    unknown = columns("shipping", site="6900000000005")
    assert evaluate(unknown, [by("coldstore")], PARTIES).reason == Reason.UNKNOWN_SITE
    assert evaluate(columns("shipping", site=None), [by("coldstore")], PARTIES).reason == (
        Reason.NO_SITE_NAMED
    )


def test_transit_counts_from_the_carrier_in_custody() -> None:
    event = columns("transporting", site=None)
    in_transit = Whereabouts(custodian="carrier")
    assert evaluate(event, [by("carrier")], PARTIES, where=in_transit).counts
    assert evaluate(event, [by("evil")], PARTIES, where=in_transit).reason == (Reason.NOT_CUSTODIAN)
    assert evaluate(event, [by("carrier")], PARTIES).reason == Reason.NO_CUSTODIAN


def test_acceptance_and_retail_sale_count_from_the_site_operator() -> None:
    assert evaluate(columns("retail_selling", site=SHOP), [by("shop", None)], PARTIES).counts
    assert not evaluate(columns("retail_selling", site=SHOP), [by("evil")], PARTIES).counts
    assert evaluate(columns("accepting", site=SHOP), [by("shop", None)], PARTIES).counts


def test_a_later_rightful_attestation_counts_after_someone_elses_first_copy() -> None:
    event = columns("shipping")
    evidence = evaluate(event, [by("evil", at=0), by("coldstore", at=30)], PARTIES)
    assert evidence.counts
    assert evidence.by is not None
    assert evidence.by.org == "coldstore"


def test_the_reason_is_the_recorders_when_nobody_may_say_it() -> None:
    event = columns("shipping")
    evidence = evaluate(event, [by("acme", at=5), by("evil", "x", at=1)], PARTIES)
    assert (evidence.counts, evidence.reason) == (False, Reason.NOT_SITE_OPERATOR)
    assert evaluate(event, [], PARTIES).reason == Reason.NO_ATTESTATION


def test_telemetry_describes_a_site_only_from_devices_bound_to_it() -> None:
    assert reading_counts("coldstore", "probe-1", COLD_STORE, PARTIES)
    assert not reading_counts("coldstore", "probe-2", COLD_STORE, PARTIES)
    assert not reading_counts("evil", "probe-1", COLD_STORE, PARTIES)


def test_prefix_ownership_reads_the_company_prefix_of_each_key() -> None:
    assert PARTIES.owner_of(ACME_GTIN) == "acme"  # GTIN-14: after the indicator digit
    sscc = "3" + ACME_PREFIX + "000000001"
    assert PARTIES.owner_of(sscc + check_digit(sscc)) == "acme"  # after the extension digit
    assert PARTIES.owner_of(COLD_STORE) == "coldstore"  # GLN: from the first digit
    assert PARTIES.owner_of("0" + "6901230" + "000001") is None


def test_goods_and_site_of_an_event() -> None:
    event = columns("shipping")
    assert goods_keys(event) == (ACME_GTIN,)
    assert site_of(event) == COLD_STORE
    sscc = "3" + ACME_PREFIX + "000000001"
    sscc += check_digit(sscc)
    pallet = columns("shipping", epcs=(f"https://id.gs1.org/00/{sscc}",))
    assert goods_keys(pallet) == (sscc,)


def test_a_shipment_hands_custody_to_its_possessing_party() -> None:
    shipment = {
        "destinationList": [
            {"type": "owning_party", "destination": f"https://id.gs1.org/417/{SHOP}"},
            {
                "type": "possessing_party",
                "destination": f"https://id.gs1.org/417/{CARRIER_PGLN}",
            },
        ]
    }
    assert carrier_named(shipment, PARTIES) == "carrier"
    assert carrier_named({"destinationList": "junk"}, PARTIES) is None
    assert carrier_named({}, PARTIES) is None


def custodian_after(
    custodian: str | None, fact: Fact, step: str, event: dict[str, object]
) -> str | None:
    """The carrier in custody after a counting `step` at the cold store."""
    where = Whereabouts(None, custodian)
    return whereabouts_after(where, fact, columns(step), event, PARTIES).custodian


def test_custody_passes_to_the_named_carrier_and_ends_at_a_site() -> None:
    named = {
        "destinationList": [
            {"type": "possessing_party", "destination": f"https://id.gs1.org/417/{CARRIER_PGLN}"}
        ]
    }
    at_site = Fact.SITE_CUSTODY
    assert custodian_after(None, at_site, "shipping", named) == "carrier"
    assert custodian_after("carrier", at_site, "shipping", {}) is None  # none named
    assert custodian_after("carrier", at_site, "departing", {}) == "carrier"
    assert custodian_after("carrier", Fact.TRANSIT, "transporting", {}) == "carrier"
    assert custodian_after("carrier", Fact.INSPECTION, "inspecting", {}) == "carrier"
    for fact, step in (
        (Fact.SITE_CUSTODY, "receiving"),
        (Fact.ACCEPTANCE, "accepting"),
        (Fact.RETAIL_SALE, "retail_selling"),
    ):
        assert custodian_after("carrier", fact, step, named) is None, step


def test_goods_are_held_where_the_last_counting_claim_puts_them() -> None:
    stored = whereabouts_after(Whereabouts(), Fact.SITE_CUSTODY, columns("storing"), {}, PARTIES)
    assert stored == Whereabouts(COLD_STORE, None)
    made = whereabouts_after(stored, Fact.MAKING, columns("repackaging", site=SHOP), {}, PARTIES)
    assert made == stored  # making needs no site operator: it moves nothing
    inspected = whereabouts_after(
        stored, Fact.INSPECTION, columns("inspecting", site=SHOP), {}, PARTIES
    )
    assert inspected == stored  # inspecting moves nothing
    for step in ("shipping", "loading", "departing"):
        left = whereabouts_after(stored, Fact.SITE_CUSTODY, columns(step), {}, PARTIES)
        assert left.held_at is None, step
    moving = whereabouts_after(
        Whereabouts(None, "carrier", in_transit=True),
        Fact.TRANSIT,
        columns("transporting", site=None),
        {},
        PARTIES,
    )
    assert moving == Whereabouts(None, "carrier", in_transit=True)
    sold = whereabouts_after(
        moving, Fact.RETAIL_SALE, columns("retail_selling", site=SHOP), {}, PARTIES
    )
    assert sold == Whereabouts(SHOP, None)


SUPERVISED = replace(PARTIES, supervised_sites=frozenset({COLD_STORE}))


@pytest.mark.parametrize(
    ("step", "org", "counts"),
    [
        ("retail_selling", "shop", False),  # the shop never had them
        ("receiving", "shop", False),
        ("accepting", "shop", False),
        ("https://example.com/steps/relocating", "shop", False),
        ("shipping", "shop", False),
        ("retail_selling", "acme", True),  # the goods' owner admits they are elsewhere
        ("receiving", "acme", True),
    ],
)
def test_goods_in_a_supervised_site_are_elsewhere_only_on_the_word_of_those_entitled(
    step: str, org: str, counts: bool
) -> None:
    parties = replace(SUPERVISED, site_operators={**SUPERVISED.site_operators, ACME_SITE: "acme"})
    site = SHOP if org == "shop" else ACME_SITE
    held = Whereabouts(held_at=COLD_STORE)
    judged = evaluate(columns(step, site=site), [by(org)], parties, where=held)
    assert judged.counts is counts
    if not counts:
        assert judged.reason == Reason.HELD_ELSEWHERE
    # The same claim counts from the site's operator where the goods' site is not supervised.
    unsupervised = replace(parties, supervised_sites=frozenset())
    assert evaluate(columns(step, site=site), [by(org)], unsupervised, where=held).counts


def test_goods_in_transit_arrive_where_the_shipment_sent_them() -> None:
    shipment = {
        "destinationList": [
            {"type": "owning_party", "destination": f"https://id.gs1.org/417/{SHOP}"},
            {"type": "possessing_party", "destination": f"https://id.gs1.org/417/{CARRIER_PGLN}"},
        ]
    }
    parties = replace(
        SUPERVISED,
        site_operators={**SUPERVISED.site_operators, ACME_SITE: "evil", CARRIER_PGLN: "carrier"},
    )
    held = Whereabouts(held_at=COLD_STORE)
    shipped = whereabouts_after(held, Fact.SITE_CUSTODY, columns("shipping"), shipment, parties)
    assert shipped == Whereabouts(None, "carrier", True, frozenset({"shop", "carrier"}))
    received = columns("receiving", site=SHOP)
    assert evaluate(received, [by("shop")], parties, where=shipped).counts
    at_hub = columns("receiving", site=CARRIER_PGLN)
    assert evaluate(at_hub, [by("carrier")], parties, where=shipped).counts
    # evil operates a site too, but the goods were not sent there.
    elsewhere = evaluate(
        columns("retail_selling", site=ACME_SITE), [by("evil")], parties, where=shipped
    )
    assert elsewhere.reason == Reason.NOT_CONSIGNEE
    # Shipped to no one named: only the goods' owner (or a carrier in custody) says where.
    unnamed = whereabouts_after(held, Fact.SITE_CUSTODY, columns("shipping"), {}, parties)
    assert unnamed == Whereabouts(None, None, True)
    assert evaluate(received, [by("shop")], parties, where=unnamed).reason == Reason.NOT_CONSIGNEE
    # Loading and departing keep what the shipment said unless they name others.
    departed = whereabouts_after(shipped, Fact.SITE_CUSTODY, columns("departing"), {}, parties)
    assert departed == shipped
    # Arrived: held at the shop, in no carrier's custody, consigned to no one.
    arrived = whereabouts_after(shipped, Fact.SITE_CUSTODY, received, {}, parties)
    assert arrived == Whereabouts(SHOP)


def test_every_reason_is_worded_for_people_in_every_language() -> None:
    for language, texts in TEXTS.items():
        assert set(texts["reasons"]) == {reason.value for reason in Reason}, language


def test_the_supervised_sites_operator_still_speaks_for_goods_it_holds() -> None:
    held = Whereabouts(held_at=COLD_STORE)
    assert evaluate(columns("shipping"), [by("coldstore")], SUPERVISED, where=held).counts
    assert evaluate(columns("storing"), [by("coldstore")], SUPERVISED, where=held).counts


def test_the_rules_table_lists_every_rule_and_the_operators_extensions() -> None:
    table = rules_table([("https://example.com/steps/handover", Fact.TRANSIT)])
    assert [row["fact"] for row in table[: len(RULES)]] == [rule.fact.value for rule in RULES]
    assert table[-1] == {
        "fact": "transit",
        "biz_steps": "https://example.com/steps/handover",
        "counts_when_attested_by": RULES[3].authority.value,
        "source": "operator",
    }


def test_the_recorder_is_the_earliest_and_the_others_are_listed_once() -> None:
    recorder, others = recorder_and_others(
        [by("evil", at=5), by("coldstore", at=1), by("evil", at=9), by("coldstore", at=3)]
    )
    assert recorder == by("coldstore", at=1)
    assert others == [by("evil", at=5)]
    assert recorder_and_others([]) == (None, [])
    unsigned_copy = by("coldstore", at=7, signed=False)
    assert recorder_and_others([by("coldstore"), unsigned_copy])[1] == [unsigned_copy]


# --- the authorization matrix: each fact of the rules table x each kind of attester ----------

# The event stating each fact (at the cold store, or the shop for a buyer's or a sale's site),
# and where the goods are when it is judged (in transit with the carrier, for a transit claim).
FACT_EVENTS: dict[Fact, tuple[IndexColumns, Whereabouts]] = {
    Fact.MAKING: (columns("commissioning"), Whereabouts()),
    Fact.INSPECTION: (columns("inspecting"), Whereabouts()),
    Fact.SITE_CUSTODY: (columns("storing"), Whereabouts()),
    Fact.TRANSIT: (
        columns("transporting", site=None),
        Whereabouts(custodian="carrier", in_transit=True),
    ),
    Fact.ACCEPTANCE: (columns("accepting", site=SHOP), Whereabouts()),
    Fact.RETAIL_SALE: (columns("retail_selling", site=SHOP), Whereabouts()),
}
SITE_OPERATOR = {Fact.ACCEPTANCE: "shop", Fact.RETAIL_SALE: "shop"}  # else the cold store's
# Kinds of attester: (org, device) — None as device is an API user over HTTP.
ATTESTERS: dict[str, tuple[str, str | None]] = {
    "goods owner's device": ("acme", "dev-1"),
    "goods owner over HTTP": ("acme", None),
    "manufacturer the owner authorised": ("oem", "dev-1"),
    "inspector the owner authorised": ("lab", "dev-1"),
    "site operator's device": ("<operator>", "dev-1"),
    "site operator over HTTP": ("<operator>", None),
    "carrier in custody": ("carrier", "dev-1"),
    "stranger's device": ("evil", "dev-1"),
    "stranger over HTTP": ("evil", None),
}
# Who makes each fact count (the rules table of docs/design.md); every other pair must not.
COUNTS = {
    Fact.MAKING: {
        "goods owner's device",
        "goods owner over HTTP",
        "manufacturer the owner authorised",
    },
    Fact.INSPECTION: {"goods owner's device", "inspector the owner authorised"},
    Fact.SITE_CUSTODY: {"site operator's device"},
    Fact.TRANSIT: {"carrier in custody"},
    Fact.ACCEPTANCE: {"site operator's device", "site operator over HTTP"},
    Fact.RETAIL_SALE: {"site operator's device", "site operator over HTTP"},
}


@pytest.mark.parametrize("kind", list(ATTESTERS))
@pytest.mark.parametrize("fact", list(FACT_EVENTS))
def test_the_authorization_matrix(fact: Fact, kind: str) -> None:
    event, where = FACT_EVENTS[fact]
    assert fact_of(event) is fact
    org, device = ATTESTERS[kind]
    if org == "<operator>":
        org = SITE_OPERATOR.get(fact, "coldstore")
    judged = evaluate(event, [by(org, device)], PARTIES, where=where)
    assert judged.counts is (kind in COUNTS[fact]), (fact, kind, judged.reason)
    assert (judged.reason is None) is judged.counts


@pytest.mark.parametrize(
    ("org", "device", "counts"),
    [
        ("coldstore", "probe-1", True),  # bound to the cold store
        ("coldstore", "probe-2", False),  # the operator's, not bound there
        ("acme", "dev-1", False),  # the goods owner's
        ("evil", "probe-1", False),  # a stranger's device of the same name
    ],
)
def test_the_authorization_matrix_of_telemetry(org: str, device: str, counts: bool) -> None:
    assert reading_counts(org, device, COLD_STORE, PARTIES) is counts


# --- who may declare an event erroneous (EPCIS errorDeclaration) ------------------------------


def test_an_inspection_is_declared_erroneous_only_by_whoever_made_it_count() -> None:
    inspected = columns("inspecting")
    by_lab = [by("lab", None)]  # the inspector acme authorised, over its API
    assert declaration_refusal(inspected, "lab", by_lab, PARTIES) is None
    # The goods' owner may attest inspections, but not undo its inspector's (a failed one).
    refused = declaration_refusal(inspected, "acme", by_lab, PARTIES)
    assert refused is not None
    assert "lab" in refused
    assert declaration_refusal(inspected, "evil", by_lab, PARTIES) is not None
    # A claim by a stranger that counts for nothing: the stranger cannot void it either, but
    # the party entitled to attest it can (before anyone entitled did).
    by_evil = [by("evil")]
    assert declaration_refusal(inspected, "evil", by_evil, PARTIES) is not None
    assert declaration_refusal(inspected, "acme", by_evil, PARTIES) is None
    assert declaration_refusal(inspected, "acme", [], PARTIES) is None  # not stored yet


def test_site_custody_is_declared_by_the_site_operator_through_any_channel() -> None:
    stored = columns("storing")
    assert declaration_refusal(stored, "coldstore", [by("coldstore", "probe-1")], PARTIES) is None
    assert declaration_refusal(stored, "coldstore", [], PARTIES) is None  # device not needed
    assert declaration_refusal(stored, "acme", [by("coldstore", "probe-1")], PARTIES) is not None
    assert declaration_refusal(stored, "shop", [], PARTIES) is not None


def test_transit_is_declared_only_by_the_org_that_recorded_it() -> None:
    # The carrier in custody needs the goods' history, which the declaration is not judged on.
    moved = columns("transporting", site=None)
    recorded = [by("carrier"), by("evil", at=5)]  # a stranger's copy later
    assert declaration_refusal(moved, "carrier", recorded, PARTIES) is None
    assert declaration_refusal(moved, "evil", recorded, PARTIES) is not None
    assert declaration_refusal(moved, "acme", recorded, PARTIES) is not None


def test_an_event_that_names_nothing_to_judge_is_declared_by_its_recorder() -> None:
    # A returnable asset's disassembly names no GTIN: no rule makes it anyone's evidence, so
    # whoever recorded it may take it back (and records it declared, if it is not stored yet).
    asset = columns("disassembling", site=None, epcs=("https://id.gs1.org/8003/06901234000019",))
    assert declaration_refusal(asset, "evil", [], PARTIES) is None  # declared from the start
    recorded = [by("acme"), by("evil", at=5)]
    assert declaration_refusal(asset, "acme", recorded, PARTIES) is None
    refused = declaration_refusal(asset, "evil", recorded, PARTIES)
    assert refused is not None
    assert "acme" in refused
    # Goods whose owner no one registered are not "nothing to judge": someone may register
    # the prefix later, so a stranger may not void the event in advance.
    unknown = columns("commissioning", epcs=("https://id.gs1.org/01/06955555000011/21/1",))
    assert declaration_refusal(unknown, "evil", [], PARTIES) is not None


def test_a_declared_event_counts_for_nothing() -> None:
    inspected = columns("inspecting")
    judged = evaluate(inspected, [by("lab", None)], PARTIES, declared=True)
    assert (judged.counts, judged.reason) == (False, Reason.ERROR_DECLARED)
    assert evaluate(inspected, [by("lab", None)], PARTIES).counts

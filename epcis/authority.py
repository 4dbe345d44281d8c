"""Evidence authority: whose attestation makes an event count as evidence; the rules as data.

"Anchored" proves a record was not changed after it was written; this module answers the other
half: was the party that wrote it entitled to say it? An event is stored whoever sends it (the
repository keeps everything), but it counts as evidence only when one of its attestations
(a party that submitted it) meets the rule for the fact it states. Pure: the registry facts the
rules read come in as a `Parties` snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from epcis.capture import IndexColumns


class Fact(StrEnum):
    """What kind of claim an event makes about goods."""

    MAKING = "making"  # commissioning, packing, transforming goods
    INSPECTION = "inspection"  # inspection results
    SITE_CUSTODY = "site_custody"  # receiving, storing, holding, picking, loading, shipping, …
    TRANSIT = "transit"  # transport readings and custody in transit
    ACCEPTANCE = "acceptance"  # accepting at a buyer's site
    RETAIL_SALE = "retail_sale"  # retail selling
    TELEMETRY = "telemetry"  # readings of a site's sensors


class Authority(StrEnum):
    """Who may state a fact; the value is the rule in words (`tracefin rules show`)."""

    GOODS_OWNER_OR_MANUFACTURER = (
        "the owner of the GTIN's GS1 Company Prefix, or a manufacturer it authorised"
    )
    OWNER_DEVICES_OR_INSPECTOR = (
        "the goods owner's own devices, or an org with role inspector the owner authorised"
    )
    SITE_OPERATOR_DEVICES = "devices of the org that operates the site"
    CARRIER_IN_CUSTODY = "the carrier holding custody (handed over by the shipping party)"
    SITE_OPERATOR = "the org that operates the site (the buyer, the shop)"
    BOUND_DEVICES = "devices bound to the site"


@dataclass(frozen=True)
class Rule:
    fact: Fact
    biz_steps: frozenset[str]  # bare CBV words (or full URIs of custom steps)
    authority: Authority


def _steps(words: str) -> frozenset[str]:
    return frozenset(words.split())


# The rules table of docs/design.md ("Evidence authority"). A bizStep names its fact; an event
# with a bizStep in no rule (a custom URI, or none) states site custody when it names a site,
# and otherwise a fact about the goods that only their maker may state.
RULES: tuple[Rule, ...] = (
    Rule(
        Fact.MAKING,
        _steps(
            "commissioning packing unpacking assembling disassembling repackaging encoding"
            " creating_class_instance decommissioning destroying"
        ),
        Authority.GOODS_OWNER_OR_MANUFACTURER,
    ),
    Rule(Fact.INSPECTION, _steps("inspecting sampling"), Authority.OWNER_DEVICES_OR_INSPECTOR),
    Rule(
        Fact.SITE_CUSTODY,
        _steps(
            "receiving storing stocking holding picking loading unloading shipping departing"
            " arriving staging_outbound entering_exiting cycle_counting stock_taking collecting"
            " consigning removing reserving void_shipping dispensing"
        ),
        Authority.SITE_OPERATOR_DEVICES,
    ),
    Rule(Fact.TRANSIT, _steps("transporting"), Authority.CARRIER_IN_CUSTODY),
    Rule(Fact.ACCEPTANCE, _steps("accepting"), Authority.SITE_OPERATOR),
    Rule(Fact.RETAIL_SALE, _steps("retail_selling"), Authority.SITE_OPERATOR),
    Rule(Fact.TELEMETRY, frozenset(), Authority.BOUND_DEVICES),
)
_RULE_OF_FACT = {rule.fact: rule for rule in RULES}


class Reason(StrEnum):
    """Why an event does not count (machine-readable, in `evidence.reason`)."""

    NOT_GOODS_OWNER = "not_goods_owner"  # nor a manufacturer the owner authorised
    UNKNOWN_GOODS_OWNER = "unknown_goods_owner"  # no org holds the GS1 prefix of the goods
    NO_GOODS_NAMED = "no_goods_named"
    NOT_OWNER_DEVICE_OR_INSPECTOR = "not_owner_device_or_inspector"
    NO_SITE_NAMED = "no_site_named"
    UNKNOWN_SITE = "unknown_site"  # no org operates the site
    NOT_SITE_OPERATOR = "not_site_operator"
    DEVICE_REQUIRED = "device_required"  # the rule asks for a device, it came over HTTP
    NO_CUSTODIAN = "no_custodian"  # no attested shipment handed the goods to a carrier
    NOT_CUSTODIAN = "not_custodian"
    # The goods are at a supervised site whose operator has not let them go: another site's
    # claim to hold them (or to have sold or shipped them) is not evidence.
    HELD_ELSEWHERE = "held_elsewhere"
    # The goods are in transit to someone else: only a party the shipment named as destination,
    # the carrier holding them, or their owner may say where they arrived.
    NOT_CONSIGNEE = "not_consignee"
    NO_ATTESTATION = "no_attestation"
    # Declared erroneous (an EPCIS errorDeclaration) by a party entitled to: void evidence.
    ERROR_DECLARED = "error_declared"


@dataclass(frozen=True)
class Attestation:
    """One party's submission of an event: who, through what, signed or not, when."""

    org: str  # org slug
    device: str | None  # the device id (MQTT); None over HTTP
    user: str | None  # the API user (HTTP); None over MQTT
    channel: Literal["mqtt", "http"]
    signed: bool
    received_at: datetime


@dataclass(frozen=True)
class Parties:
    """The registry facts the rules read (orgs by slug)."""

    prefixes: Mapping[str, str] = field(default_factory=dict)  # GS1 Company Prefix -> org
    site_operators: Mapping[str, str] = field(default_factory=dict)  # GLN (13 digits) -> org
    device_sites: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # (owner, agent, kind, GTIN or None for all the owner's GTINs); kind: manufacture | inspect
    authorisations: frozenset[tuple[str, str, str, str | None]] = frozenset()
    roles: Mapping[str, str] = field(default_factory=dict)
    supervised_sites: frozenset[str] = frozenset()  # GLNs of supervised sites

    def owner_of(self, key: str) -> str | None:
        """The org holding the GS1 Company Prefix of a key (GTIN-14, SSCC-18, GLN or PGLN)."""
        body = key[1:] if len(key) in (14, 18) else key  # indicator / extension digit first
        for length in range(min(12, len(body)), 3, -1):
            owner = self.prefixes.get(body[:length])
            if owner is not None:
                return owner
        return None

    def authorised(self, owner: str, agent: str, kind: str, gtin: str) -> bool:
        return (owner, agent, kind, gtin) in self.authorisations or (
            owner,
            agent,
            kind,
            None,
        ) in self.authorisations


@dataclass(frozen=True)
class Evidence:
    """Whether an event counts as evidence, by whose attestation, or why not."""

    counts: bool
    fact: Fact
    reason: Reason | None = None
    by: Attestation | None = None

    @property
    def status(self) -> Literal["counts", "unattested"]:
        return "counts" if self.counts else "unattested"


_GTIN_IN = re.compile(r"^https://id\.gs1\.org/01/(\d{14})(?:/|$)")
_SSCC_IN = re.compile(r"^https://id\.gs1\.org/00/(\d{18})$")
_GLN_IN = re.compile(r"^https://id\.gs1\.org/(?:414|417)/(\d{13})(?:/|$)")


def site_of(columns: IndexColumns) -> str | None:
    """The GLN of the site an event happened at: its bizLocation, else its readPoint."""
    for uri in (columns.biz_location, columns.read_point):
        if uri:
            match = _GLN_IN.match(uri)
            if match:
                return match.group(1)
    return None


def goods_keys(columns: IndexColumns) -> tuple[str, ...]:
    """The GTINs an event names (items and lots), or else its SSCCs (logistic units)."""
    gtins = sorted(
        {m.group(1) for uri in (*columns.epcs, *columns.lots) if (m := _GTIN_IN.match(uri))}
    )
    if gtins:
        return tuple(gtins)
    return tuple(sorted({m.group(1) for uri in columns.epcs if (m := _SSCC_IN.match(uri))}))


def fact_of(columns: IndexColumns, extensions: Mapping[str, Fact] | None = None) -> Fact:
    """The fact an event states, by its bizStep (the operator's extensions first)."""
    step = columns.biz_step
    if step is not None:
        if extensions and step in extensions:
            return extensions[step]
        for rule in RULES:
            if step in rule.biz_steps:
                return rule.fact
    if columns.event_type == "TransformationEvent":
        return Fact.MAKING
    return Fact.SITE_CUSTODY if site_of(columns) is not None else Fact.MAKING


def carrier_named(event: Mapping[str, Any], parties: Parties) -> str | None:
    """The org a shipping event hands custody to: its `possessing_party` destination."""
    for entry in event.get("destinationList") or ():
        if not isinstance(entry, Mapping):
            continue
        kind = str(entry.get("type", ""))
        if not kind.endswith("possessing_party"):
            continue
        match = _GLN_IN.match(str(entry.get("destination", "")))
        if match:
            return parties.owner_of(match.group(1))
    return None


# bizSteps that take goods off a site, into a carrier's hands.
MOVEMENT_STEPS = frozenset({"loading", "shipping", "departing"})
# Facts that say where the goods are or who holds them.
PLACE_FACTS = frozenset({Fact.SITE_CUSTODY, Fact.TRANSIT, Fact.ACCEPTANCE, Fact.RETAIL_SALE})


@dataclass(frozen=True)
class Whereabouts:
    """Where goods are as the counting evidence so far says (`whereabouts_after` moves it on;
    `evaluate` judges claims against it).

    `held_at`: the GLN of the site holding them (None in transit, or before any site is known).
    `in_transit`: a counting movement took them off a site and no site has them yet.
    `custodian`: the carrier holding them in transit (an org slug). `consignees`: the orgs the
    shipment named as destination (owning or possessing party, or operating the destination
    location): who may say the goods arrived.
    """

    held_at: str | None = None
    custodian: str | None = None
    in_transit: bool = False
    consignees: frozenset[str] = frozenset()


def consignees_named(event: Mapping[str, Any], parties: Parties) -> frozenset[str]:
    """The orgs a movement names in its destinationList: a party's GS1 prefix holder, or the
    operator of a destination location (else its prefix holder)."""
    named: set[str] = set()
    for entry in event.get("destinationList") or ():
        if not isinstance(entry, Mapping):
            continue
        match = _GLN_IN.match(str(entry.get("destination", "")))
        if not match:
            continue
        gln = match.group(1)
        if str(entry.get("type", "")).endswith("location"):
            org = parties.site_operators.get(gln) or parties.owner_of(gln)
        else:
            org = parties.owner_of(gln)
        if org is not None:
            named.add(org)
    return frozenset(named)


def whereabouts_after(
    where: Whereabouts,
    fact: Fact,
    columns: IndexColumns,
    event: Mapping[str, Any],
    parties: Parties,
) -> Whereabouts:
    """Where the goods are after a *counting* event.

    A shipping hands custody to the carrier it names as possessing party (none named: no one
    may speak for the goods in transit) and consigns them to the destinations it names;
    loading and departing keep carrier and consignees unless they name others; transit claims
    keep them. Leaving (loading, shipping, departing, transit) puts the goods at no site; any
    other counting claim of place at a site (received, stored, accepted, sold) puts them at
    that site, in no carrier's custody. Making and inspecting change nothing: neither needs the
    site's operator, so neither may move goods off a site (a repackaging elsewhere by an
    authorised manufacturer does not take pledged goods out of their warehouse on paper).
    """
    step = columns.biz_step
    if fact is Fact.TRANSIT:
        return replace(where, held_at=None, in_transit=True)
    if step in MOVEMENT_STEPS and fact in PLACE_FACTS:
        carrier, consignees = carrier_named(event, parties), consignees_named(event, parties)
        if step != "shipping":  # loading, departing: what the shipment said holds
            carrier, consignees = carrier or where.custodian, consignees or where.consignees
        return Whereabouts(None, carrier, True, consignees)
    if fact not in PLACE_FACTS:
        return where
    site = site_of(columns)
    if site is None:
        return where
    return Whereabouts(site)


def _owns_goods(org: str, columns: IndexColumns, parties: Parties) -> bool:
    keys = goods_keys(columns)
    return bool(keys) and all(parties.owner_of(key) == org for key in keys)


def _check(
    fact: Fact,
    columns: IndexColumns,
    attestation: Attestation,
    parties: Parties,
    where: Whereabouts,
) -> Reason | None:
    """None when `attestation` meets the rule of `fact`, else why not."""
    org = attestation.org
    if fact is Fact.MAKING or fact is Fact.INSPECTION:
        keys = goods_keys(columns)
        if not keys:
            return Reason.NO_GOODS_NAMED
        for key in keys:
            owner = parties.owner_of(key)
            if owner is None:
                return Reason.UNKNOWN_GOODS_OWNER
            if fact is Fact.MAKING:
                if org != owner and not parties.authorised(owner, org, "manufacture", key):
                    return Reason.NOT_GOODS_OWNER
            elif org == owner:
                if attestation.device is None:
                    return Reason.DEVICE_REQUIRED
            elif not (
                parties.roles.get(org) == "inspector"
                and parties.authorised(owner, org, "inspect", key)
            ):
                return Reason.NOT_OWNER_DEVICE_OR_INSPECTOR
        return None
    if fact is Fact.TRANSIT:
        if where.custodian is None:
            return Reason.NO_CUSTODIAN
        return None if org == where.custodian else Reason.NOT_CUSTODIAN
    site = site_of(columns)
    if site is None:
        return Reason.NO_SITE_NAMED
    operator = parties.site_operators.get(site)
    if operator is None:
        return Reason.UNKNOWN_SITE
    if org != operator:
        return Reason.NOT_SITE_OPERATOR
    if fact is Fact.SITE_CUSTODY and attestation.device is None:
        return Reason.DEVICE_REQUIRED
    if fact is Fact.TELEMETRY and site not in parties.device_sites.get(
        (org, attestation.device or ""), frozenset()
    ):
        return Reason.NOT_SITE_OPERATOR
    return _may_place(org, site, columns, where, parties)


def _may_place(
    org: str, site: str, columns: IndexColumns, where: Whereabouts, parties: Parties
) -> Reason | None:
    """None when the operator `org` of `site` may say the goods are (or were handled) there,
    given where they are: goods held in a supervised site leave it on its operator's word; goods
    in transit arrive where the shipment sent them, or with the carrier holding them. Their
    owner's own admission always counts; anyone else's site proves nothing."""
    if _owns_goods(org, columns, parties):
        return None
    held = where.held_at
    if held is not None:
        if held == site or held not in parties.supervised_sites:
            return None
        return None if org == parties.site_operators.get(held) else Reason.HELD_ELSEWHERE
    if where.in_transit and org != where.custodian and org not in where.consignees:
        return Reason.NOT_CONSIGNEE
    return None


def evaluate(
    columns: IndexColumns,
    attestations: Sequence[Attestation],
    parties: Parties,
    *,
    where: Whereabouts = Whereabouts(),
    extensions: Mapping[str, Fact] | None = None,
    declared: bool = False,
) -> Evidence:
    """Whether an event counts: the earliest attestation that meets its fact's rule.

    `where` is where the goods are (the site holding them, the carrier in custody in transit)
    as the caller's history of counting events says (`whereabouts_after`). When no attestation
    meets the rule, the reason given is the first attestation's (the party that recorded it).
    An event `declared` erroneous counts for nothing, whoever attested it (`error_declared`):
    only a party `declaration_refusal` lets through can have declared it.
    """
    fact = fact_of(columns, extensions)
    if declared:
        return Evidence(False, fact, reason=Reason.ERROR_DECLARED)
    first_reason: Reason | None = None
    for attestation in sorted(attestations, key=lambda a: a.received_at):
        reason = _check(fact, columns, attestation, parties, where)
        if reason is None:
            return Evidence(True, fact, by=attestation)
        first_reason = first_reason or reason
    return Evidence(False, fact, reason=first_reason or Reason.NO_ATTESTATION)


# Who declares: the org, through a device or an API user alike. A declaration is an org's act
# about its own word, so the rules' "devices only" for site custody does not apply to it.
_DECLARER_CHANNEL: Literal["mqtt"] = "mqtt"


def declaration_refusal(
    columns: IndexColumns,
    declarer: str,
    attestations: Sequence[Attestation],
    parties: Parties,
    *,
    extensions: Mapping[str, Fact] | None = None,
) -> str | None:
    """None when the org `declarer` may declare the event erroneous, else why not (text).

    When some stored attestation of the event meets its rule, only an org of such an
    attestation may declare it (the inspector that inspected, not the goods' owner whose goods
    failed). When none does (not stored yet, or only claims), an org the rule entitles may.
    The rules are read without the goods' history: site custody, acceptance and sale by the
    site's operator; transit, whose rule needs the carrier in custody, only by the org that
    recorded the event (its earliest attestation: the carrier records its own transport).
    """
    fact = fact_of(columns, extensions)
    blank = Whereabouts()
    counting = {
        attestation.org
        for attestation in attestations
        if _check(fact, columns, attestation, parties, blank) is None
    }
    if counting:
        if declarer in counting:
            return None
        return f"only {', '.join(sorted(counting))}, whose attestation makes it count, may"
    if fact is Fact.TRANSIT:
        recorder, _ = recorder_and_others(attestations)
        if recorder is not None and recorder.org == declarer:
            return None
        return "a transit event may be declared erroneous only by the org that recorded it"
    as_declarer = Attestation(declarer, "(declaration)", None, _DECLARER_CHANNEL, True, _EPOCH)
    reason = _check(fact, columns, as_declarer, parties, blank)
    if reason is None:
        return None
    if reason in _NOTHING_TO_JUDGE:
        # The event names no goods or no site the rules could judge, so it is no one's
        # evidence, whoever says it, and never will be: its recorder may take it back (for an
        # event not stored yet, the declarer records it, declared from the start).
        recorder, _ = recorder_and_others(attestations)
        if recorder is None or recorder.org == declarer:
            return None
        return f"only {recorder.org}, which recorded it, may"
    return f"{declarer} may not attest this {fact.value} event ({reason.value})"


# Reasons that no party could ever overcome: the event itself names nothing to judge.
_NOTHING_TO_JUDGE = frozenset({Reason.NO_GOODS_NAMED, Reason.NO_SITE_NAMED})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def recorder_and_others(
    attestations: Iterable[Attestation],
) -> tuple[Attestation | None, list[Attestation]]:
    """Who recorded an event (its earliest attestation) and everyone else who submitted it,
    once each by (org, device, signed): what pages and the lot status show as its origin."""
    ordered = sorted(attestations, key=lambda attestation: attestation.received_at)
    if not ordered:
        return None, []
    seen = {(ordered[0].org, ordered[0].device, ordered[0].signed)}
    others = []
    for attestation in ordered[1:]:
        key = (attestation.org, attestation.device, attestation.signed)
        if key not in seen:
            seen.add(key)
            others.append(attestation)
    return ordered[0], others


def reading_counts(org: str, device: str, site: str, parties: Parties) -> bool:
    """A telemetry reading describes a site only when its device is bound to that site."""
    return site in parties.device_sites.get((org, device), frozenset())


def rules_table(extensions: Iterable[tuple[str, Fact]] = ()) -> list[dict[str, str]]:
    """The rules as rows (fact, bizSteps, who may attest): what `tracefin rules show` prints."""
    rows = [
        {
            "fact": rule.fact.value,
            "biz_steps": " ".join(sorted(rule.biz_steps)) or "(telemetry)",
            "counts_when_attested_by": rule.authority.value,
            "source": "built-in",
        }
        for rule in RULES
    ]
    rows += [
        {
            "fact": fact.value,
            "biz_steps": step,
            "counts_when_attested_by": _RULE_OF_FACT[fact].authority.value,
            "source": "operator",
        }
        for step, fact in extensions
    ]
    return rows

"""How events move lots: which lots an event touches and what it changes. Pure, no I/O."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any

from epcis.authority import (
    MOVEMENT_STEPS,
    PLACE_FACTS,
    Attestation,
    Fact,
    Parties,
    Whereabouts,
    site_of,
)
from epcis.capture import IndexColumns
from epcis.identifiers import parse_sgtin
from epcis.lots import commissioned_lot, ilmd_value

# Custody follows the business step (CBV 2.0 bare words, as the event store keeps them).
_CUSTODY = {
    "commissioning": "production",
    "packing": "production",
    "inspecting": None,
    "receiving": "warehouse",
    "storing": "warehouse",
    "stocking": "warehouse",
    "holding": "warehouse",
    "loading": "in_transit",
    "shipping": "in_transit",
    "departing": "in_transit",
    "transporting": "in_transit",
    "arriving": "in_transit",
    "unloading": "in_transit",
    "accepting": "delivered",
    "retail_selling": "sold",
}
_SITE = re.compile(r"^https://id\.gs1\.org/41[47]/(\d{13})(?:/|$)")
DELIVERY_STEPS = frozenset({"accepting", "receiving"})
# CBV dispositions of goods in good standing: the recaller saying one of them withdraws its recall.
GOOD_STANDING = frozenset(
    {"active", "conformant", "sellable_accessible", "sellable_not_accessible"}
)
FAILED_INSPECTION = frozenset({"non_conformant", "damaged"})


@dataclass(frozen=True)
class LoggedEvent:
    """One position of the event log, with the columns the finance worker needs."""

    log_index: int
    event_hash: bytes
    event_time: datetime
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    biz_location: str | None
    epcs: Sequence[str]
    lots: Sequence[str]
    event: Mapping[str, Any]
    read_point: str | None = None
    # Who stored the event (its first capture): an attestation even where a path stored the
    # event without recording attestations (tests, benches, rows older than attestations).
    recorded_by: Attestation | None = None

    @cached_property
    def commissions(self) -> str | None:
        """The lot this event commissions items of, if any (asked once per lot it touches)."""
        return commissioned_lot(self.biz_step, self.action, self.epcs, self.event)

    @cached_property
    def columns(self) -> IndexColumns:
        """The index columns the authority rules read (`epcis.authority.evaluate`)."""
        return IndexColumns(
            event_time=self.event_time,
            event_time_zone_offset="",
            event_type=self.event_type,
            action=self.action,
            biz_step=self.biz_step,
            disposition=self.disposition,
            stage=None,
            read_point=self.read_point,
            biz_location=self.biz_location,
            epcs=tuple(self.epcs),
            lots=tuple(self.lots),
        )

    def attestations(self, stored: Sequence[Attestation]) -> list[Attestation]:
        """The event's attestations: those stored, and its recorder's if they lack it."""
        out = list(stored)
        mine = self.recorded_by
        if mine is not None and not any(_same_party(a, mine) for a in out):
            out.append(mine)
        return out


def _same_party(one: Attestation, other: Attestation) -> bool:
    return (one.org, one.device, one.channel, one.signed) == (
        other.org,
        other.device,
        other.channel,
        other.signed,
    )


@dataclass
class LotChange:
    """What one event does to one lot."""

    lot_uri: str
    quantity_delta: int = 0
    location: str | None = None
    custody: str | None = None
    best_before: date | None = None
    inspection: str | None = None
    recalled: bool = False
    moved: bool = False
    sold: int = 0
    purchase_order: str | None = None


@dataclass(frozen=True)
class Attribution:
    """Which lots one event touches, given the memberships known when it is attributed."""

    lots: frozenset[str]
    joined: tuple[tuple[str, str], ...]  # (epc, lot) memberships the event creates
    unknown: tuple[str, ...]  # EPCs of no known lot: a later event may make them known


def attribute(event: LoggedEvent, members: Mapping[str, str], may_claim: bool) -> Attribution:
    """The lots `event` touches and the memberships it creates; `members` maps EPCs to lots.

    Commissioning makes its items members of the lot it names; packing makes the pallet a
    member of its items' lot; both only when `may_claim` (the event counts as evidence: who
    may say what goods are, `epcis.authority`). A claim that does not count still touches the
    lot it names (kept in its evidence, marked) but makes nothing a member: another party's
    items are not slipped into a lot, nor its serials squatted. Events arrive in any order, so
    an EPC unknown now may become known later (its commissioning or packing arrives late, or
    counts later): `unknown` lists those to look at again.
    """
    lots = set(event.lots)
    joined: dict[str, str] = {}
    commissioned = event.commissions
    if commissioned is not None:
        lots.add(commissioned)
        if may_claim:
            joined.update((epc, commissioned) for epc in event.epcs if epc not in members)
    known = {epc: members[epc] for epc in event.epcs if epc in members}
    lots.update(known.values())
    if claims_members(event) and may_claim:
        parent = event.event.get("parentID")
        child_lots = sorted({lot for epc, lot in known.items() if epc != parent})
        if isinstance(parent, str) and child_lots and parent not in members:
            joined[parent] = child_lots[0]
    unknown = tuple(epc for epc in event.epcs if epc not in members and epc not in joined)
    return Attribution(frozenset(lots), tuple(joined.items()), unknown)


def claims_members(event: LoggedEvent) -> bool:
    """Whether `event` may make identifiers members of a lot (a commissioning, a packing)."""
    return event.commissions is not None or (
        event.event_type == "AggregationEvent" and event.action == "ADD"
    )


def lot_change(
    event: LoggedEvent, lot_uri: str, members: Mapping[str, str], counted: set[str]
) -> LotChange:
    """What `event` does to `lot_uri`; `counted` holds the lot's items already in its quantity.

    `members` must know every membership the lot's events create (attribution comes first), so
    that an event means the same whichever order the events arrived in.
    """
    change = LotChange(lot_uri)
    items = [epc for epc in event.epcs if members.get(epc) == lot_uri]
    if event.commissions == lot_uri:
        fresh = [epc for epc in items if epc not in counted]
        counted.update(fresh)
        change.quantity_delta += len(fresh)
        change.best_before = _best_before(event.event)
    _apply_step(event, change, items)
    return change


@dataclass(frozen=True)
class Split:
    """Some of a lot's serialised items going their own way while the rest stay where the lot
    is held (a partial shipment, a sale of some units), or such items coming back to it.

    `items` empty: the event is only about items already apart from the lot (the released
    units' onward journey, their sale at a shop), which changes nothing about the lot.
    """

    items: tuple[str, ...]
    leaving: bool  # True: they leave the lot's holding; False: they are back in it
    sold: bool  # they leave by being sold


_SALE_STEPS = frozenset({"retail_selling"})


def split_of(
    event: LoggedEvent,
    fact: Fact,
    lot_uri: str,
    members: Mapping[str, str],
    record: LotRecord,
) -> Split | None:
    """What `event` does to part of a lot held at a site, or None when it concerns the lot as a
    whole (the lot's other rules apply then).

    Only serialised items (SGTINs) named one by one split a lot: an event naming a container
    or the lot's class speaks of all of it. Only while the lot is held at a site: goods in
    transit or at no known place move as one, as before. The lot's quantity is what it has at
    hand: naming that many of its items (or more) is the lot moving.
    """
    named = [epc for epc in event.epcs if members.get(epc) == lot_uri]
    if not named or record.held_at is None or fact not in PLACE_FACTS:
        return None
    if any(parse_sgtin(epc) is None for epc in named):
        return None  # a container (or anything but single items) stands for the whole lot
    apart = set(record.departed)
    here = sorted({epc for epc in named if epc not in apart})
    sold = event.biz_step in _SALE_STEPS or event.disposition == "retail_sold"
    site = site_of(event.columns)
    if not here:
        back = [epc for epc in named if epc in apart]
        if back and site == record.held_at and not sold and event.biz_step not in MOVEMENT_STEPS:
            return Split(tuple(sorted(back)), leaving=False, sold=False)
        return Split((), leaving=True, sold=False) if back else None
    if len(here) >= record.quantity:
        return None  # all of it: the lot moves as one
    leaves = (
        sold
        or fact is Fact.TRANSIT
        or event.biz_step in MOVEMENT_STEPS
        or (site is not None and site != record.held_at)
    )
    if not leaves:
        return None  # a claim about some items where the lot is: the lot is still there
    return Split(tuple(here), leaving=True, sold=sold)


def apply_split(record: LotRecord, split: Split, event: LoggedEvent) -> None:
    """Fold a split into the lot: its quantity and the items apart from it; nothing else."""
    apart = set(record.departed)
    if split.leaving:
        apart.update(split.items)
        record.quantity = max(record.quantity - len(split.items), 0)
    else:
        apart.difference_update(split.items)
        record.quantity += len(split.items)
    record.departed = sorted(apart)
    record.updated_log_index = max(record.updated_log_index or 0, event.log_index)
    if record.folds_after(event):
        record.latest_event_time, record.latest_event_hash = order_key(event)


def follow_recall(record: LotRecord, change: LotChange, event: LoggedEvent, by: str | None) -> bool:
    """Who recalled the lot, and whether `event` (counting, on `by`'s word) withdraws the
    recall: only the org that recalled it may, by saying the goods are in good standing again
    (a CBV disposition in `GOOD_STANDING`). Returns True when it withdrew it."""
    if change.recalled:
        record.recalled_by = by
        return False
    if (
        record.recalled
        and by is not None
        and by == record.recalled_by
        and event.disposition in GOOD_STANDING
    ):
        record.recalled, record.recalled_by = False, None
        return True
    return False


def recorder_attestation(
    org: str, device_id: str, topic: str, signed: bool, received_at: datetime
) -> Attestation:
    """The attestation of an event's first capture, from its stored row (as the attestations
    backfill states it): a `tf/` topic is MQTT and names the device; anything else is HTTP."""
    mqtt = topic.startswith("tf/")
    return Attestation(
        org=org,
        device=device_id if mqtt else None,
        user=None,
        channel="mqtt" if mqtt else "http",
        signed=signed,
        received_at=received_at,
    )


def moves_pledged_goods(
    event: LoggedEvent, fact: Fact, pledged_location: str, held_before: str | None
) -> bool:
    """Whether `event` says pledged goods left the supervised site they are pledged in.

    Any claim of place or custody does, whatever its bizStep: leaving (loading, shipping,
    departing), custody in transit, or being anywhere else (receiving at another GLN, accepting,
    selling, a custom bizStep at another site). Making and inspecting do not move goods. Only a
    claim about goods that were at the pledged site at that point of their history
    (`held_before`): an earlier leg (the shipping that brought them there, arriving late)
    moves nothing that is pledged.
    """
    pledged = site_gln(pledged_location)
    if fact not in PLACE_FACTS or pledged is None or held_before != pledged:
        return False
    if fact is Fact.TRANSIT or event.biz_step in MOVEMENT_STEPS:
        return True
    site = site_of(event.columns)
    return site is not None and site != pledged


def site_gln(location: str | None) -> str | None:
    """The GLN of a site's Digital Link (a sub-location's site too), else None."""
    match = _SITE.match(location or "")
    return match.group(1) if match else None


def registry_fingerprint(parties: Parties, extensions: Mapping[str, Fact]) -> bytes:
    """A digest of everything the authority rules read from the registry (prefixes, sites,
    device bindings, authorisations, roles, rule extensions): when it changes, evidence that
    did not count may count now."""
    snapshot = [
        sorted(parties.prefixes.items()),
        sorted(parties.site_operators.items()),
        sorted((key, sorted(sites)) for key, sites in parties.device_sites.items()),
        sorted(repr(entry) for entry in parties.authorisations),
        sorted(parties.roles.items()),
        sorted(parties.supervised_sites),
        sorted((step, fact.value) for step, fact in extensions.items()),
    ]
    return hashlib.sha256(repr(snapshot).encode()).digest()


def order_key(event: LoggedEvent) -> tuple[datetime, bytes]:
    """The order a lot's events are folded in: event time, the hash breaking ties.

    Not the log order: that is the order events happened to arrive, which two ingest workers
    (or a device that was offline) make differ from the order things happened.
    """
    return (event.event_time, event.event_hash)


def _apply_step(event: LoggedEvent, change: LotChange, items: list[str]) -> None:
    step = event.biz_step
    if event.biz_location is not None:
        change.location = event.biz_location
    custody = _CUSTODY.get(step or "")
    if custody is not None:
        change.custody = custody
    if step == "inspecting" and event.disposition is not None:
        change.inspection = event.disposition
    if event.disposition == "recalled":
        change.recalled = True
    if step in MOVEMENT_STEPS:
        change.moved = True
    if step == "retail_selling" or event.disposition == "retail_sold":
        sold = [epc for epc in items if parse_sgtin(epc) is not None]
        change.sold = len(sold)
        change.quantity_delta -= len(sold)
    if step in DELIVERY_STEPS:
        change.purchase_order = purchase_order(event.event)


def _best_before(event: Mapping[str, Any]) -> date | None:
    for name in ("bestBeforeDate", "itemExpirationDate", "sellByDate"):
        value = ilmd_value(event, name)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def purchase_order(event: Mapping[str, Any]) -> str | None:
    """The purchase order named in bizTransactionList (type `po`), if any."""
    transactions = event.get("bizTransactionList")
    if not isinstance(transactions, list):
        return None
    for transaction in transactions:
        if not isinstance(transaction, Mapping):
            continue
        kind = str(transaction.get("type", ""))
        if kind == "po" or kind.endswith("BTT-po") or kind.endswith(":po"):
            value = transaction.get("bizTransaction")
            if isinstance(value, str):
                return value
    return None


@dataclass
class LotRecord:
    """A lot's stored row (table `lots`): what the worker folds events into, and what the
    services read back (`finance.store.attribution.get_lot`).

    The one type for a stored lot. The rules take `finance.rules.LotState` instead: the lot
    as one financier sees it (with product, flags, pledge and evidence), free of storage.
    """

    lot_uri: str
    gtin: str
    lot: str
    quantity: int = 0
    location: str | None = None
    custody: str | None = None
    best_before: date | None = None
    recalled: bool = False
    last_inspection_disposition: str | None = None
    last_inspection_time: datetime | None = None
    last_inspection_hash: bytes | None = None
    updated_log_index: int | None = None
    latest_event_time: datetime | None = None
    latest_event_hash: bytes | None = None
    custodian: str | None = None
    held_at: str | None = None  # the GLN of the site holding the goods
    in_transit: bool = False
    consignees: list[str] = field(default_factory=list)
    held_since: datetime | None = None  # event time of the claim that put them at `held_at`
    departed: list[str] = field(default_factory=list)  # items split off (`Split`), not held
    recalled_by: str | None = None  # the org whose counting event recalled the lot

    @property
    def whereabouts(self) -> Whereabouts:
        """Where the goods are, as the authority rules read it (the columns above)."""
        return Whereabouts(
            self.held_at, self.custodian, self.in_transit, frozenset(self.consignees)
        )

    @whereabouts.setter
    def whereabouts(self, where: Whereabouts) -> None:
        self.held_at, self.custodian = where.held_at, where.custodian
        self.in_transit, self.consignees = where.in_transit, sorted(where.consignees)

    def folds_after(self, event: LoggedEvent) -> bool:
        """True when `event` comes after everything folded into the lot so far."""
        if self.latest_event_time is None or self.latest_event_hash is None:
            return True
        return order_key(event) > (self.latest_event_time, self.latest_event_hash)


def apply_change(record: LotRecord, change: LotChange, event: LoggedEvent) -> None:
    """Fold one event's change into a lot (the row the database will hold afterwards)."""
    record.quantity = max(record.quantity + change.quantity_delta, 0)
    if change.location is not None:
        record.location = change.location
    if change.custody is not None:
        record.custody = change.custody
    if change.best_before is not None:
        record.best_before = change.best_before
    record.recalled = record.recalled or change.recalled
    if change.inspection is not None:
        record.last_inspection_disposition = change.inspection
        record.last_inspection_time = event.event_time
        record.last_inspection_hash = event.event_hash
    record.updated_log_index = max(record.updated_log_index or 0, event.log_index)
    if record.folds_after(event):
        record.latest_event_time, record.latest_event_hash = order_key(event)

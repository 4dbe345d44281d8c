"""A product's or a lot's provenance page from the event store: its events, each re-verified.

The page's data (in the shape of the API's `ProvenancePublic`) is assembled here, with the
checks behind each event's state: the stored JSON still hashes to the event's identity and
implies its index columns, the event's path leads to its batch root, and the chain does not
contradict the batch record. Beside that state, each event shows its origin: who recorded it,
who else attested it, and whether it counts as evidence under the authority rules
(epcis.authority) -- "verified on chain" and "attested by the responsible party" are two
separate questions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from epcis import authority
from epcis.authority import Attestation, Evidence
from epcis.capture import INDEX_COLUMNS, IndexColumns, stored_index_columns
from epcis.event_hash import digest_from_hash_id, event_hash_digest, hash_id_from_digest
from ledger import log_store, provenance_store
from ledger.bundle import Bundle
from ledger.chain_confirmations import BatchConfirmations
from ledger.cold_chain import site_of
from ledger.merkle import inclusion_steps
from ledger.proofs import build_bundles
from ledger.provenance_store import HistoryRow
from records import attestation_store, declaration_store, registry_store
from records.db import Conn
from records.declaration_store import StoredDeclaration

# The index columns a page shows (the identifier lists are for queries, not for people).
PUBLIC_COLUMNS = tuple(name for name in INDEX_COLUMNS if name not in ("epcs", "lots"))


@dataclass(frozen=True)
class ProvenanceEvent:
    """One event as the public sees it: no prices, no internal ids (its origin -- orgs and
    devices that attested it -- comes from `origins`)."""

    hash_id: str
    columns: IndexColumns
    sensor_readings: list[dict[str, Any]]
    verification: str  # "anchored", "pending" or "failed"
    batch_id: int | None
    block_number: int | None
    tx_hash: str | None


# Recomputing the canonical hash is the costliest part of a page. Its result depends only on
# the stored row, so it is remembered per (digest, row version): PostgreSQL gives every UPDATE
# a new row version (xmin), so an edited event is checked afresh and shows as failed.
_INTACT: dict[tuple[bytes, str], bool] = {}
_INTACT_MAX = 200_000


def _check_intact(conn: Conn, rows: list[HistoryRow]) -> dict[bytes, bool]:
    """Whether each row's stored JSON still hashes to its identity and implies its columns."""
    verdicts: dict[bytes, bool] = {}
    unknown = []
    for row in rows:
        known = _INTACT.get((row.digest, row.version))
        if known is None:
            unknown.append(row.digest)
        else:
            verdicts[row.digest] = known
    if unknown:
        for stored in provenance_store.stored_event_texts(conn, unknown):
            intact = row_is_intact(stored.digest, stored.event, stored.context, stored.columns)
            if len(_INTACT) >= _INTACT_MAX:
                _INTACT.clear()
            _INTACT[(stored.digest, stored.version)] = intact
            verdicts[stored.digest] = intact
    return verdicts


def row_is_intact(digest: bytes, event: str, context: str | None, columns: IndexColumns) -> bool:
    """The stored JSON hashes to `digest` and implies exactly the stored index columns."""
    try:
        stored = orjson.loads(event)
        if event_hash_digest(stored, orjson.loads(context) if context else None) != digest:
            return False
    except Exception:  # JSON edited into anything at all is simply not intact
        return False
    return stored_index_columns(stored) == columns


def item_history(conn: Conn, item: str) -> list[ProvenanceEvent]:
    """Events about an item, its pallets (aggregations) and its lot."""
    direct = provenance_store.mentioning_item(conn, item)
    if not direct:
        return []
    parents = sorted(
        {
            row.parent_id
            for row in direct
            if row.columns.event_type == "AggregationEvent" and row.parent_id
        }
    )
    lots = sorted({lot for row in direct for lot in row.columns.lots})
    related = provenance_store.related_to_item(conn, item, parents, lots)
    return _public(conn, _merge(direct, related))


def lot_history(conn: Conn, lot: str) -> list[ProvenanceEvent]:
    """Events about a lot, its items (from commissioning) and the pallets they were packed on."""
    return _public(conn, _raw_lot_history(conn, lot))


def _merge(*groups: list[HistoryRow]) -> list[HistoryRow]:
    seen: dict[bytes, HistoryRow] = {}
    for group in groups:
        for row in group:
            seen.setdefault(row.digest, row)
    return sorted(seen.values(), key=lambda row: row.columns.event_time)


def _public(conn: Conn, rows: list[HistoryRow]) -> list[ProvenanceEvent]:
    # Checked on every view: an edited row shows as failed, never as verified.
    intact = _check_intact(conn, rows)
    return [_public_event(row, intact.get(row.digest, False)) for row in rows]


def _public_event(row: HistoryRow, intact: bool) -> ProvenanceEvent:
    if not intact:
        state = "failed"
    elif row.batch_id is not None:
        state = "anchored"
    else:
        state = "pending"
    return ProvenanceEvent(
        hash_id=hash_id_from_digest(row.digest),
        columns=row.columns,
        sensor_readings=_sensor_summary(row.sensors),
        verification=state,
        batch_id=row.batch_id if intact else None,
        block_number=row.block_number if intact else None,
        tx_hash="0x" + row.tx_hash.hex() if intact and row.tx_hash is not None else None,
    )


def _sensor_summary(elements: Any) -> list[dict[str, Any]]:
    readings = []
    for element in elements if isinstance(elements, list) else []:
        for report in (element or {}).get("sensorReport") or []:
            if isinstance(report, dict) and "value" in report:
                readings.append(
                    {
                        "type": report.get("type"),
                        "value": _displayable(report.get("value")),
                        "uom": report.get("uom"),
                    }
                )
    return readings


def _displayable(value: Any) -> Any:
    """jsonb gives 1e20 back as a 21-digit int; JSON encoders refuse ints beyond 64 bits."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


# --- the page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A provenance page's data, in the shape of the API's `ProvenancePublic` (plain dicts:
    building fifty pydantic models per page cost more than the page's queries)."""

    data: dict[str, Any]
    # Every batch the page cites was checked against the chain (or there is no chain to ask):
    # the page may be kept until what it shows changes.
    complete: bool


def page(
    conn: Conn,
    confirmations: BatchConfirmations,
    uri: str,
    gtin14: str,
    *,
    lot: str | None,
    serial: str | None,
    product_name: Callable[[], str | None],
) -> Page | None:
    """The page of the item (`serial`) or lot `uri`, each event re-verified; None if no event
    is known for it. `product_name` looks the product's name up (read only for a known one)."""
    history = item_history(conn, uri) if serial is not None else lot_history(conn, uri)
    if not history:
        return None
    digests = {event.hash_id: digest_from_hash_id(event.hash_id) for event in history}
    # A failed event's bundle would prove a hash whose stored event no longer matches it.
    bundles = build_bundles(
        conn, [digests[event.hash_id] for event in history if event.verification != "failed"]
    )
    refuted = confirmations.refuted(bundles, log_store.trusted_anchors(conn, confirmations.pinned))
    states = {
        event.hash_id: checked_state(
            event.verification,
            bundles.get(digests[event.hash_id]),
            refuted.get(digests[event.hash_id]),
        )
        for event in history
    }
    parties = registry_store.authority_parties(conn)
    origin = origins(
        conn, [(digests[event.hash_id], event.columns) for event in history], parties=parties
    )
    places = registry_store.site_names(
        conn, sorted({gln for e in history if (gln := site_of(e.columns.biz_location))})
    )
    events = [
        {
            "event_hash": event.hash_id,
            **{name: getattr(event.columns, name) for name in PUBLIC_COLUMNS},
            "place": _place(event.columns.biz_location, places),
            "sensor_readings": event.sensor_readings,
            "verification": _verification(
                states[event.hash_id], event, digests[event.hash_id], bundles
            ),
            **origin[digests[event.hash_id]],
        }
        for event in history
    ]
    counts = list(states.values())
    unchecked = confirmations.asks_a_chain and None in refuted.values()
    producer = parties.owner_of(gtin14)
    data = {
        "product": {
            "gtin": gtin14,
            "name": product_name(),
            "lot": lot,
            "serial": serial,
            "digital_link": uri,
            # Who holds the GTIN's GS1 Company Prefix: the brand owner the registry knows,
            # by the name it registered (its slug when it gave none).
            "producer": producer,
            "producer_name": (registry_store.org_name(conn, producer) or producer)
            if producer is not None
            else None,
            "best_before": _best_before(conn, events),
        },
        "events": events,
        "verified": counts.count("anchored"),
        "pending": counts.count("pending"),
        "failed": counts.count("failed"),
    }
    return Page(data, complete=not unchecked)


def _place(location: str | None, names: dict[str, tuple[str, str | None]]) -> dict[str, Any] | None:
    """A site's GLN, registered name and city (None: nobody registered it, or no city)."""
    gln = site_of(location)
    if gln is None:
        return None
    name, city = names.get(gln, (None, None))
    return {"gln": gln, "name": name, "city": city}


def _best_before(conn: Conn, events: list[dict[str, Any]]) -> str | None:
    """The best-before date the first commissioning that counts gives its lot (its ILMD)."""
    made = [
        digest_from_hash_id(event["event_hash"])
        for event in events
        if event["biz_step"] == "commissioning" and event["evidence"] == "counts"
    ]
    bodies = provenance_store.event_bodies(conn, made[:1])
    for body in bodies.values():
        ilmd = body.get("ilmd")
        value = ilmd.get("cbvmda:bestBeforeDate") if isinstance(ilmd, dict) else None
        if isinstance(value, str) and len(value) <= 32:
            return value
    return None


def checked_state(state: str, bundle: Bundle | None, refuted: bool | None) -> str:
    """`anchored` only while the event's path leads to the recorded root of its batch and the
    chain does not contradict the batch record (`refuted`; None: the chain was not asked).

    The tree is rebuilt from the log for the proof anyway; an edited batch row or log position
    then shows the event as failed, as an edited event does.
    """
    if state != "anchored" or bundle is None or bundle.inclusion is None:
        return state
    if refuted:
        return "failed"
    return state if bundle.leads_to_root() else "failed"


def _verification(
    state: str, event: ProvenanceEvent, digest: bytes, bundles: dict[bytes, Bundle]
) -> dict[str, Any]:
    failed = state == "failed"
    bundle = bundles.get(digest)
    return {
        "state": state,
        "batch_id": None if failed else event.batch_id,
        "block_number": None if failed else event.block_number,
        "tx_hash": None if failed else event.tx_hash,
        "proof_url": f"/v1/proofs/{digest.hex()}",
        "proof": None if failed or bundle is None else bundle.to_json(),
        "check": None if failed or bundle is None else check_json(bundle),
    }


# The TraceAnchor view a verifier reads a batch's record with: `batch(uint64)`'s selector,
# keccak256("batch(uint64)")[:4] (tests/unit/test_product_page.py recomputes it).
BATCH_SELECTOR = "0x857553cc"


def check_json(bundle: Bundle) -> dict[str, Any] | None:
    """What a verifier does with the bundle, spelled out (the page's script does the same in
    the browser): the hashing from the event hash to the root, then the `eth_call` that reads
    the batch's record from the TraceAnchor, whose first word is the anchored root."""
    included = bundle.inclusion
    if included is None:
        return None
    batch = included.batch
    steps = inclusion_steps(
        bundle.digest, included.leaf_index, batch.tree_size, included.audit_path
    )
    if steps is None:
        return None
    return {
        "steps": [
            {
                "side": side,
                "sibling": "0x" + sibling.hex() if sibling else None,
                "hash": "0x" + result.hex(),
            }
            for side, sibling, result in steps
        ],
        "leads_to_root": steps[-1][2] == batch.root,
        "eth_call": {
            "to": batch.contract,
            "data": BATCH_SELECTOR + batch.batch_id.to_bytes(32, "big").hex(),
        },
        "expect": "the call's first 32 bytes equal `root`; the next words are first_index,"
        " tree_size and block_number",
    }


# --- origin: who recorded an event, who attested it, whether it counts as evidence ----------


def origins(
    conn: Conn,
    history: Sequence[tuple[bytes, IndexColumns]],
    *,
    parties: authority.Parties | None = None,
) -> dict[bytes, dict[str, Any]]:
    """Each event's origin (`origin_json`) by digest; `history` is in event-time order.

    Claims are judged against where the goods are, as the history itself says
    (`epcis.authority.whereabouts_after`): a transit claim counts only from the carrier a
    counting shipment handed them to, another site's claim about goods held in a supervised
    site only from its operator or their owner.
    """
    digests = [digest for digest, _ in history]
    attestations = attestation_store.attestations_for(conn, digests)
    declared = declaration_store.declarations_for(conn, digests)
    if parties is None:
        parties = registry_store.authority_parties(conn)
    extensions = registry_store.rule_extensions(conn)
    # The bodies of movements: the carrier and consignees a shipment names decide who may
    # speak for the goods in transit and where they may arrive.
    bodies = provenance_store.event_bodies(
        conn,
        [digest for digest, columns in history if columns.biz_step in authority.MOVEMENT_STEPS],
    )
    where = authority.Whereabouts()
    result = {}
    for digest, columns in history:
        attested = attestations.get(digest, [])
        evidence = authority.evaluate(
            columns,
            attested,
            parties,
            where=where,
            extensions=extensions,
            declared=digest in declared,
        )
        if evidence.counts:  # an unattested claim hands nothing to anyone
            where = authority.whereabouts_after(
                where, evidence.fact, columns, bodies.get(digest) or {}, parties
            )
        result[digest] = origin_json(attested, evidence, declared.get(digest))
    return result


def origin_json(
    attestations: Sequence[Attestation],
    evidence: Evidence,
    declaration: StoredDeclaration | None = None,
) -> dict[str, Any]:
    """`recorded_by` (the earliest attestation), `signed`, `attested_by` (everyone else who
    submitted the event), `evidence` and, when it does not count, `reason`; an event declared
    erroneous is `declared_erroneous`, with its `error_declaration` (who, when, why)."""
    recorder, others = authority.recorder_and_others(attestations)
    data: dict[str, Any] = {
        "recorded_by": (
            {"org": recorder.org, "device": recorder.device} if recorder is not None else None
        ),
        "signed": recorder is not None and recorder.signed,
        "attested_by": [
            {"org": other.org, "device": other.device, "signed": other.signed} for other in others
        ],
        "evidence": evidence.status,
        "error_declaration": None,
    }
    if evidence.reason is not None and not evidence.counts:
        data["reason"] = evidence.reason.value
    if declaration is not None:
        data["evidence"] = "declared_erroneous"
        data["error_declaration"] = {
            "declared_by": declaration.org,
            "declaration_time": declaration.declaration_time,
            "reason": declaration.reason,
            "corrective_event_ids": list(declaration.corrective_event_ids),
        }
    return data


# --- trace -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    hash_id: str
    event_time: datetime
    biz_step: str | None
    biz_location: str | None
    parties: list[str]
    items: list[str]


_FORWARD_STEPS = frozenset(
    {
        "shipping",
        "departing",
        "loading",
        "transporting",
        "arriving",
        "unloading",
        "accepting",
        "receiving",
        "retail_selling",
    }
)


def trace(conn: Conn, lot: str, direction: str) -> list[TraceStep]:
    """Forward: where the lot went and to whom. Backward: what it was made of and where."""
    history = _raw_lot_history(conn, lot)
    bodies = provenance_store.event_bodies(conn, [row.digest for row in history])
    steps = []
    for row in history:
        event = bodies.get(row.digest) or {}
        columns = row.columns
        if direction == "forward":
            if columns.biz_step not in _FORWARD_STEPS:
                continue
            parties = [
                d.get("destination")
                for d in event.get("destinationList") or []
                if isinstance(d, dict) and d.get("destination")
            ]
            parties += [
                t.get("bizTransaction")
                for t in event.get("bizTransactionList") or []
                if isinstance(t, dict) and t.get("bizTransaction")
            ]
        else:
            if columns.event_type != "TransformationEvent" and columns.biz_step not in (
                "commissioning",
                "packing",
            ):
                continue
            parties = [
                s.get("source")
                for s in event.get("sourceList") or []
                if isinstance(s, dict) and s.get("source")
            ]
            parties += [i for i in event.get("inputEPCList") or [] if isinstance(i, str)]
            parties += [
                q.get("epcClass")
                for q in event.get("inputQuantityList") or []
                if isinstance(q, dict) and q.get("epcClass")
            ]
        steps.append(
            TraceStep(
                hash_id_from_digest(row.digest),
                columns.event_time,
                columns.biz_step,
                columns.biz_location,
                [str(p) for p in parties],
                list(columns.epcs),
            )
        )
    return steps


def _raw_lot_history(conn: Conn, lot: str) -> list[HistoryRow]:
    direct = provenance_store.mentioning_lot(conn, lot)
    items = sorted(
        {
            epc
            for row in direct
            if row.columns.biz_step == "commissioning"
            for epc in row.columns.epcs
        }
    )
    aggregations = provenance_store.aggregations_of(conn, items)
    parents = sorted({row.parent_id for row in aggregations if row.parent_id})
    related = provenance_store.mentioning_any(conn, parents, items)
    return _merge(direct, related)

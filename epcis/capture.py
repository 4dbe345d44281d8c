"""EPCIS capture for MQTT and HTTP alike: payload -> validated, hashed, signature-checked events.

Pure: no I/O. The caller looks the device up, stores what is accepted and answers what is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from epcis.declarations import Declaration, declaration_of
from epcis.event_hash import (
    HashContext,
    event_hash_digest,
    hash_context,
    hash_id_from_digest,
    normalise_event,
)
from epcis.identifiers import (
    canonical_gs1_uri,
    check_digit_problem,
    lot_uri,
    normalise_epc,
    parse_lot,
)
from epcis.lots import commissioned_lot
from epcis.model import EPCISEvent, Place, events_from_document, parse_event
from epcis.rejects import EventRejected, RejectCode
from epcis.signatures import parse_signature, recover_address
from epcis.xml_binding import looks_like_xml, xml_document

WHOLE_PAYLOAD = -1
_DOCUMENT_TYPES = frozenset({"EPCISDocument", "EPCISQueryDocument"})
# Below orjson's serialisation limit (254 levels), which the stored JSON must pass.
MAX_NESTING = 240


@dataclass(frozen=True)
class DeviceKey:
    """What capture needs to know of the sending device."""

    org_id: int
    org_slug: str
    device_id: str
    # Lower-case 0x address the device signs with; None for a device registered --unsigned.
    address: str | None
    # When the device was revoked: everything it sends from then on is refused.
    revoked_at: datetime | None = None
    # Its earlier keys (rotated away) and when each was revoked: a signature by one of them on
    # a message received after that is refused `device_revoked`.
    retired_keys: tuple[tuple[str, datetime], ...] = ()

    def refuse_if_revoked(self, now: datetime) -> None:
        """EventRejected(device_revoked) for a message received once the device was revoked."""
        if self.revoked_at is not None and now >= self.revoked_at:
            raise EventRejected(
                RejectCode.DEVICE_REVOKED,
                f"device {self.org_slug}/{self.device_id} was revoked at"
                f" {self.revoked_at.isoformat()}",
            )

    def check_signer(self, signer: str, now: datetime) -> None:
        """Accept a signature by the device's key (or by a retired key, on a message received
        before its revocation); else EventRejected (device_revoked or signature_mismatch)."""
        if signer == self.address:
            return
        for address, revoked_at in self.retired_keys:
            if signer == address:
                if now < revoked_at:
                    return
                raise EventRejected(
                    RejectCode.DEVICE_REVOKED,
                    f"sig was made by {signer}, a key of {self.org_slug}/{self.device_id}"
                    f" revoked at {revoked_at.isoformat()}",
                )
        raise EventRejected(
            RejectCode.SIGNATURE_MISMATCH,
            f"sig was made by {signer}, not by the device's key {self.address}",
        )


@dataclass(frozen=True)
class IndexColumns:
    """The columns stored beside an event's JSON for queries; all derived from the JSON.

    The one definition of the index projection: the store's columns, the provenance rows and
    the public event model are named after these fields, in this order.
    """

    event_time: datetime
    event_time_zone_offset: str
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    stage: str | None
    read_point: str | None
    biz_location: str | None
    epcs: tuple[str, ...]
    lots: tuple[str, ...]


# The `events` columns of the projection, named as the fields.
INDEX_COLUMNS: tuple[str, ...] = tuple(column.name for column in fields(IndexColumns))


def index_columns(event: EPCISEvent, raw: dict[str, Any]) -> IndexColumns:
    """The index columns of a parsed event (`raw` is the JSON it was parsed from)."""
    stage = event.stage
    return IndexColumns(
        event_time=event.event_time_utc,
        event_time_zone_offset=event.event_time_zone_offset,
        event_type=event.type,
        action=getattr(event, "action", None),
        biz_step=event.biz_step,
        disposition=event.disposition,
        stage=stage.value if stage is not None else None,
        read_point=_place(event.read_point),
        biz_location=_place(event.biz_location),
        epcs=tuple(event.epcs()),
        lots=tuple(dict.fromkeys(_lots(event, raw))),
    )


_NO_FUTURE_LIMIT = datetime.max.replace(tzinfo=UTC)


def stored_index_columns(stored_event: object) -> IndexColumns | None:
    """What the index columns must hold for this stored event JSON; None if it does not parse.

    Readers compare it with the columns, so an edit of a column alone is caught like an edit
    of the JSON.
    """
    try:
        event = parse_event(stored_event, now=_NO_FUTURE_LIMIT, max_future_skew=timedelta(0))
        assert isinstance(stored_event, dict)
        return index_columns(event, stored_event)
    except (EventRejected, ValueError):
        return None


@dataclass(frozen=True)
class AcceptedEvent:
    """A valid event ready to store: its identity, its normalised JSON and its index columns."""

    index: int
    digest: bytes
    event: EPCISEvent
    stored_json: str
    context: str | None
    signature: bytes | None
    columns: IndexColumns
    # Its errorDeclaration, kept apart: the stored JSON never holds one, so an event reads the
    # same whether it was declared erroneous or not, and the declaration has its own record.
    declaration: Declaration | None = None
    # The event as captured (its JSON values as the document had them, without the
    # declaration), for answers; None when it is the stored normalised JSON itself.
    captured_json: str | None = None

    @property
    def hash_id(self) -> str:
        return hash_id_from_digest(self.digest)


@dataclass(frozen=True)
class RefusedItem:
    """One refused event (`index` in the payload) or the whole payload (`index` = -1)."""

    index: int
    code: RejectCode
    detail: str


@dataclass
class CaptureResult:
    accepted: list[AcceptedEvent] = field(default_factory=list)
    refused: list[RefusedItem] = field(default_factory=list)


@dataclass(frozen=True)
class _Item:
    raw: object
    signature: object
    has_signature: bool


def decode_payload(payload: bytes, *, max_payload_bytes: int) -> object:
    """A capture payload read as the JSON binding: JSON as it is, an EPCIS 2.0 XML document
    (first byte `<`) through the XML binding (epcis/xml_binding.py); EventRejected if neither."""
    if looks_like_xml(payload):
        _check_size(payload, max_payload_bytes)
        return xml_document(payload)
    return decode_json(payload, max_payload_bytes=max_payload_bytes)


def _check_size(payload: bytes, max_payload_bytes: int) -> None:
    if len(payload) > max_payload_bytes:
        raise EventRejected(
            RejectCode.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes; the limit is {max_payload_bytes}",
        )


def decode_json(payload: bytes, *, max_payload_bytes: int) -> object:
    """Size check then JSON decode; EventRejected for an oversized or non-JSON payload."""
    _check_size(payload, max_payload_bytes)
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(RejectCode.NOT_JSON, f"payload is not JSON: {exc}") from None
    # JSON can carry U+0000 only as the escape \u0000; PostgreSQL text and jsonb cannot store it.
    if b"\\u0000" in payload and contains_nul(decoded):
        raise EventRejected(RejectCode.INVALID_TEXT, "text must not contain U+0000 (NUL)")
    # Nesting that deep needs that many brackets: the walk runs only where it can find something.
    if payload.count(b"[") + payload.count(b"{") > MAX_NESTING and nesting_exceeds(
        decoded, MAX_NESTING
    ):
        raise EventRejected(
            RejectCode.TOO_DEEPLY_NESTED, f"JSON is nested more than {MAX_NESTING} levels deep"
        )
    return decoded


def nesting_exceeds(value: object, limit: int) -> bool:
    """True if arrays and objects inside `value` nest more than `limit` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def contains_nul(value: object) -> bool:
    """True if any string (or object key) inside a decoded JSON value contains U+0000."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def capture(
    payload: bytes,
    device: DeviceKey,
    *,
    now: datetime,
    max_payload_bytes: int,
    max_future_skew: timedelta,
) -> CaptureResult:
    """Validate, hash and check the signature of every event a payload carries.

    One bad event refuses that event only; the good ones in the same payload are accepted.
    """
    result = CaptureResult()
    try:
        device.refuse_if_revoked(now)
        decoded = decode_payload(payload, max_payload_bytes=max_payload_bytes)
        items, context = _split(decoded)
    except EventRejected as exc:
        result.refused.append(RefusedItem(WHOLE_PAYLOAD, exc.code, exc.detail))
        return result
    context_json = orjson.dumps(context).decode() if context is not None else None
    prepared = hash_context(context)  # once per payload, not per event
    for index, item in enumerate(items):
        try:
            result.accepted.append(
                _accept(index, item, prepared, context_json, device, now, max_future_skew)
            )
        except EventRejected as exc:
            result.refused.append(RefusedItem(index, exc.code, exc.detail))
    return result


def _split(decoded: object) -> tuple[list[_Item], object]:
    """The events a payload carries, with their signatures and the document @context."""
    if isinstance(decoded, dict):
        kind = decoded.get("type")
        if isinstance(kind, str) and kind in _DOCUMENT_TYPES:
            raw_events, context = events_from_document(decoded)
            if not raw_events:
                raise EventRejected(RejectCode.NOT_AN_EVENT, "the document holds no events")
            return [_Item(raw, None, False) for raw in raw_events], context
        return [_item(decoded)], None
    if isinstance(decoded, list):
        if not decoded:
            raise EventRejected(RejectCode.NOT_AN_EVENT, "payload is an empty array")
        return [_item(element) for element in decoded], None
    raise EventRejected(
        RejectCode.NOT_AN_EVENT,
        "payload must be an event, an array of events or envelopes, or an EPCISDocument",
    )


def _item(value: object) -> _Item:
    if isinstance(value, dict) and "event" in value and "type" not in value:
        return _Item(value["event"], value.get("sig"), "sig" in value)
    return _Item(value, None, False)


def _accept(
    index: int,
    item: _Item,
    context: HashContext,
    context_json: str | None,
    device: DeviceKey,
    now: datetime,
    max_future_skew: timedelta,
) -> AcceptedEvent:
    # The model holds identifiers already normalised; the raw JSON is what gets hashed.
    event = parse_event(item.raw, now=now, max_future_skew=max_future_skew)
    assert isinstance(item.raw, dict)  # parse_event refuses anything else
    try:
        normalised = normalise_event(item.raw)
        columns = index_columns(event, item.raw)
    except ValueError as exc:
        raise EventRejected(RejectCode.INVALID_IDENTIFIER, str(exc)) from None
    _check_keys(event)
    digest = event_hash_digest(item.raw, context)
    signature = _check_signature(item, digest, device, now)
    normalised.pop("errorDeclaration", None)
    captured = item.raw
    if "errorDeclaration" in captured:
        captured = {key: value for key, value in captured.items() if key != "errorDeclaration"}
    # normalise_event shares what it leaves unchanged, so this comparison is mostly identity
    # checks; the captured form is serialised only when it differs (EPC URNs, custom domains).
    captured_json = None if normalised == captured else orjson.dumps(captured).decode()
    return AcceptedEvent(
        index=index,
        digest=digest,
        event=event,
        stored_json=orjson.dumps(normalised).decode(),
        context=context_json,
        signature=signature,
        columns=columns,
        declaration=declaration_of(event, item.raw),
        captured_json=captured_json,
    )


def _check_keys(event: EPCISEvent) -> None:
    """Refuse a GS1 key with a wrong check digit: it names goods or a place no one was given.

    Only capture checks (a Digital Link carries the digit; a URN's is computed, so always
    right): events stored before the check stay readable by `parse_event`.
    """
    places = [place.id for place in (event.read_point, event.biz_location) if place is not None]
    parties = [source.source for source in event.source_list]
    parties += [destination.destination for destination in event.destination_list]
    for uri in (*event.epcs(), *event.epc_classes(), *places, *parties):
        problem = check_digit_problem(canonical_gs1_uri(uri) or uri)
        if problem is not None:
            raise EventRejected(RejectCode.INVALID_IDENTIFIER, problem)


def _place(place: Place | None) -> str | None:
    return normalise_epc(place.id) if place is not None else None


def _lots(event: EPCISEvent, raw: dict[str, Any]) -> Iterator[str]:
    """The lots an event is about: LGTIN classes, and the lot a commissioning creates."""
    commissioned = commissioned_lot(
        event.biz_step, getattr(event, "action", None), event.epcs(), raw
    )
    if commissioned is not None:
        yield commissioned
    for epc_class in event.epc_classes():
        lot = parse_lot(epc_class)
        if lot is not None:
            yield lot_uri(*lot)


def _check_signature(item: _Item, digest: bytes, device: DeviceKey, now: datetime) -> bytes | None:
    if device.address is None:
        return None
    if not item.has_signature or item.signature is None:
        raise EventRejected(
            RejectCode.SIGNATURE_MISSING,
            f"device {device.org_slug}/{device.device_id} must sign every event",
        )
    signature = parse_signature(item.signature)
    device.check_signer(recover_address(digest, signature), now)
    return signature


def count_events(payload: bytes, *, max_payload_bytes: int) -> int:
    """How many events a capture payload carries, checking only that it can be read as one
    (size, JSON, an event, an array or a document with events); EventRejected otherwise.

    Asynchronous capture answers this much at once and validates the events later.
    """
    items, _ = _split(decode_payload(payload, max_payload_bytes=max_payload_bytes))
    return len(items)

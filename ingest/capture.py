"""Store what a capture accepted and refused, then answer each event: MQTT and HTTP alike.

The one path from a validated payload (epcis.capture) to stored rows and per-event answers.
The MQTT worker gathers many payloads into one batch and one transaction; HTTP capture stores a
batch of one payload. Either way the first copy of an event is `accepted` and any other copy,
in this batch or stored before, is a `duplicate`; every copy is recorded as an attestation
(records.attestation_store), so a later submission by the rightful party is on record. A copy
carrying an `errorDeclaration` is no attestation but a declaration: recorded (and answered
`error_declared`) when its party may declare the event erroneous, else refused and kept as a
dead letter (records.declaration_store, epcis.authority.declaration_refusal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import orjson

from epcis import authority
from epcis.capture import CaptureResult, DeviceKey, RefusedItem, capture
from epcis.declarations import DeclarationRecord
from epcis.jcs import canonical_json
from epcis.rejects import RejectCode
from records import attestation_store, declaration_store, event_store, registry_store
from records.attestation_store import AttestationToStore
from records.capture_job_store import ErrorBehaviour
from records.db import Conn
from records.declaration_store import DeclarationToStore
from records.event_store import DeadLetter, EventToStore, ReadingToStore

# The device id events captured over HTTP are stored under: the API key, not a device, is the
# proof of origin (its prefix is the attestation's api_user).
HTTP_DEVICE = "http-capture"
# The topic (the route) events of POST /epcis/capture's jobs are stored and dead-lettered under.
CAPTURE_JOBS_TOPIC = "http:/epcis/capture"


@dataclass(frozen=True)
class Origin:
    """A payload as it arrived: on which topic (MQTT) or route (HTTP), when, and its bytes
    (kept with its refusals); over HTTP, by which API user."""

    topic: str
    received_at: datetime
    payload: bytes
    channel: Literal["mqtt", "http"] = "mqtt"
    api_user: str | None = None  # HTTP: the API key's prefix


@dataclass(slots=True)
class Receipt:
    """An accepted event waiting for its status, and where its answer goes (MQTT: a topic)."""

    reply_to: str | None
    index: int  # in its payload
    digest: bytes
    hash_id: str
    # A declaration's outcome, decided when the batch is stored: recorded (or the same one
    # recorded before), or refused with a reason sent to `reject_to` (MQTT: a topic).
    declared: bool = False
    refused: RefusedItem | None = None
    reject_to: str | None = None


Status = Literal["accepted", "duplicate", "error_declared"]


@dataclass(frozen=True)
class Stored:
    """What `CaptureBatch.store_by` kept: the new digests and every refusal, capture's and
    the declarations'; `rolled_back` when nothing but the refusals was kept."""

    new: set[bytes]
    refused: list[RefusedItem]
    rolled_back: bool = False


class _RolledBack(Exception):
    """Leaves the savepoint of a rolled-back capture's events (its refusals are kept)."""


@dataclass(slots=True)
class Answer:
    reply_to: str | None
    index: int
    hash_id: str
    status: Status


@dataclass(frozen=True)
class PendingDeclaration:
    """An accepted event that carries an errorDeclaration: judged when the batch is stored."""

    receipt: Receipt
    row: EventToStore
    origin: Origin
    device: DeviceKey


@dataclass
class CaptureBatch:
    """Rows of one or more payloads, stored in one transaction, then answered event by event."""

    events: list[EventToStore] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    readings: list[ReadingToStore] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Every accepted copy, duplicates included: who submitted the event, through what, signed.
    attestations: list[AttestationToStore] = field(default_factory=list)
    # Copies that declare their event erroneous: no attestation, a declaration (or a refusal).
    declarations: list[PendingDeclaration] = field(default_factory=list)

    def capture(
        self,
        origin: Origin,
        device: DeviceKey,
        *,
        max_payload_bytes: int,
        max_future_skew: timedelta,
        reply_to: str | None = None,
        reject_to: str | None = None,
    ) -> CaptureResult:
        """Validate the payload's events (epcis.capture), keep the accepted ones to store under
        the device and the refused ones as dead letters; the caller answers the refusals its
        own way."""
        result = capture(
            origin.payload,
            device,
            now=origin.received_at,
            max_payload_bytes=max_payload_bytes,
            max_future_skew=max_future_skew,
        )
        for accepted in result.accepted:
            row = EventToStore(
                accepted, device.org_id, device.device_id, origin.topic, origin.received_at
            )
            receipt = Receipt(
                reply_to, accepted.index, accepted.digest, accepted.hash_id, reject_to=reject_to
            )
            self.receipts.append(receipt)
            if accepted.declaration is not None:
                # Saying an event is erroneous is not vouching for it: no attestation.
                self.declarations.append(PendingDeclaration(receipt, row, origin, device))
                continue
            self.events.append(row)
            self.attestations.append(
                AttestationToStore(
                    event_hash=accepted.digest,
                    org_id=device.org_id,
                    device_id=device.device_id if origin.channel == "mqtt" else None,
                    api_user=origin.api_user,
                    channel=origin.channel,
                    signature=accepted.signature,
                    received_at=origin.received_at,
                )
            )
        for refused in result.refused:
            self.refuse(origin, refused)
        return result

    def refuse(self, origin: Origin, refused: RefusedItem) -> None:
        """Keep a refused event (or a whole refused payload) as a dead letter."""
        self.dead_letters.append(_dead_letter(origin, refused))

    def extend(self, other: CaptureBatch) -> None:
        self.events += other.events
        self.receipts += other.receipts
        self.readings += other.readings
        self.dead_letters += other.dead_letters
        self.attestations += other.attestations
        self.declarations += other.declarations

    def store(self, conn: Conn) -> set[bytes]:
        """Write everything in the caller's transaction; the digests of the events that are new.

        The first copy of an event within the batch is the one stored; later copies are
        duplicates. Every copy is an attestation (one per party, channel and signedness).
        """
        late_dead_letters, declared_events = self._declare(conn)
        seen: set[bytes] = set()
        unique = []
        for row in [*self.events, *declared_events]:
            if row.accepted.digest not in seen:
                seen.add(row.accepted.digest)
                unique.append(row)
        new_digests = event_store.insert_events(conn, unique)
        attestation_store.insert_attestations(conn, self.attestations)
        event_store.insert_readings(conn, self.readings)
        event_store.insert_dead_letters(conn, [*self.dead_letters, *late_dead_letters])
        return new_digests

    def _declare(self, conn: Conn) -> tuple[list[DeadLetter], list[EventToStore]]:
        """Judge and record the batch's declarations (in the caller's transaction); the dead
        letters of the refused ones, and the declared events to store if they are not yet.

        Each is judged by the authority rules (`not_entitled_to_declare`), then against the
        declaration already recorded for its event (the same one again: `error_declared`,
        idempotent; another: `already_declared`). A declared event not stored yet is stored with it,
        declared from the start: an original that arrives later is then a duplicate.
        """
        if not self.declarations:
            return [], []
        digests = sorted({pending.row.accepted.digest for pending in self.declarations})
        recorded = {
            digest: _content_digest(stored.declaration)
            for digest, stored in declaration_store.declarations_for(conn, digests).items()
        }
        attested = attestation_store.attestations_for(conn, digests)
        parties = registry_store.authority_parties(conn)
        extensions = registry_store.rule_extensions(conn)
        dead_letters: list[DeadLetter] = []
        events: list[EventToStore] = []
        for pending in self.declarations:
            receipt, accepted = pending.receipt, pending.row.accepted
            assert accepted.declaration is not None  # only such events are pending
            receipt.declared, receipt.refused = False, None  # a retried store judges afresh
            content = accepted.declaration.content_digest()
            known = recorded.get(accepted.digest)
            why = authority.declaration_refusal(
                accepted.columns,
                pending.device.org_slug,
                attested.get(accepted.digest, []),
                parties,
                extensions=extensions,
            )
            refusal: RefusedItem | None = None
            if why is not None:  # judged first: a stranger's copy of a declaration is refused too
                refusal = RefusedItem(accepted.index, RejectCode.NOT_ENTITLED_TO_DECLARE, why)
            elif known is not None:
                if known != content:
                    refusal = _already_declared(pending)
            elif declaration_store.insert_declaration(
                conn, _to_store(pending, accepted.declaration.document)
            ):
                recorded[accepted.digest] = content
                events.append(pending.row)
            else:
                # Another ingest worker recorded one for this event meanwhile: compared with
                # it, as with one recorded before.
                raced = declaration_store.declarations_for(conn, [accepted.digest])
                recorded[accepted.digest] = _content_digest(raced[accepted.digest].declaration)
                if recorded[accepted.digest] != content:
                    refusal = _already_declared(pending)
            if refusal is not None:
                receipt.refused = refusal
                dead_letters.append(_dead_letter(pending.origin, refusal))
            else:
                receipt.declared = True
        return dead_letters, events

    def store_by(
        self, conn: Conn, behaviour: ErrorBehaviour, refused: Sequence[RefusedItem]
    ) -> Stored:
        """Store as GS1-Capture-Error-Behaviour says (HTTP capture), in the caller's
        transaction: `rollback` keeps nothing but the refusals when `refused` (capture's) or
        a declaration refused once judged is there; `proceed` keeps the good events."""
        if behaviour == "rollback" and refused:
            self.refusals_only().store(conn)
            return Stored(set(), list(refused), rolled_back=True)
        try:
            with conn.transaction():  # a savepoint: the events go, the refusals stay
                new = self.store(conn)
                if behaviour == "rollback" and self.late_refusals():
                    raise _RolledBack
        except _RolledBack:
            self.refusals_only().store(conn)
            return Stored(set(), [item for _, item in self.late_refusals()], rolled_back=True)
        return Stored(new, [*refused, *(item for _, item in self.late_refusals())])

    def refusals_only(self) -> CaptureBatch:
        """A batch of this one's dead letters alone, the refused declarations' included: what
        stays of a capture rolled back (HTTP `GS1-Capture-Error-Behaviour: rollback`)."""
        late = [
            _dead_letter(pending.origin, pending.receipt.refused)
            for pending in self.declarations
            if pending.receipt.refused is not None
        ]
        return CaptureBatch(dead_letters=[*self.dead_letters, *late])

    def late_refusals(self) -> list[tuple[str | None, RefusedItem]]:
        """The declarations `store` refused, with where their answer goes (MQTT: a topic)."""
        return [
            (receipt.reject_to, receipt.refused)
            for receipt in self.receipts
            if receipt.refused is not None
        ]

    def answers(self, new_digests: set[bytes]) -> list[Answer]:
        """Each accepted event's status, in arrival order: `accepted` for the copy that was
        stored, `duplicate` for every other, `error_declared` for a recorded declaration (a
        refused one is answered by `late_refusals`)."""
        unanswered = set(new_digests)
        answers = []
        for receipt in self.receipts:
            if receipt.refused is not None:
                continue
            status: Status
            if receipt.declared:
                status = "error_declared"
            elif receipt.digest in unanswered:
                unanswered.discard(receipt.digest)  # a second copy in this batch is a duplicate
                status = "accepted"
            else:
                status = "duplicate"
            answers.append(Answer(receipt.reply_to, receipt.index, receipt.hash_id, status))
        return answers


def _dead_letter(origin: Origin, refused: RefusedItem) -> DeadLetter:
    return DeadLetter(
        received_at=origin.received_at,
        topic=origin.topic,
        payload=origin.payload,
        item_index=refused.index,
        reason=refused.code.value,
        detail=refused.detail,
    )


def _already_declared(pending: PendingDeclaration) -> RefusedItem:
    accepted = pending.row.accepted
    return RefusedItem(
        accepted.index,
        RejectCode.ALREADY_DECLARED,
        f"{accepted.hash_id} was declared erroneous already, differently (the first stands)",
    )


def _content_digest(declaration: object) -> bytes:
    """As `Declaration.content_digest`, of a declaration read back from the store."""
    return hashlib.sha256(canonical_json(declaration)).digest()


def _to_store(pending: PendingDeclaration, document: str) -> DeclarationToStore:
    accepted, origin, device = pending.row.accepted, pending.origin, pending.device
    assert accepted.declaration is not None
    declaration = orjson.loads(document)
    device_id = device.device_id if origin.channel == "mqtt" else None
    record = DeclarationRecord(
        accepted.digest,
        device.org_slug,
        device_id,
        origin.api_user,
        origin.channel,
        origin.received_at,
        declaration,
    )
    return DeclarationToStore(
        event_hash=accepted.digest,
        org_id=device.org_id,
        device_id=device_id,
        api_user=origin.api_user,
        channel=origin.channel,
        received_at=origin.received_at,
        declaration_time=accepted.declaration.declaration_time,
        reason=accepted.declaration.reason,
        corrective_event_ids=accepted.declaration.corrective_event_ids,
        declaration=declaration,
        digest=record.digest(),
    )

"""Store what a capture accepted and refused, then answer each event: MQTT and HTTP alike.

The one path from a validated payload (epcis.capture) to stored rows and per-event answers.
The MQTT worker gathers many payloads into one batch and one transaction; HTTP capture stores a
batch of one payload. Either way the first copy of an event is `accepted` and any other copy,
in this batch or stored before, is a `duplicate`; every copy is recorded as an attestation
(records.attestation_store), so a later submission by the rightful party is on record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from epcis.capture import CaptureResult, DeviceKey, RefusedItem, capture
from records import attestation_store, event_store
from records.attestation_store import AttestationToStore
from records.db import Conn
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


@dataclass(slots=True)
class Answer:
    reply_to: str | None
    index: int
    hash_id: str
    status: Literal["accepted", "duplicate"]


@dataclass
class CaptureBatch:
    """Rows of one or more payloads, stored in one transaction, then answered event by event."""

    events: list[EventToStore] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    readings: list[ReadingToStore] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Every accepted copy, duplicates included: who submitted the event, through what, signed.
    attestations: list[AttestationToStore] = field(default_factory=list)

    def capture(
        self,
        origin: Origin,
        device: DeviceKey,
        *,
        max_payload_bytes: int,
        max_future_skew: timedelta,
        reply_to: str | None = None,
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
            self.events.append(
                EventToStore(
                    accepted, device.org_id, device.device_id, origin.topic, origin.received_at
                )
            )
            self.receipts.append(
                Receipt(reply_to, accepted.index, accepted.digest, accepted.hash_id)
            )
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
        self.dead_letters.append(
            DeadLetter(
                received_at=origin.received_at,
                topic=origin.topic,
                payload=origin.payload,
                item_index=refused.index,
                reason=refused.code.value,
                detail=refused.detail,
            )
        )

    def extend(self, other: CaptureBatch) -> None:
        self.events += other.events
        self.receipts += other.receipts
        self.readings += other.readings
        self.dead_letters += other.dead_letters
        self.attestations += other.attestations

    def store(self, conn: Conn) -> set[bytes]:
        """Write everything in the caller's transaction; the digests of the events that are new.

        The first copy of an event within the batch is the one stored; later copies are
        duplicates. Every copy is an attestation (one per party, channel and signedness).
        """
        seen: set[bytes] = set()
        unique = []
        for row in self.events:
            if row.accepted.digest not in seen:
                seen.add(row.accepted.digest)
                unique.append(row)
        new_digests = event_store.insert_events(conn, unique)
        attestation_store.insert_attestations(conn, self.attestations)
        event_store.insert_readings(conn, self.readings)
        event_store.insert_dead_letters(conn, self.dead_letters)
        return new_digests

    def answers(self, new_digests: set[bytes]) -> list[Answer]:
        """Each accepted event's status, in arrival order: `accepted` for the copy that was
        stored, `duplicate` for every other."""
        unanswered = set(new_digests)
        answers = []
        for receipt in self.receipts:
            if receipt.digest in unanswered:
                unanswered.discard(receipt.digest)  # a second copy in this batch is a duplicate
                status: Literal["accepted", "duplicate"] = "accepted"
            else:
                status = "duplicate"
            answers.append(Answer(receipt.reply_to, receipt.index, receipt.hash_id, status))
        return answers

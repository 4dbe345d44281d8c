"""The ingest worker: batches messages, stores them in one transaction, then answers and acks."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from epcis.capture import WHOLE_PAYLOAD, DeviceKey, RefusedItem
from epcis.rejects import RejectCode
from epcis.telemetry import parse_telemetry
from ingest.capture import CaptureBatch, Origin
from ingest.handover import Handed, Handover
from ingest.mqtt_link import Inbound
from ingest.topics import DeviceTopic, Kind, parse_topic, rejects_topic_for_unparsable
from records import registry_store
from records.db import Conn
from records.event_store import ReadingToStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class Link(Protocol):
    """What the worker needs of the broker connection (MqttLink in production)."""

    def ack(self, messages: Sequence[Inbound]) -> int: ...

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool: ...

    def sending_together(self) -> AbstractContextManager[None]: ...


class Stopping(Exception):
    """The worker was asked to stop while waiting for the database: nothing is acked."""


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int
    batch_max_wait: timedelta
    max_payload_bytes: int
    max_future_skew: timedelta
    receipt_qos: int = 0
    device_cache_ttl: timedelta = timedelta(seconds=30)
    # Messages waiting for a batch, at most (the batch being stored comes on top): the MQTT
    # thread waits beyond it. Sized like the Receive Maximum the worker asks of the broker.
    max_waiting: int = 4000


@dataclass
class _Outcome:
    """What one batch produced: rows to write, and the answers to send once they commit."""

    # The rows to store; each accepted event's receipt goes to its device's receipts topic.
    rows: CaptureBatch = field(default_factory=CaptureBatch)
    # Answers to refusals: (rejects topic, payload).
    rejects: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def merge(cls, outcomes: list[_Outcome]) -> _Outcome:
        merged = cls()
        for outcome in outcomes:
            merged.rows.extend(outcome.rows)
            merged.rejects += outcome.rejects
        return merged


class DeviceCache:
    """Registered devices, looked up in one query per batch for the ones not cached.

    Unknown devices are remembered only briefly, so a device registered a moment after its
    first (refused) message is accepted on its next one.
    """

    def __init__(self, ttl: timedelta, unknown_ttl: timedelta = timedelta(seconds=2)) -> None:
        self._ttl = ttl.total_seconds()
        self._unknown_ttl = unknown_ttl.total_seconds()
        # key -> (expires at, the device or None for "not registered")
        self._entries: dict[tuple[str, str], tuple[float, DeviceKey | None]] = {}
        self._version: int | None = None

    def resolve(
        self, conn: Conn, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], DeviceKey | None]:
        # A registration, rotation or revocation empties the cache: a revoked key must not be
        # honoured for the rest of a TTL. One primary-key read per batch.
        version = registry_store.device_registry_version(conn)
        if version != self._version:
            self._entries.clear()
            self._version = version
        now = time.monotonic()
        missing = {key for key in keys if self._entries.get(key, (0.0, None))[0] <= now}
        if missing:
            found = registry_store.find_devices(conn, missing)
            for key in missing:
                device = found.get(key)
                ttl = self._ttl if device is not None else self._unknown_ttl
                self._entries[key] = (now + ttl, device)
        return {key: self._entries[key][1] for key in keys}


class IngestWorker:
    """Turns delivered messages into stored events, receipts, rejects and dead letters.

    Order per batch: validate (no I/O) → one transaction → commit → receipts/rejects → acks.
    A crash anywhere before the ack makes the broker redeliver; the store's idempotence keeps
    each event once.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        link: Link,
        config: WorkerConfig,
        after_batch: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        # Called once each batch is answered and acked (the process's collector runs there).
        self._after_batch = after_batch
        self._link = link
        self._config = config
        # Bounded: the broker's Receive Maximum cannot be relied on to bound what ingest holds
        # (Mosquitto 2.0.11 sends many more unacknowledged messages than it allows), and an
        # unbounded hand-over grew with the backlog: +124% RSS in a 2-minute soak. When full,
        # the MQTT thread waits and stops reading its socket, so TCP flow control leaves the
        # backlog at the broker, which is there to keep it.
        self._inbox: Handover[Inbound] = Handover(config.max_waiting)
        self._devices = DeviceCache(config.device_cache_ttl)
        self.metrics: Counter[str] = Counter()
        self._stop = threading.Event()

    def deliver(self, message: Inbound) -> None:
        """Called on the MQTT network thread: hand over, waiting while `max_waiting` wait.

        Once stopping, messages are no longer taken: left unacked, the broker redelivers them.
        """
        if self._inbox.put(message) is Handed.WAITED:
            self.metrics["handover_waits"] += 1  # only this thread writes this key

    def request_stop(self) -> None:
        """Ask the worker to stop: the MQTT thread stops handing over messages, the batch
        thread finishes what is in hand. Safe in a signal handler (no lock is taken that the
        interrupted thread may hold)."""
        self._stop.set()
        self._inbox.close()

    def run(self) -> None:
        """Process batches until asked to stop, then finish what is in hand."""
        try:
            self._run()
        finally:
            self.request_stop()  # however run ends, the MQTT thread must not wait on a full inbox

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                try:
                    self._process(batch)
                except Stopping:
                    log.warning(
                        "stopped while the database was unavailable: %d messages left"
                        " unacked for redelivery",
                        len(batch),
                    )
                    return
                del batch  # its messages are not the collector's to walk
                self._after_batch()
        # Stop taking messages: what already arrived is committed and acked; anything later
        # stays unacked at the broker and is redelivered to the next worker.
        self._inbox.close()  # again, if request_stop came from another thread: it is idempotent
        leftover = self._drain()
        if leftover:
            try:
                self._process(leftover)
            except Stopping:
                log.warning(
                    "database unavailable at shutdown: %d messages left unacked", len(leftover)
                )

    def _next_batch(self) -> list[Inbound]:
        return self._inbox.take(
            self._config.batch_size, self._config.batch_max_wait.total_seconds(), 0.2
        )

    def _drain(self) -> list[Inbound]:
        return self._inbox.take_all()

    def _process(self, batch: list[Inbound]) -> None:
        topics = [parse_topic(message.topic) for message in batch]
        wanted = {(topic.org, topic.device) for topic in topics if topic is not None}
        devices = self._with_db(lambda conn: self._devices.resolve(conn, wanted))
        unknown_orgs = self._unknown_orgs(devices)
        outcomes = []
        for message, topic in zip(batch, topics, strict=True):
            outcome = _Outcome()
            self._validate(message, topic, devices, unknown_orgs, outcome)
            outcomes.append(outcome)
        merged = _Outcome.merge(outcomes)
        # The batch's answers and acks wake the MQTT network thread once, not once per packet.
        with self._link.sending_together():
            try:
                new_digests = self._with_db(merged.rows.store)
                self._answer(merged, new_digests)
            except psycopg.Error as exc:
                # Something in the batch the database refuses (not an outage: those are retried
                # above). One message at a time, so one poison message cannot block the stream.
                log.error("batch refused by the database (%s); storing message by message", exc)
                for message, outcome in zip(batch, outcomes, strict=True):
                    self._write_alone(message, outcome)
            self._link.ack(batch)
        self.metrics["messages"] += len(batch)
        self.metrics["batches"] += 1

    def _write_alone(self, message: Inbound, outcome: _Outcome) -> None:
        try:
            new_digests = self._with_db(outcome.rows.store)
        except psycopg.Error as exc:
            refused = _Outcome()
            topic = parse_topic(message.topic)
            self._refuse(
                message,
                RefusedItem(WHOLE_PAYLOAD, RejectCode.STORAGE_REFUSED, type(exc).__name__),
                topic.rejects if topic is not None else None,
                refused,
            )
            # The dead letter keeps the payload as bytes, which the database always accepts.
            new_digests = self._with_db(refused.rows.store)
            outcome = refused
        self._answer(outcome, new_digests)

    def _unknown_orgs(self, devices: dict[tuple[str, str], DeviceKey | None]) -> set[str]:
        missing = {org for (org, _), device in devices.items() if device is None}
        if not missing:
            return set()
        known = self._with_db(lambda conn: registry_store.known_orgs(conn, missing))
        return missing - known

    def _validate(
        self,
        message: Inbound,
        topic: DeviceTopic | None,
        devices: dict[tuple[str, str], DeviceKey | None],
        unknown_orgs: set[str],
        outcome: _Outcome,
    ) -> None:
        def refuse_whole(code: RejectCode, detail: str, reply_to: str | None) -> None:
            self._refuse(message, RefusedItem(WHOLE_PAYLOAD, code, detail), reply_to, outcome)

        if topic is None:
            refuse_whole(
                RejectCode.INVALID_TOPIC,
                "topic must be tf/{org}/{device}/events|telemetry with [a-z0-9-] names",
                rejects_topic_for_unparsable(message.topic),
            )
            return
        device = devices.get((topic.org, topic.device))
        if device is None:
            if topic.org in unknown_orgs:
                refuse_whole(
                    RejectCode.UNKNOWN_ORG, f"no organisation {topic.org!r}", topic.rejects
                )
            else:
                refuse_whole(
                    RejectCode.UNKNOWN_DEVICE,
                    f"no device {topic.device!r} registered for {topic.org!r}",
                    topic.rejects,
                )
            return
        if topic.kind is Kind.TELEMETRY:
            telemetry = parse_telemetry(
                message.payload,
                now=message.received_at,
                max_payload_bytes=self._config.max_payload_bytes,
                max_future_skew=self._config.max_future_skew,
                device=device,
            )
            outcome.rows.readings.extend(
                ReadingToStore(reading, device.org_id, device.device_id, message.received_at)
                for reading in telemetry.readings
            )
            for refused in telemetry.refused:
                self._refuse(message, refused, topic.rejects, outcome)
            return
        result = outcome.rows.capture(
            _origin(message),
            device,
            max_payload_bytes=self._config.max_payload_bytes,
            max_future_skew=self._config.max_future_skew,
            reply_to=topic.receipts,
            reject_to=topic.rejects,
        )
        for refused in result.refused:
            self._answer_refusal(refused, topic.rejects, outcome)

    def _refuse(
        self, message: Inbound, refused: RefusedItem, reply_to: str | None, outcome: _Outcome
    ) -> None:
        """A refusal capture did not make (topic, device, telemetry, storage): kept and answered."""
        outcome.rows.refuse(_origin(message), refused)
        self._answer_refusal(refused, reply_to, outcome)

    def _answer_refusal(
        self, refused: RefusedItem, reply_to: str | None, outcome: _Outcome
    ) -> None:
        self.metrics[f"rejected.{refused.code.value}"] += 1
        if reply_to is not None:
            outcome.rejects.append((reply_to, _refusal_json(refused)))

    def _answer(self, outcome: _Outcome, new_digests: set[bytes]) -> None:
        for answer in outcome.rows.answers(new_digests):
            self.metrics[_COUNTED_AS[answer.status]] += 1
            assert answer.reply_to is not None  # every MQTT receipt has its topic
            self._answer_one(
                answer.reply_to,
                orjson.dumps({"event_hash": answer.hash_id, "status": answer.status}),
            )
        for reply_to, payload in outcome.rejects:
            self._answer_one(reply_to, payload)
        # Declarations refused once judged against the store (who may declare, what was).
        for reject_to, refused in outcome.rows.late_refusals():
            self.metrics[f"rejected.{refused.code.value}"] += 1
            if reject_to is not None:
                self._answer_one(reject_to, _refusal_json(refused))
        self.metrics["readings"] += len(outcome.rows.readings)

    def _answer_one(self, topic: str, payload: bytes) -> None:
        if not self._link.publish(topic, payload, qos=self._config.receipt_qos):
            self.metrics["answers_dropped"] += 1

    def _with_db(self, work: Callable[[Conn], T]) -> T:
        """Run `work` in one transaction, retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return work(conn)
            except psycopg.OperationalError as exc:
                if self._stop.is_set():
                    raise Stopping from exc
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


# The metric each answer is counted in.
_COUNTED_AS = {"accepted": "stored", "duplicate": "duplicates", "error_declared": "declarations"}


def _refusal_json(refused: RefusedItem) -> bytes:
    """A refusal as `.../rejects` carries it: reason, detail and (for one event) its index."""
    answer: dict[str, object] = {"reason": refused.code.value, "detail": refused.detail}
    if refused.index != WHOLE_PAYLOAD:
        answer["index"] = refused.index
    return orjson.dumps(answer)


def _origin(message: Inbound) -> Origin:
    return Origin(topic=message.topic, received_at=message.received_at, payload=message.payload)

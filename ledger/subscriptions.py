"""Subscriptions to named queries, delivered from the event log by position.

Why positions and not `ingest_seq`: identity values are taken at insert, and concurrent ingest
transactions commit in any order, so "every event after seq X", read at one instant, can miss
a lower seq committed a moment later. Log positions (log_entries.log_index) are given by the
anchor leader alone, one transaction at a time, each after the last: once a position is
visible, every earlier one is. A subscriber at position P has seen (or passed over) exactly the
positions up to P, and asking for those after P later misses nothing. The price: an event is
delivered once the anchor worker positioned it (it does so within ~50 ms, with or without the
chain).

The webhook worker (`tracefin subscription-worker`) keeps each subscription's position in its
row, advanced only after the receiver answered 2xx: killed at any moment, it sends the same
positions again (at least once; the receiver recognises a repeat by eventID).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from epcis.query import MAX_PER_PAGE, EventFilter, QueryParameterError, parse_event_query
from epcis.subscriptions import (
    SIGNATURE_HEADER,
    ScheduleRefused,
    named_results,
    next_time,
    parse_schedule,
    signature,
)
from ledger import log_store
from records import subscription_store
from records.db import Conn
from records.event_query import EventPage, query_events
from records.subscription_store import Subscription

log = logging.getLogger(__name__)

# Migration 0006's triggers notify log_store.PAGE_CHANGES_CHANNEL with this payload (the table's
# name) when positions are given.
LOG_PAYLOAD = "log_entries"

# An EventPage's matching events as a query document (the API's rendering, injected).
Render = Callable[[EventPage], dict[str, Any]]
# POSTs a body with headers to a URL; raises unless the receiver answered 2xx.
Sender = Callable[[str, bytes, Mapping[str, str]], None]


@dataclass(frozen=True)
class Batch:
    """The matching events among the log positions after a subscriber's position, in log
    order, and the last position examined (the subscriber's position once delivered)."""

    page: EventPage
    position: int
    # The batch took as many positions as it may: more may be waiting.
    full: bool


def scope_of(org_id: int, role: str) -> int | None:
    """Whose events a subscriber sees: the regulator everyone's, an enterprise its own."""
    return None if role == "regulator" else org_id


def next_batch(
    conn: Conn, query: EventFilter, scope: int | None, position: int, limit: int = MAX_PER_PAGE
) -> Batch | None:
    """The next batch after `position`; None when no position follows it yet."""
    entries = subscription_store.log_after(conn, position, limit)
    if not entries:
        return None
    order = {bytes(entry.event_hash): entry.log_index for entry in entries}
    if query.event_ids is None and query.event_digests is None:
        # The positions' events, narrowed by the query: EQ_eventID's digests are the filter's
        # own way of naming events (the query asked for no events by id).
        narrowed = replace(
            query,
            event_ids=frozenset(),
            event_digests=frozenset(order),
            per_page=len(entries),
            after=None,
        )
        page = query_events(conn, narrowed, scope)
    else:
        # The query names its events: they are few (100 values at most); keep those here.
        page = query_events(conn, replace(query, per_page=MAX_PER_PAGE, after=None), scope)
    keep = sorted(
        (order[digest], index) for index, digest in enumerate(page.digests) if digest in order
    )
    picked = [index for _, index in keep]
    return Batch(page.picked(picked), entries[-1].log_index, len(entries) >= limit)


def start_position(conn: Conn, initial_record_time: datetime | None) -> int:
    """Where a new subscriber starts: before the first event recorded since its
    initialRecordTime, or (without one) at the log's end: the events captured from now on."""
    if initial_record_time is not None:
        return subscription_store.position_before_recorded(conn, initial_record_time)
    return subscription_store.log_end(conn)


@dataclass(frozen=True)
class DeliveryConfig:
    # How long a claimed subscription is not claimed again: longer than one send takes (the
    # sender's timeout), short enough that a worker killed mid-send delays it only this much.
    lease: timedelta = timedelta(seconds=20)
    # Backoff after the n-th failure in a row: 2^n seconds, at most this.
    max_backoff: timedelta = timedelta(minutes=10)
    # A subscription failing longer than this is suspended: no more tries.
    suspend_after: timedelta = timedelta(hours=24)
    # A subscription with nothing new is looked at again after this (its wake-up is NOTIFY).
    idle_recheck: timedelta = timedelta(seconds=1)
    # Subscriptions sent to at once: a slow or dead receiver holds one sender, not the others.
    senders: int = 8
    # Log positions one delivery covers, at most: bounds a delivery's body.
    batch_size: int = 100


def backoff(attempts: int, most: timedelta) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), most)


class DeliveryWorker:
    """Delivers every due webhook subscription's new matching events, until asked to stop."""

    def __init__(
        self, database_url: str, render: Render, send: Sender, config: DeliveryConfig
    ) -> None:
        self._database_url = database_url
        self._render = render
        self._send = send
        self._config = config
        self._stop = threading.Event()
        self.deliveries = 0

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        with (
            ThreadPoolExecutor(self._config.senders, thread_name_prefix="webhook") as senders,
            ConnectionPool(
                self._database_url,
                min_size=1,
                max_size=self._config.senders + 1,
                kwargs={"autocommit": True},
            ) as pool,
        ):
            while not self._stop.is_set():
                try:
                    with psycopg.connect(self._database_url, autocommit=True) as listener:
                        log_store.listen_for_page_changes(listener)
                        self._loop(listener, pool, senders)
                except psycopg.OperationalError as exc:
                    log.warning("subscriptions: database unavailable (%s); retrying", exc)
                    self._stop.wait(1.0)

    def _loop(self, listener: Conn, pool: ConnectionPool, senders: ThreadPoolExecutor) -> None:
        """Claim as many due subscriptions as there are free senders, as soon as there are:
        a receiver that hangs until its timeout holds its own sender only, never a round of
        the others'."""
        in_flight: set[Future[int]] = set()
        try:
            while not self._stop.is_set():
                finished = {future for future in in_flight if future.done()}
                for future in finished:
                    self.deliveries += future.result()
                in_flight -= finished
                free = self._config.senders - len(in_flight)
                if free > 0:
                    now = datetime.now(UTC)
                    with pool.connection() as conn:
                        claimed = subscription_store.claim_due(
                            conn, now, now + self._config.lease, free
                        )
                    for subscription in claimed:
                        in_flight.add(senders.submit(self._deliver_one, pool, subscription))
                    if claimed:
                        continue
                # Woken when the anchor worker gives positions (then every stream that is not
                # failing is due at once); else polled every second, or sooner while sending.
                wait = 0.1 if in_flight else self._config.idle_recheck.total_seconds()
                woken = False
                for _ in listener.notifies(timeout=wait):
                    woken = True
                    break
                if woken:
                    with pool.connection() as conn:
                        subscription_store.wake_idle(conn, datetime.now(UTC))
        finally:
            wait_for(in_flight)

    def _deliver_one(self, pool: ConnectionPool, subscription: Subscription) -> int:
        """Send one subscription's next batch; 1 if a document was delivered."""
        try:
            with pool.connection() as conn:
                return deliver(conn, subscription, self._render, self._send, self._config)
        except Exception:  # one subscription's trouble is its own: the others go on
            log.exception("subscription %s: delivery failed", subscription.subscription_id)
            return 0


def deliver(
    conn: Conn, subscription: Subscription, render: Render, send: Sender, config: DeliveryConfig
) -> int:
    """Send a claimed subscription's next batch, and record the outcome; 1 if delivered.

    A stream sends whenever the log has new positions; a schedule at its times sends what
    the log gained since (batch after batch, at once, while they are full), or with
    reportIfEmpty an empty document when nothing matched, then waits for its next time."""
    now = datetime.now(UTC)
    named = subscription_store.query_by_id(conn, subscription.query_id)
    if named is None:  # deleted meanwhile, and the subscription with it
        return 0
    try:
        query = parse_event_query(named.pairs)
        schedule = (
            parse_schedule(subscription.schedule) if subscription.schedule is not None else None
        )
    except (QueryParameterError, ScheduleRefused) as exc:  # checked when stored; rules changed
        subscription_store.failed(conn, subscription.id, str(exc), now, now, now)
        return 0
    batch = next_batch(
        conn,
        query,
        scope_of(subscription.org_id, subscription.org_role),
        subscription.position,
        config.batch_size,
    )

    def following(full: bool) -> datetime:
        """When the subscription is due next, after a batch (`full`: more may wait)."""
        if full:
            return now
        if schedule is None:
            return now + config.idle_recheck
        return next_time(schedule, now) or now + timedelta(days=365)

    if batch is None and not (schedule is not None and subscription.report_if_empty):
        subscription_store.release(conn, subscription.id, following(False))
        return 0
    if batch is not None and not batch.page.events and not subscription.report_if_empty:
        # Nothing of these positions matches: passed over, nothing to send.
        subscription_store.delivered(
            conn,
            subscription.id,
            subscription.position,
            batch.position,
            False,
            now,
            following(batch.full),
        )
        return 0
    page = batch.page if batch is not None else EventPage([], None)
    position = batch.position if batch is not None else subscription.position
    document = named_results(render(page), named.name, str(subscription.subscription_id), position)
    body = orjson.dumps(document)
    headers = {"Content-Type": "application/json", "GS1-EPCIS-Version": "2.0.0"}
    if subscription.signature_token:
        headers[SIGNATURE_HEADER] = signature(subscription.signature_token, body)
    try:
        send(subscription.dest, body, headers)
    except Exception as exc:  # the receiver's failure, whatever it is: try again later
        error = f"{type(exc).__name__}: {exc}"
        suspended = subscription_store.failed(
            conn,
            subscription.id,
            error,
            now,
            now + backoff(subscription.attempts + 1, config.max_backoff),
            now - config.suspend_after,
        )
        log.warning(
            "subscription %s: %s not reached (%s)%s",
            subscription.subscription_id,
            subscription.dest,
            error,
            "; suspended" if suspended else "",
        )
        return 0
    subscription_store.delivered(
        conn,
        subscription.id,
        subscription.position,
        position,
        True,
        now,
        following(batch is not None and batch.full),
    )
    return 1

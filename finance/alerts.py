"""Alerts to financiers: the dispatcher, at least once per channel, with backoff.

The alerts themselves are an outbox written by database triggers in the transaction of the fact
they report (migration 0023). This follows the outbox: each due delivery is handed to the
channel's sender — MQTT (`tf/{financier}/alerts`, QoS 1) and, where the financier registered
one, its webhook — with the body `{id, kind, line, lot, time, detail}` and the headers
`X-Tracefin-Alert-Id` and `X-Tracefin-Signature: sha256=<HMAC-SHA256 of the body under the
webhook's secret>` (webhooks; MQTT is authenticated by the broker). A failure is retried after
2^attempts seconds, at most an hour. A receiver may see an alert more than once: the id says
which. The senders are the composition root's (the HTTP and MQTT edges).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import orjson

from finance.store import alerts as alert_store
from finance.store.alerts import DueDelivery
from records.db import Conn, run_connected

log = logging.getLogger(__name__)

# Sends one body to a target (a URL, a topic) with headers; raises on any failure.
Sender = Callable[[str, bytes, Mapping[str, str]], None]
MAX_BACKOFF = timedelta(hours=1)
# A claimed delivery is not due again for this long: long enough for one send (the senders time
# out within 5 s), short enough that a dispatcher killed mid-send delays it only this much.
CLAIM = timedelta(seconds=60)


def body(due: DueDelivery) -> bytes:
    """What a webhook receives: the alert as `GET /v1/alerts` lists it."""
    return orjson.dumps(
        {
            "id": due.alert_id,
            "kind": due.kind,
            "line": due.line_id,
            "lot": due.lot_uri,
            "time": due.at.isoformat(),
            "detail": due.detail,
        }
    )


def signature(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a delivery is tried again."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


def deliver_due(conn: Conn, senders: Mapping[str, Sender], now: datetime, limit: int = 10) -> int:
    """Send the deliveries due at `now` on the channels there is a sender for; returns how
    many were delivered.

    The deliveries are claimed first (not due again for `CLAIM`) in a transaction of their own
    and sent with none open: a slow receiver holds no row lock and no transaction, and a
    dispatcher killed mid-send leaves the claim to expire, so the alert is still delivered (at
    least once)."""
    with conn.transaction():
        claimed = alert_store.due_deliveries(conn, sorted(senders), now, limit)
        alert_store.claim(conn, [(due.alert_id, due.channel) for due in claimed], now + CLAIM)
    delivered = 0
    for due in claimed:
        payload = body(due)
        headers = {"Content-Type": "application/json", "X-Tracefin-Alert-Id": str(due.alert_id)}
        if due.channel == "webhook":
            headers["X-Tracefin-Signature"] = signature(due.secret, payload)
        try:
            senders[due.channel](due.target, payload, headers)
        except Exception as exc:  # any failure of the receiver: try again later
            error = f"{type(exc).__name__}: {exc}"
            retry_at = now + backoff(due.attempts + 1)
            with conn.transaction():
                alert_store.mark_failed(conn, due.alert_id, due.channel, error, retry_at)
            log.warning(
                "alert %d not delivered on %s to %s: %s",
                due.alert_id,
                due.channel,
                due.target,
                error,
            )
            continue
        with conn.transaction():
            alert_store.mark_delivered(conn, due.alert_id, due.channel)
        delivered += 1
    return delivered


class AlertDispatcher:
    """Delivers due alerts until asked to stop (a thread of the finance process)."""

    def __init__(self, database_url: str, senders: Mapping[str, Sender], every: timedelta) -> None:
        self._database_url = database_url
        self._senders = senders
        self._every = every
        self._stop = threading.Event()
        self.delivered = 0

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        run_connected(self._database_url, self._stop, self._loop, "alerts")

    def _loop(self, conn: Conn) -> None:
        while not self._stop.is_set():
            self.delivered += deliver_due(conn, self._senders, datetime.now(UTC))
            self._stop.wait(self._every.total_seconds())

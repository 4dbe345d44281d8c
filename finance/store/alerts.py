"""Alerts to financiers as stored: the outbox the triggers write, webhooks and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from records.db import Conn


@dataclass(frozen=True)
class AlertRow:
    """One alert: `kind` flag_raised, flag_cleared, margin_call_<state> or decision."""

    id: int
    kind: str
    line_id: int | None
    lot_uri: str | None
    at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class DueDelivery:
    """An alert whose delivery on `channel` is due: where to (the webhook's URL, or the MQTT
    topic `tf/{financier}/alerts`) and the secret to sign with (webhooks)."""

    alert_id: int
    channel: str
    attempts: int
    target: str
    secret: str
    kind: str
    line_id: int | None
    lot_uri: str | None
    at: datetime
    detail: dict[str, Any]


def alerts_after(conn: Conn, financier_org_id: int, after: int, limit: int) -> list[AlertRow]:
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        return cur.execute(
            "SELECT id, kind, line_id, lot_uri, at, detail FROM alerts"
            " WHERE financier_org_id = %s AND id > %s ORDER BY id LIMIT %s",
            (financier_org_id, after, limit),
        ).fetchall()


def set_webhook(conn: Conn, financier_org_id: int, url: str, secret: str) -> None:
    conn.execute(
        "INSERT INTO alert_webhooks (financier_org_id, url, secret) VALUES (%s, %s, %s)"
        " ON CONFLICT (financier_org_id) DO UPDATE SET url = excluded.url,"
        " secret = excluded.secret, set_at = now()",
        (financier_org_id, url, secret),
    )


def due_deliveries(
    conn: Conn, channels: Sequence[str], now: datetime, limit: int
) -> list[DueDelivery]:
    """Deliveries on `channels` due at `now`, row-locked (another dispatcher skips them) until
    commit, by which time `claim` has made them not due. A webhook delivery goes where the
    webhook points now."""
    with conn.cursor(row_factory=class_row(DueDelivery)) as cur:
        return cur.execute(
            "SELECT d.alert_id, d.channel, d.attempts,"
            " CASE d.channel WHEN 'webhook' THEN w.url ELSE 'tf/' || o.slug || '/alerts' END"
            " AS target, coalesce(w.secret, '') AS secret,"
            " a.kind, a.line_id, a.lot_uri, a.at, a.detail"
            " FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
            " JOIN orgs o ON o.id = a.financier_org_id"
            " LEFT JOIN alert_webhooks w ON w.financier_org_id = a.financier_org_id"
            " WHERE d.delivered_at IS NULL AND d.next_at <= %s AND d.channel = ANY(%s)"
            " AND (d.channel <> 'webhook' OR w.url IS NOT NULL)"
            " ORDER BY d.next_at, d.alert_id LIMIT %s FOR UPDATE OF d SKIP LOCKED",
            (now, list(channels), limit),
        ).fetchall()


def claim(conn: Conn, deliveries: Sequence[tuple[int, str]], until: datetime) -> None:
    """Deliveries being sent: not due again before `until` (unless marked sooner)."""
    if deliveries:
        conn.cursor().executemany(
            "UPDATE alert_deliveries SET next_at = %s WHERE alert_id = %s AND channel = %s",
            [(until, alert_id, channel) for alert_id, channel in deliveries],
        )


def mark_delivered(conn: Conn, alert_id: int, channel: str) -> None:
    conn.execute(
        "UPDATE alert_deliveries SET delivered_at = now(), attempts = attempts + 1,"
        " last_error = NULL WHERE alert_id = %s AND channel = %s",
        (alert_id, channel),
    )


def mark_failed(conn: Conn, alert_id: int, channel: str, error: str, next_at: datetime) -> None:
    conn.execute(
        "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = %s, next_at = %s"
        " WHERE alert_id = %s AND channel = %s",
        (error[:500], next_at, alert_id, channel),
    )

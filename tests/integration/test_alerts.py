"""Alerts pushed to financiers (issue 14): the outbox, the cursor, and webhook deliveries.

Over HTTP, real PostgreSQL and a real chain (the API world), with a real HTTP receiver on
127.0.0.1 that fails its first answer: the alert is retried after its backoff and then
delivered, signed with the webhook's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from psycopg.pq import TransactionStatus

from finance.alerts import CLAIM, backoff, deliver_due
from finance.store import credit
from ingest.mqtt_link import new_client
from tests.support.api import Api
from tests.support.world import GTIN, LOT_URI
from tracefin.processes.finance import MqttAlerts, webhook_sender

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook endpoint: answers 500 to the first `failures` posts, then 204 (or a redirect
    to `redirect`, when set)."""

    def __init__(self, failures: int, redirect: str | None = None) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                failing = receiver.failures > 0
                receiver.failures -= 1
                if redirect is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect)
                else:
                    self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tracefin"


@contextmanager
def serving(made: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver(failures=1)) as made:
        yield made


def alerts(api: Api, who: str = "bank", after: int = 0) -> dict[str, Any]:
    answer = api.get("/v1/alerts", who, params={"after": after})
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def test_a_flag_on_pledged_goods_is_an_alert_read_by_cursor_and_pushed_signed(
    world: Api, receiver: Receiver
) -> None:
    start = alerts(world)["next"]
    hook = world.call("PUT", "/v1/alerts/webhook", "bank", json={"url": receiver.url})
    assert hook.status_code == 200, hook.text
    secret = hook.json()["secret"]
    # The seeded world's lot 0 is pledged to `bank`: a flag on it is the bank's alert.
    credit.raise_flag(
        world.conn, "disputed_movement", "a claim nobody entitled made", lot_uri=LOT_URI
    )
    page = alerts(world, after=start)
    [alert] = page["items"]
    assert (alert["kind"], alert["lot"], alert["detail"]["flag"]) == (
        "flag_raised",
        LOT_URI,
        "disputed_movement",
    )
    assert alerts(world, after=page["next"])["items"] == []  # the cursor moves on
    assert alerts(world, "other-bank")["items"] == []  # nobody else's
    assert world.get("/v1/alerts", "maker").status_code == 403

    # Pushed at least once: the receiver fails the first post, the retry comes after backoff.
    now = datetime.now(UTC)
    webhook = {"webhook": webhook_sender(private_hosts=True)}  # the receiver is on 127.0.0.1
    assert deliver_due(world.conn, webhook, now) == 0
    assert deliver_due(world.conn, webhook, now + timedelta(milliseconds=100)) == 0  # not yet
    assert deliver_due(world.conn, webhook, now + backoff(1)) == 1
    assert deliver_due(world.conn, webhook, now + timedelta(hours=2)) == 0  # delivered once
    assert len(receiver.received) == 2
    headers, body = receiver.received[-1]
    assert orjson.loads(body)["id"] == alert["id"]
    assert headers["X-Tracefin-Alert-Id"] == str(alert["id"])
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Tracefin-Signature"] == expected


def test_alerts_are_published_on_the_financiers_topic(world: Api, mqtt_url: str) -> None:
    """On a private broker: the finance process's MQTT sender publishes each alert, QoS 1, on
    tf/{financier}/alerts, once."""
    received: list[dict[str, Any]] = []
    subscribed = threading.Event()
    client, address = new_client(mqtt_url, f"test-bank-{secrets.token_hex(4)}")
    client.on_message = lambda c, u, msg: received.append(orjson.loads(msg.payload))
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe("tf/bank/alerts", qos=1)
    client.loop_start()
    sender = MqttAlerts(mqtt_url, f"test-alerts-{secrets.token_hex(4)}")
    try:
        assert subscribed.wait(10)
        start = alerts(world)["next"]
        credit.raise_flag(world.conn, "disputed_movement", "nobody entitled", lot_uri=LOT_URI)
        [alert] = alerts(world, after=start)["items"]
        # Until the sender has connected: a failed try is due again within an hour (backoff).
        now, delivered = datetime.now(UTC), 0
        for attempt in range(1, 100):
            delivered = deliver_due(world.conn, {"mqtt": sender}, now + timedelta(hours=attempt))
            if delivered:
                break
            time.sleep(0.1)
        assert delivered >= 1  # this alert, and any the seeded world made before it
        assert deliver_due(world.conn, {"mqtt": sender}, now + timedelta(days=30)) == 0
        deadline = time.monotonic() + 10
        while not any(m["id"] == alert["id"] for m in received) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["kind"] for m in received if m["id"] == alert["id"]] == ["flag_raised"]
    finally:
        sender.close()
        client.disconnect()
        client.loop_stop()


def test_margin_calls_and_decisions_are_alerts_too(world: Api) -> None:
    start = alerts(world)["next"]
    world.conn.execute(
        "UPDATE lots SET custody = 'warehouse', location = 'https://id.gs1.org/414/0614141000012'"
    )
    decided = world.call(
        "POST",
        "/v1/applications",
        "maker",
        json={"financier": "bank", "lot": LOT_URI, "amount": "1.00"},
    )
    assert decided.status_code == 200, decided.text
    offer = decided.json()["offer_id"]
    assert world.call("POST", f"/v1/offers/{offer}/accept", "maker").status_code == 200
    cut = world.call(
        "PUT", f"/v1/prices/{GTIN}", "bank", json={"unit_price": "0.01", "currency": "CNY"}
    )
    assert cut.status_code == 200, cut.text
    items = alerts(world, after=start)["items"]
    assert [item["kind"] for item in items] == ["decision", "margin_call_open"]
    assert items[1]["detail"]["state"] == "open"
    assert items[1]["detail"]["amount_minor"] > 0


def test_a_webhook_is_an_http_url_set_by_a_financier(world: Api) -> None:
    for url in ("file:///etc/passwd", "http://\u00b6]B~", "http://host:99999/x", "http:// x"):
        bad = world.call("PUT", "/v1/alerts/webhook", "bank", json={"url": url})
        assert bad.status_code == 422, (url, bad.text)
    maker = world.call("PUT", "/v1/alerts/webhook", "maker", json={"url": "http://127.0.0.1/x"})
    assert maker.status_code == 403


def post(url: str) -> None:
    webhook_sender(private_hosts=False)(url, b"{}", {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.1", "[::1]", "0.0.0.0"],
)
def test_a_webhook_into_the_operators_network_is_refused_before_anything_is_sent(
    host: str,
) -> None:
    """As production runs it (no private hosts): a financier's webhook pointing at loopback,
    a private network or a cloud metadata address is refused without a connection."""
    with serving(Receiver(failures=0)) as made:
        port = made.server.server_address[1]
        with pytest.raises(PermissionError, match="not a public address"):
            post(f"http://{host}:{port}/hooks")
        assert made.received == []


def test_a_webhook_redirect_is_not_followed() -> None:
    with (
        serving(Receiver(failures=0)) as target,
        serving(Receiver(failures=0, redirect=target.url)) as redirecting,
    ):
        with pytest.raises(urllib.error.HTTPError, match="not followed"):
            webhook_sender(private_hosts=True)(redirecting.url, b"{}", {})
        assert (len(redirecting.received), target.received) == (1, [])


def test_a_delivery_is_sent_with_no_transaction_open_and_survives_a_dispatcher_killed_mid_send(
    world: Api,
) -> None:
    """The dispatcher claims due deliveries, commits, then sends: a slow receiver holds no lock.
    Killed during the send, the claim expires and the alert is delivered after all."""
    start = alerts(world)["next"]
    credit.raise_flag(world.conn, "disputed_movement", "nobody entitled", lot_uri=LOT_URI)
    [alert] = alerts(world, after=start)["items"]
    world.conn.execute(
        "UPDATE alert_deliveries SET delivered_at = now() WHERE alert_id <> %s", (alert["id"],)
    )
    states: list[object] = []

    def dies(target: str, body: bytes, headers: Mapping[str, str]) -> None:
        states.append(world.conn.info.transaction_status)
        raise SystemExit("killed mid-send")

    now = datetime.now(UTC)
    with pytest.raises(SystemExit):
        deliver_due(world.conn, {"mqtt": dies}, now)
    assert states == [TransactionStatus.IDLE]
    sent: list[int] = []

    def works(target: str, body: bytes, headers: Mapping[str, str]) -> None:
        sent.append(orjson.loads(body)["id"])

    assert deliver_due(world.conn, {"mqtt": works}, now + timedelta(seconds=1)) == 0  # claimed
    assert deliver_due(world.conn, {"mqtt": works}, now + CLAIM + timedelta(seconds=1)) == 1
    assert sent == [alert["id"]]

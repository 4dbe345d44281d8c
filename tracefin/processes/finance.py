"""Composition root of the `tracefin finance` process: settings -> monitoring worker, signals."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from http.client import HTTPMessage
from typing import IO
from urllib.parse import urlsplit

from finance.alerts import AlertDispatcher, Sender
from finance.store.journal import Journal
from finance.worker import FinanceConfig, FinanceWorker
from ingest.mqtt_link import new_client
from tracefin.process import collect_for_batches, freeze_startup_heap, stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_finance(settings: Settings) -> None:
    """Follow the event log until SIGTERM/SIGINT (the chunk in hand commits or rolls back)."""
    if settings.database_url is None:
        raise SystemExit("tracefin finance needs TRACEFIN_DATABASE_URL")
    journal = Journal(settings.journal_seal_key())
    worker = FinanceWorker(settings.database_url, FinanceConfig(), journal)
    collect_for_batches()  # a chunk holds thousands of decoded event bodies

    senders: dict[str, Sender] = {"webhook": webhook_sender(settings.webhook_private_hosts())}
    mqtt_alerts = None
    if settings.alerts_mqtt_url is not None:
        mqtt_alerts = MqttAlerts(settings.alerts_mqtt_url, "tracefin-finance-alerts")
        senders["mqtt"] = mqtt_alerts
    dispatcher = AlertDispatcher(settings.database_url, senders, timedelta(seconds=1))
    alerts = threading.Thread(target=dispatcher.run, name="alerts", daemon=True)

    def stop() -> None:
        dispatcher.request_stop()
        worker.request_stop()

    stop_on_signals(stop, "stopping after the chunk in hand")
    freeze_startup_heap()

    log.info("finance worker running")
    alerts.start()
    worker.run()
    alerts.join(timeout=10)
    if mqtt_alerts is not None:
        mqtt_alerts.close()
    log.info(
        "finance worker stopped after %d log positions (%d alerts delivered)",
        worker.applied,
        dispatcher.delivered,
    )


class MqttAlerts:
    """Publishes alerts on the broker, QoS 1: a sender for the alert dispatcher (a delivery
    counts once the broker acknowledged it)."""

    def __init__(self, url: str, client_id: str) -> None:
        self._client, address = new_client(url, client_id)
        self._client.connect_async(address.host, address.port)
        self._client.loop_start()

    def __call__(self, topic: str, body: bytes, headers: Mapping[str, str]) -> None:
        sent = self._client.publish(topic, body, qos=1)
        sent.wait_for_publish(timeout=5)  # raises while not connected
        if not sent.is_published():
            raise OSError("the broker did not acknowledge the alert in 5 s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answering with a redirect is not followed: it could point anywhere."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl!r} not followed", headers, fp
        )


def webhook_sender(private_hosts: bool) -> Sender:
    """A sender that POSTs one alert to a financier's webhook and raises unless it answers 2xx
    within 5 s. Redirects are not followed; unless `private_hosts`, a host that resolves to
    any non-public address (loopback, private, link-local such as a cloud metadata service,
    reserved) is refused before anything is sent."""
    opener = urllib.request.build_opener(_NoRedirects)

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> None:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")  # checked when set, and here
        if not private_hosts:
            _refuse_non_public(parsed.hostname, parsed.port or 443)
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        with opener.open(request, timeout=5) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")

    return post


def _refuse_non_public(host: str, port: int) -> None:
    """Raise PermissionError when `host` resolves to any address that is not public."""
    for *_, sockaddr in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(sockaddr[0])
        if not address.is_global:
            raise PermissionError(
                f"webhook host {host} resolves to {address}, not a public address"
            )

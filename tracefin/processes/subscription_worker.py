"""Composition root of the `tracefin subscription-worker` process: settings -> webhook delivery
of named-query subscriptions (ledger/subscriptions.py), with an SSRF-safe HTTP sender."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from api.queries import render
from epcis.subscriptions import DestRefused, address_allowed, check_dest
from ledger.subscriptions import DeliveryConfig, DeliveryWorker, Sender
from tracefin.process import freeze_startup_heap, stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_subscription_worker(settings: Settings) -> None:
    """Deliver webhook subscriptions until SIGTERM/SIGINT (a delivery in flight is sent again
    by whoever claims it next: positions advance only after a 2xx)."""
    if settings.database_url is None:
        raise SystemExit("tracefin subscription-worker needs TRACEFIN_DATABASE_URL")
    worker = DeliveryWorker(
        settings.database_url,
        render,
        webhook_sender(settings.subscription_loopback_dest, settings.subscription_timeout_s),
        DeliveryConfig(
            lease=timedelta(seconds=settings.subscription_timeout_s * 2 + 10),
            max_backoff=timedelta(seconds=settings.subscription_max_backoff_s),
            suspend_after=timedelta(seconds=settings.subscription_suspend_after_s),
            senders=settings.subscription_senders,
            batch_size=settings.subscription_batch_size,
        ),
    )
    stop_on_signals(worker.request_stop, "stopping after the deliveries in hand")
    freeze_startup_heap()
    log.info("subscription worker running")
    worker.run()
    log.info("subscription worker stopped after %d deliveries", worker.deliveries)


def webhook_sender(loopback: bool, timeout: float) -> Sender:
    """POSTs a delivery and raises unless the receiver answers 2xx within `timeout` seconds.

    Against SSRF: the URL is checked again (https; http only to the loopback when `loopback`),
    its host is resolved once and every address it resolves to must be public (loopback only
    when `loopback`), and the connection goes to the checked address itself (the name is not
    resolved again, so a DNS answer that changes in between, rebinding, reaches nothing
    else), with the name as Host and as TLS server name (the certificate is checked against
    it). No proxy from the environment, no redirect followed, the answer's body not read.
    `timeout` bounds the whole send, not each read: a receiver that dribbles its answer a byte
    at a time would otherwise hold a sender (and, past its lease, the next) indefinitely."""

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> None:
        scheme, host, port = check_dest(url, loopback)
        addresses = [
            str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        ]
        for address in addresses:
            if not address_allowed(address, loopback):
                # Which address is not said: lastError is shown to the subscriber.
                raise DestRefused(f"{host} resolves to an address that is not public")
        if not addresses:
            raise DestRefused(f"{host} does not resolve")
        pinned = addresses[0].split("%", 1)[0]
        parts = urlsplit(url)
        netloc = f"[{pinned}]:{port}" if ":" in pinned else f"{pinned}:{port}"
        target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        asyncio.run(
            _post_within(timeout, target, body, {**headers, "Host": host_header}, extensions)
        )

    return post


async def _post_within(
    timeout: float,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    extensions: dict[str, Any],
) -> None:
    """The POST, cancelled once `timeout` seconds have passed in all (TimeoutError, an OSError,
    which counts as a failed delivery)."""
    async with (
        asyncio.timeout(timeout),
        httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        ) as client,
        client.stream(
            "POST", target, content=body, headers=headers, extensions=extensions
        ) as response,
    ):
        if not 200 <= response.status_code < 300:
            raise OSError(f"HTTP {response.status_code}")

"""What the API needs to know, handed to `create_app` by the composition root (tracefin)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ledger.bundle import TrustedAnchor
from ledger.log_store import Deployment


@dataclass(frozen=True)
class ApiConfig:
    """The API's settings: only these, so the API reads no environment and imports no settings."""

    chain_rpc_url: str | None = None
    # The JSON-RPC node the product page's in-browser check asks by default (the viewer may
    # pick another); None: the viewer names one.
    public_rpc_url: str | None = None
    # The TraceAnchors pinned by the operator; empty: the deployments the database recorded.
    trusted_anchors: frozenset[TrustedAnchor] = frozenset()
    # Signs the PledgeRegistry transactions financiers' pledge routes send.
    chain_key: str = field(default="", repr=False)
    # The finance journal's HMAC key (finance/journal_seal.py).
    journal_key: bytes = field(default=b"", repr=False)
    public_rate_per_minute: int = 600
    max_payload_bytes: int = 256 * 1024
    max_future_skew: timedelta = timedelta(minutes=10)
    # Events one POST /epcis/capture may carry (GS1-EPCIS-Capture-Limit).
    capture_max_events: int = 10_000
    # A /readyz answer is served again this long before the services are asked anew.
    readiness_cache: timedelta = timedelta(seconds=2)
    # The bearer token /metrics asks for; None: it answers loopback clients only.
    metrics_token: str | None = field(default=None, repr=False)
    # Whether webhook subscriptions may point at this machine (http://127.0.0.1, localhost):
    # development and tests only.
    subscription_loopback: bool = False
    # Per organisation: named queries, webhook subscriptions, and streams open (all processes).
    max_named_queries: int = 100
    max_subscriptions: int = 100
    max_streams: int = 10


@dataclass(frozen=True)
class ReadinessProbes:
    """How `/readyz` asks the services the API depends on; None: not configured, not asked.

    The composition root knows where the broker and the chain are; the API only asks.
    """

    # Whether the MQTT broker accepts connections.
    broker: Callable[[], bool] | None = None
    # Whether this deployment's contracts are live on the chain; raises ChainError when the
    # node cannot be asked.
    chain: Callable[[Deployment], bool] | None = None

"""Process settings, read from `TRACEFIN_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from datetime import timedelta
from functools import lru_cache

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finance.journal_seal import DEVELOPMENT_KEY as DEVELOPMENT_JOURNAL_KEY
from ingest.topics import DEFAULT_SHARE_GROUP, SHARE_GROUP_PATTERN
from ledger.bundle import BundleError, TrustedAnchor, parse_trusted_anchors

# anvil's well-known first dev account: fine for a local devnet, refused in production.
DEVNET_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# The mnemonic anvil and hardhat derive their funded development accounts from: every key it
# yields is public, so production refuses each of them (in any spelling).
DEVELOPMENT_MNEMONIC = "test test test test test test test test test test test junk"
DEVELOPMENT_ACCOUNTS = 20
# Production secrets must carry at least this much, as `estimated_bits` scores them.
MIN_SECRET_BITS = 128


@lru_cache(maxsize=1)
def development_private_keys() -> frozenset[str]:
    """The private keys of the development mnemonic's first accounts, as bare lower-case hex."""
    from eth_account import Account  # only where production settings are checked

    Account.enable_unaudited_hdwallet_features()
    return frozenset(
        bare_hex(
            Account.from_mnemonic(
                DEVELOPMENT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
            ).key.hex()
        )
        for index in range(DEVELOPMENT_ACCOUNTS)
    )


def bare_hex(key: str) -> str:
    """A hex key as written any way (0x or not, either case, spaces around): bare lower case."""
    key = key.strip().lower()
    return key[2:] if key.startswith("0x") else key


def _entries(listed: str) -> list[str]:
    return [entry.strip() for entry in listed.split(",") if entry.strip()]


def estimated_bits(secret: str) -> float:
    """The secret's length times the empirical entropy of its characters: a repeated, short or
    narrow secret ('a' x 32, a word repeated) scores low. An estimate that can refuse a weak
    secret, not a proof that a strong-looking one is random."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return per_char * len(secret)


CHAIN_KEY_NEEDED = (
    "TRACEFIN_CHAIN_PRIVATE_KEY must be set in production to a key of its own:"
    " 32 random bytes in hex, not a development account's"
)
JOURNAL_KEY_NEEDED = (
    "TRACEFIN_JOURNAL_KEY must be set in production: 32+ characters of a random"
    " secret (e.g. secrets.token_urlsafe(32)), not the development key"
)
# A second line behind the broker's ACL (the dynamic-security plugin refuses devices the group's
# SUBSCRIBE): a broker without it, e.g. one with acl_file, would let a device that knows the group
# join it and take a share of every device's events.
SHARE_GROUP_NEEDED = (
    "TRACEFIN_INGEST_SHARE_GROUP must be set in production to a secret of the deployment"
    " (e.g. secrets.token_urlsafe(24)), not the default: a device that knows it can take a share"
    " of the events"
)


class MissingProductionSetting(ValueError):
    """A production process asked for a secret or endpoint it uses and the settings lack."""


def _secret_share_group(group: str) -> bool:
    return group != DEFAULT_SHARE_GROUP and estimated_bits(group) >= MIN_SECRET_BITS


class Settings(BaseSettings):
    """Every knob of every tracefin process; unset URLs mean "find or start a local one"."""

    model_config = SettingsConfigDict(env_prefix="TRACEFIN_", env_file=".env", extra="ignore")

    environment: str = Field(default="development", pattern="^(development|test|production)$")
    # Where `tracefin up` keeps the embedded services' data and the workers' logs.
    home: str = ".tracefin"
    database_url: str | None = None
    mqtt_url: str | None = None
    # The broker account `tracefin finance` publishes financiers' alerts with, on
    # tf/{financier}/alerts (role tracefin-finance, tracefin.broker_auth); unset: no MQTT alerts.
    alerts_mqtt_url: str | None = None
    # Whether financiers' webhooks may point at loopback, private, link-local or other
    # non-public addresses (a bank's internal receiver). Unset: only outside production, where
    # it would let any financier make the finance process POST into the operator's network.
    alerts_webhook_private_hosts: bool | None = None
    chain_rpc_url: str | None = None
    # The JSON-RPC node the product page offers shoppers for checking proofs in their browser
    # (it must answer CORS from the page's origin); unset: they name one themselves. Never the
    # internal chain_rpc_url by default: that one may be private, and carries the API's load.
    chain_public_rpc_url: str | None = Field(default=None, pattern=r"^https?://[^\s;,']+$")
    # The TraceAnchors proofs are checked against, `CHAIN_ID:0xADDRESS[,…]` (GET /v1/deployment
    # shows the current one). Unset: every deployment the database recorded, so whoever can edit
    # the database could add one; pinned, verification trusts only these.
    chain_trusted_anchors: str | None = None
    chain_private_key: SecretStr | None = None
    # The HMAC key finance journal entries are sealed with (finance/journal_seal.py); the
    # database never holds it. Required in production; a fixed development key otherwise.
    journal_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_public_rate_per_minute: int = Field(default=600, ge=1)
    api_db_pool_size: int = Field(default=8, ge=1, le=128)
    # The longest one SQL statement of an API request may run (or wait for a lock): past it the
    # statement is cancelled and the request answered 413 query_too_complex (a read) or 503
    # (a write), so one unindexed filter cannot hold a connection and a core for minutes.
    api_statement_timeout_ms: int = Field(default=5_000, ge=100, le=600_000)
    # The proxies whose X-Forwarded-For names the client (comma-separated addresses or CIDR
    # networks). None by default: then the header is ignored and the peer is the client, so a
    # forged header dodges no rate limit (uvicorn itself would trust 127.0.0.1).
    api_trusted_proxies: str = ""
    # Deadlines for a request's headers (from the connection, or their first byte) and for its
    # body (from its headers); past them, 408 and the connection is closed (slowloris).
    api_header_timeout_s: float = Field(default=10, gt=0, le=600)
    api_body_timeout_s: float = Field(default=30, gt=0, le=3600)
    # Open connections at most; beyond it uvicorn answers 503 (plain text, its own).
    api_max_connections: int = Field(default=1000, ge=1)
    # How long a /readyz answer is served again before the database, broker and chain are
    # asked anew: a flood of probes costs one round of checks per interval.
    api_readiness_cache_s: float = Field(default=2, ge=0, le=60)
    # Bearer token /metrics asks for. Required in production; unset outside it, /metrics
    # answers loopback clients only.
    api_metrics_token: SecretStr | None = None

    # Ingest: a batch closes when it holds `ingest_batch_size` messages or its oldest message has
    # waited `ingest_batch_max_wait_ms`, whichever comes first.
    ingest_batch_size: int = Field(default=2000, ge=1, le=65535)
    ingest_batch_max_wait_ms: int = Field(default=50, ge=1, le=60_000)
    ingest_receive_maximum: int = Field(default=4000, ge=1, le=65535)
    ingest_max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    ingest_max_future_skew_s: int = Field(default=600, ge=0)
    ingest_client_id: str | None = None
    # The MQTT 5 share group the ingest workers split the devices' messages in
    # ($share/{group}/tf/+/+/events, ingest/topics.py): one name per deployment, so two
    # deployments on one broker do not take each other's messages.
    ingest_share_group: str = Field(default=DEFAULT_SHARE_GROUP, pattern=SHARE_GROUP_PATTERN)
    # Receipts are advisory (the store is the truth and a re-sent event is answered
    # `duplicate`), so QoS 0 by default: QoS 1 would double the broker traffic per event.
    ingest_receipt_qos: int = Field(default=0, ge=0, le=1)
    # Receipts and rejects waiting to go out, at most; beyond it answers are dropped (counted),
    # since they are advisory and a slow broker must not make ingest grow without bound.
    ingest_max_unsent_answers: int = Field(default=20_000, ge=1)
    ingest_db_pool_size: int = Field(default=2, ge=1, le=64)
    # Events one POST /epcis/capture may carry (GS1-EPCIS-Capture-Limit; its byte limit is
    # ingest_max_payload_bytes): a larger document is refused 413, to be split by its sender.
    capture_max_events: int = Field(default=10_000, ge=1)
    # Finished capture jobs (GET /epcis/capture/{id}) are kept this many days, then deleted by
    # the capture worker; their events stay.
    capture_job_retention_days: int = Field(default=30, ge=1, le=3650)
    # Webhook subscriptions to named queries (tracefin subscription-worker). Whether a dest may
    # be this machine (http://127.0.0.1, localhost): development and tests only, refused in
    # production (anyone with a key could make the worker POST to the host's own services).
    subscription_loopback_dest: bool = False
    # Receivers sent to at once: a slow or dead one holds one of these, not the others.
    subscription_senders: int = Field(default=8, ge=1, le=256)
    # Log positions one delivery covers, at most (its events: at most as many).
    subscription_batch_size: int = Field(default=100, ge=1, le=500)
    # A receiver must answer within this many seconds.
    subscription_timeout_s: float = Field(default=5, gt=0, le=120)
    # Retries back off 2^n seconds, at most this; failing longer than `suspend_after`, a
    # subscription is suspended (no more tries; its state says so).
    subscription_max_backoff_s: int = Field(default=600, ge=1)
    subscription_suspend_after_s: int = Field(default=86_400, ge=60)
    # What one organisation may hold: named queries, webhook subscriptions, and WebSocket
    # streams open at once across every API process; beyond, 403 limit_reached (each costs the
    # database work on every log move, so a key must not make that unbounded).
    api_max_named_queries_per_org: int = Field(default=100, ge=1, le=100_000)
    api_max_subscriptions_per_org: int = Field(default=100, ge=1, le=100_000)
    api_max_streams_per_org: int = Field(default=10, ge=1, le=10_000)

    # Anchoring: a batch closes at `anchor_batch_size` positions or when its oldest position has
    # waited `anchor_batch_max_wait_ms`; sized so lag stays under 2 s at 10 000 events/s.
    anchor_batch_size: int = Field(default=5000, ge=1, le=2**32 - 1)
    anchor_batch_max_wait_ms: int = Field(default=500, ge=10, le=600_000)
    anchor_receipt_timeout_s: int = Field(default=30, ge=1)
    # With TimescaleDB only (plain PostgreSQL keeps telemetry uncompressed and for ever):
    # telemetry older than this many days is compressed, and older than the retention dropped
    # (0: kept for ever). Set on the database by `tracefin db migrate` and `tracefin up`.
    telemetry_compress_after_days: int = Field(default=7, ge=1)
    telemetry_retention_days: int = Field(default=400, ge=0)

    @model_validator(mode="after")
    def _read_trusted_anchors(self) -> Settings:
        try:
            self.trusted_anchors()
        except BundleError as exc:
            raise ValueError(f"TRACEFIN_CHAIN_TRUSTED_ANCHORS: {exc}") from None
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        """In production, refuse every development or weak secret that is set, and an unset
        database. A secret only some processes use (the chain key, the journal key, the share
        group) may be unset: the accessor refuses it when a process that uses it asks."""
        if self.environment != "production":
            return self
        if self.chain_private_key is not None:
            key = bare_hex(self.chain_private_key.get_secret_value())
            if (
                len(key) != 64
                or any(c not in "0123456789abcdef" for c in key)
                or key in development_private_keys()
                or estimated_bits(key) < MIN_SECRET_BITS
            ):
                raise ValueError(CHAIN_KEY_NEEDED)
        if self.journal_key is not None:
            journal_key = self.journal_key.get_secret_value()
            if (
                len(journal_key) < 32
                or journal_key.strip().lower().encode() == DEVELOPMENT_JOURNAL_KEY.lower()
                or estimated_bits(journal_key) < MIN_SECRET_BITS
            ):
                raise ValueError(JOURNAL_KEY_NEEDED)
        if "ingest_share_group" in self.model_fields_set and not _secret_share_group(
            self.ingest_share_group
        ):
            raise ValueError(SHARE_GROUP_NEEDED)
        # Required by the API only (`metrics_token`); wherever it is set, it is strong.
        if self.api_metrics_token is not None:
            token = self.api_metrics_token.get_secret_value()
            if len(token) < 32 or estimated_bits(token) < MIN_SECRET_BITS:
                raise ValueError(
                    "TRACEFIN_API_METRICS_TOKEN must be 32+ characters of a random secret"
                    " (e.g. secrets.token_urlsafe(32))"
                )
        if self.subscription_loopback_dest:
            raise ValueError(
                "TRACEFIN_SUBSCRIPTION_LOOPBACK_DEST is for development and tests: in production"
                " a webhook subscription could make the worker POST to the host's own services"
            )
        if self.database_url is None:
            raise ValueError("TRACEFIN_DATABASE_URL must be set in production")
        return self

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRACEFIN_API_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
                ) from None
        return value

    def trusted_proxies(self) -> list[str]:
        """The trusted proxies as networks (`10.0.0.0/8`, `127.0.0.1/32`), none when unset."""
        return [
            str(ipaddress.ip_network(entry, strict=False))
            for entry in _entries(self.api_trusted_proxies)
        ]

    def metrics_token(self) -> str | None:
        """The token /metrics asks for; only the API needs it, so only the API refuses to
        start without it in production (the other workers' settings need not hold it)."""
        if self.api_metrics_token is not None:
            return self.api_metrics_token.get_secret_value()
        if self.environment == "production":
            raise MissingProductionSetting(
                "TRACEFIN_API_METRICS_TOKEN must be set in production: /metrics tells how"
                " much goes through and how far each worker lags"
            )
        return None

    def webhook_private_hosts(self) -> bool:
        """Whether webhooks may reach non-public addresses (see the field)."""
        if self.alerts_webhook_private_hosts is not None:
            return self.alerts_webhook_private_hosts
        return self.environment != "production"

    def chain_key(self) -> str:
        """The transaction key: the configured one, or anvil's first dev key outside production
        (MissingProductionSetting in production: only processes that sign ask for it)."""
        if self.chain_private_key is not None:
            return self.chain_private_key.get_secret_value()
        if self.environment == "production":
            raise MissingProductionSetting(CHAIN_KEY_NEEDED)
        return DEVNET_PRIVATE_KEY

    def journal_seal_key(self) -> bytes:
        """The journal's HMAC key: the configured one, or the development key outside production
        (MissingProductionSetting in production: only processes that seal or check ask for it)."""
        if self.journal_key is not None:
            return self.journal_key.get_secret_value().encode()
        if self.environment == "production":
            raise MissingProductionSetting(JOURNAL_KEY_NEEDED)
        return DEVELOPMENT_JOURNAL_KEY

    def trusted_anchors(self) -> frozenset[TrustedAnchor]:
        """The pinned TraceAnchors (see the field); empty when none are pinned."""
        return parse_trusted_anchors(self.chain_trusted_anchors or "")

    def share_group(self) -> str:
        """The ingest workers' share group; in production a secret of the deployment
        (MissingProductionSetting for the public default): see SHARE_GROUP_NEEDED."""
        if self.environment == "production" and not _secret_share_group(self.ingest_share_group):
            raise MissingProductionSetting(SHARE_GROUP_NEEDED)
        return self.ingest_share_group

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.ingest_max_future_skew_s)

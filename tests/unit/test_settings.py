"""Settings refuse development defaults in production, and docs/settings.md documents every one."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from finance.journal_seal import DEVELOPMENT_KEY
from ledger.bundle import TrustedAnchor
from tracefin.processes.api import api_config, server_options
from tracefin.settings import (
    DEVNET_PRIVATE_KEY,
    MissingProductionSetting,
    Settings,
    development_private_keys,
)

# Keys of its own, as an operator generates them (secrets.token_hex(32), token_urlsafe(32)).
STRONG_CHAIN_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
STRONG_JOURNAL_KEY = "Xq3vN8d0-Tz_7mKpL2rWc9YbHf4sJ6uEaQ1iOgD5nRk"
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"

URLS = {
    "database_url": "postgresql://db/tracefin",
    "mqtt_url": "mqtt://broker:1883",
    "chain_rpc_url": "http://chain:8545",
}


def test_development_needs_nothing() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "development"
    assert settings.ingest_max_payload_bytes == 256 * 1024


@pytest.mark.parametrize(
    "key",
    [
        DEVNET_PRIVATE_KEY,
        DEVNET_PRIVATE_KEY.upper().replace("0X", "0x"),
        DEVNET_PRIVATE_KEY.removeprefix("0x"),  # anvil's key #0 without 0x
        f"  {DEVNET_PRIVATE_KEY.upper()}  ",
        ANVIL_KEY_1,  # anvil's key #1
        "0x" + "11" * 32,  # not random
        "0x" + "0" * 63 + "1",
        "0x1234",  # not a key
        "0x" + "zz" * 32,
        "",
    ],
)
def test_production_refuses_a_devnet_or_weak_chain_key(key: str) -> None:
    with pytest.raises(ValidationError, match="CHAIN_PRIVATE_KEY"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            chain_private_key=key,  # type: ignore[arg-type]
            journal_key=STRONG_JOURNAL_KEY,  # type: ignore[arg-type]
            **URLS,
        )


def test_in_production_only_a_process_that_uses_a_secret_needs_it() -> None:
    """Issue 17 item 7: every process got the chain key and the journal key. A process that
    uses neither (ingest, migrate) starts without them; one that does is refused, in
    production, when it asks for the missing one, instead of falling back to a development key."""
    bare = Settings(_env_file=None, environment="production", **URLS)  # type: ignore[call-arg]
    with pytest.raises(MissingProductionSetting, match="CHAIN_PRIVATE_KEY"):
        bare.chain_key()
    with pytest.raises(MissingProductionSetting, match="JOURNAL_KEY"):
        bare.journal_seal_key()
    with pytest.raises(MissingProductionSetting, match="SHARE_GROUP"):
        bare.share_group()
    group = secrets.token_urlsafe(24)
    full = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        chain_private_key=STRONG_CHAIN_KEY,
        journal_key=STRONG_JOURNAL_KEY,
        ingest_share_group=group,
        **URLS,
    )
    assert full.chain_key() == STRONG_CHAIN_KEY
    assert full.journal_seal_key() == STRONG_JOURNAL_KEY.encode()
    assert full.share_group() == group
    # Outside production the development defaults stand in.
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    assert development.chain_key() == DEVNET_PRIVATE_KEY
    assert development.share_group() == "tracefin-ingest"


@pytest.mark.parametrize("group", ["tracefin-ingest", "plant-7", "a" * 64])
def test_production_refuses_a_guessable_share_group(group: str) -> None:
    with pytest.raises(ValidationError, match="SHARE_GROUP"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, environment="production", ingest_share_group=group, **URLS
        )


def test_every_account_of_the_development_mnemonic_is_known() -> None:
    known = development_private_keys()
    assert len(known) == 20
    assert {DEVNET_PRIVATE_KEY[2:], ANVIL_KEY_1[2:]} <= known


def test_production_accepts_keys_of_its_own() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        chain_private_key=STRONG_CHAIN_KEY,  # type: ignore[arg-type]
        journal_key=STRONG_JOURNAL_KEY,  # type: ignore[arg-type]
        **URLS,
    )
    assert settings.journal_seal_key() == STRONG_JOURNAL_KEY.encode()


def test_production_refuses_an_unset_database() -> None:
    """Every process uses the database; the broker and the chain only some (checked where used:
    `tracefin ingest` without TRACEFIN_MQTT_URL, `anchor` or `api` without the chain, refuse)."""
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            chain_private_key=STRONG_CHAIN_KEY,
            journal_key=STRONG_JOURNAL_KEY,
            mqtt_url="mqtt://b",
            chain_rpc_url="http://c",
        )


@pytest.mark.parametrize(
    "journal_key",
    [
        "too-short",
        DEVELOPMENT_KEY.decode(),  # the development journal key string
        DEVELOPMENT_KEY.decode().upper(),
        "a" * 32,
        "password1234" * 3,
    ],
)
def test_production_refuses_a_short_known_or_weak_journal_key(journal_key: str) -> None:
    with pytest.raises(ValidationError, match="JOURNAL_KEY"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            chain_private_key=STRONG_CHAIN_KEY,
            journal_key=journal_key,
            **URLS,
        )


def test_the_journal_key_comes_from_settings_and_defaults_outside_production() -> None:
    assert Settings(_env_file=None).journal_seal_key() == DEVELOPMENT_KEY  # type: ignore[call-arg]
    configured = Settings(_env_file=None, journal_key="k" * 40)  # type: ignore[call-arg]
    assert configured.journal_seal_key() == b"k" * 40


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEFIN_INGEST_BATCH_SIZE", "123")
    monkeypatch.setenv("TRACEFIN_MQTT_URL", "mqtt://example:1883")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.ingest_batch_size, settings.mqtt_url) == (123, "mqtt://example:1883")


def test_the_settings_page_names_every_setting() -> None:
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "settings.md").read_text(encoding="utf-8")
    # Only the table's rows count: a setting named in the prose alone is not documented.
    table = "\n".join(line for line in page.splitlines() if line.startswith("| `TRACEFIN_"))
    missing = [name for name in Settings.model_fields if f"`TRACEFIN_{name.upper()}`" not in table]
    assert missing == []
    # The README, the newcomer's page, leads to it.
    assert "(docs/settings.md)" in (root / "README.md").read_text(encoding="utf-8")


def test_trusted_anchors_are_read_in_any_case_and_bad_ones_refused() -> None:
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    pinned = Settings(_env_file=None, chain_trusted_anchors=f" 31337:{address} ,1:{address}")  # type: ignore[call-arg]
    assert pinned.trusted_anchors() == {
        TrustedAnchor(31337, address.lower()),
        TrustedAnchor(1, address.lower()),
    }
    assert Settings(_env_file=None).trusted_anchors() == frozenset()
    for bad in (address, f"x:{address}", "31337:0x1234", f"-1:{address}"):
        with pytest.raises(ValidationError, match="TRUSTED_ANCHORS"):
            Settings(_env_file=None, chain_trusted_anchors=bad)  # type: ignore[call-arg]


# --- the API's exposure (issue 17, item 6) ---------------------------------------------------


def test_no_proxy_is_trusted_unless_named() -> None:
    """Unset, X-Forwarded-For is ignored: uvicorn is told not to read it at all (by itself it
    would trust 127.0.0.1, or $FORWARDED_ALLOW_IPS)."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.trusted_proxies() == []
    options = server_options(settings)
    assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (False, [])


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, api_trusted_proxies=" 10.1.2.3, 10.0.0.1/8 ,::1,"
    )
    # A network with host bits set means its network, not a literal uvicorn would ignore.
    assert settings.trusted_proxies() == ["10.1.2.3/32", "10.0.0.0/8", "::1/128"]
    options = server_options(settings)
    assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (
        True,
        ["10.1.2.3/32", "10.0.0.0/8", "::1/128"],
    )
    for bad in ("proxy.internal", "10.0.0.0/33", "*"):
        with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
            Settings(_env_file=None, api_trusted_proxies=bad)  # type: ignore[call-arg]


def test_slow_clients_have_deadlines_and_connections_a_cap() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, api_header_timeout_s=3, api_body_timeout_s=7, api_max_connections=50
    )
    options = server_options(settings)
    assert (options["http"].header_timeout, options["http"].body_timeout) == (3, 7)
    assert options["limit_concurrency"] == 50
    defaults = server_options(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (defaults["http"].header_timeout, defaults["http"].body_timeout) == (10, 30)


STRONG_METRICS_TOKEN = "mT4k-9QzV_2pLx8RwN3cYb7HsJ5fUe1AgD6iKo0nEqS"


def _production(**settings: str | None) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        chain_private_key=STRONG_CHAIN_KEY,
        journal_key=STRONG_JOURNAL_KEY,
        **URLS,
        **settings,
    )


def test_in_production_the_api_needs_a_metrics_token_and_other_workers_do_not() -> None:
    settings = _production()  # what ingest, anchor and finance run with
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        api_config(settings)
    configured = api_config(_production(api_metrics_token=STRONG_METRICS_TOKEN))
    assert configured.metrics_token == STRONG_METRICS_TOKEN
    assert STRONG_METRICS_TOKEN not in repr(configured)
    # Outside production, unset: /metrics answers loopback clients only (api/health.py).
    assert api_config(Settings(_env_file=None)).metrics_token is None  # type: ignore[call-arg]


@pytest.mark.parametrize("token", ["short", "m" * 40, "metrics!" * 5])
def test_production_refuses_a_short_or_weak_metrics_token(token: str) -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        _production(api_metrics_token=token)


def test_the_share_group_is_a_setting_and_must_be_a_share_name() -> None:
    assert Settings(_env_file=None).ingest_share_group == "tracefin-ingest"  # type: ignore[call-arg]
    named = Settings(_env_file=None, ingest_share_group="plant-7")  # type: ignore[call-arg]
    assert named.ingest_share_group == "plant-7"
    for bad in ("a/b", "a+b", "#", ""):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, ingest_share_group=bad)  # type: ignore[call-arg]


def test_a_production_api_without_a_chain_is_refused() -> None:
    """Pledges and /readyz need the chain; production used to refuse this for every process."""
    from tracefin.processes.api import api_config

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        database_url="postgresql://db/tracefin",
        chain_private_key=STRONG_CHAIN_KEY,
        journal_key=STRONG_JOURNAL_KEY,
    )
    with pytest.raises(MissingProductionSetting, match="CHAIN_RPC_URL"):
        api_config(settings)


@pytest.mark.parametrize("processes", ["1", "2"])  # 2: refused before any child starts
def test_a_production_ingest_worker_without_its_secret_group_stops_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], processes: str
) -> None:
    from tracefin.cli import main

    for key, value in {
        "TRACEFIN_ENVIRONMENT": "production",
        "TRACEFIN_DATABASE_URL": "postgresql://nowhere.invalid/tracefin",
        "TRACEFIN_MQTT_URL": "mqtt://nowhere.invalid:1883",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    with pytest.raises(SystemExit) as stopped:
        main(["ingest", "--client-id", "tracefin-ingest-1", "--processes", processes])
    assert stopped.value.code == 2
    assert "TRACEFIN_INGEST_SHARE_GROUP must be set in production" in capsys.readouterr().err


def test_production_refuses_several_ingest_processes_on_one_broker_account(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped broker makes the client id the username: N children on one account would
    keep taking over each other's session, so production says so before any child starts."""
    from tracefin.cli import main

    for key, value in {
        "TRACEFIN_ENVIRONMENT": "production",
        "TRACEFIN_DATABASE_URL": "postgresql://nowhere.invalid/tracefin",
        "TRACEFIN_MQTT_URL": "mqtt://nowhere.invalid:1883",
        "TRACEFIN_INGEST_SHARE_GROUP": "q7Rm2xKp9LwZ4vNc8TbY3hJfA1sD5gH0",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    with pytest.raises(SystemExit) as stopped:
        main(["ingest", "--client-id", "tracefin-ingest-1", "--processes", "2"])
    assert "one broker account per process" in str(stopped.value.code)

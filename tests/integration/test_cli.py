"""The `tracefin` command line against a real database: output contracts and clear errors."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from records.db import Conn
from records.registry_store import hash_api_key
from tests.support.cli import tracefin

pytestmark = pytest.mark.integration


def test_db_migrate_is_idempotent(database_url: str) -> None:
    # The session fixture migrated already: a second run applies nothing and succeeds.
    result = tracefin(database_url, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"applied": []}


def test_org_add_prints_one_json_object_and_stores_the_key_hashed(
    database_url: str, db: Conn
) -> None:
    slug = f"acme-{secrets.token_hex(3)}"
    result = tracefin(database_url, "org", "add", slug, "--role", "financier")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"org", "role", "api_key"}
    assert (printed["org"], printed["role"]) == (slug, "financier")
    stored = db.execute(
        "SELECT k.key_hash FROM api_keys k JOIN orgs o ON o.id = k.org_id WHERE o.slug = %s",
        (slug,),
    ).fetchall()
    assert stored == [(hash_api_key(printed["api_key"]),)]
    assert printed["api_key"].encode() not in stored[0][0]


def test_org_add_with_a_name_people_read(database_url: str, db: Conn) -> None:
    slug = f"haixian-{secrets.token_hex(3)}"
    named = tracefin(
        database_url, "org", "add", slug, "--role", "manufacturer", "--name", "  Ningbo  Haixian "
    )
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["name"] == "Ningbo Haixian"
    assert db.execute("SELECT name FROM orgs WHERE slug = %s", (slug,)).fetchone() == (
        "Ningbo Haixian",
    )
    # A name that is no name creates nothing.
    other = f"blank-{secrets.token_hex(3)}"
    blank = tracefin(database_url, "org", "add", other, "--role", "retailer", "--name", "   ")
    assert blank.returncode == 2
    assert "1 to 200 characters" in blank.stderr
    assert db.execute("SELECT 1 FROM orgs WHERE slug = %s", (other,)).fetchone() is None


def test_device_add_signed_and_unsigned(database_url: str, org: str) -> None:
    address = "0x" + "Ab" * 20
    signed = tracefin(database_url, "device", "add", org, "scanner-1", "--address", address)
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["address"] == address.lower()
    unsigned = tracefin(database_url, "device", "add", org, "plc-1", "--unsigned")
    assert unsigned.returncode == 0, unsigned.stderr
    assert json.loads(unsigned.stdout)["unsigned"] is True
    assert "mqtt_password" not in json.loads(unsigned.stdout)


def test_broker_accounts_then_a_device_make_the_brokers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracefin.broker_auth import check_password, ingest_role
    from tracefin.cli import main

    environment = {
        "MQTT_INGEST_1_PASSWORD": "p1",
        "MQTT_INGEST_2_PASSWORD": "p2",
        "MQTT_FINANCE_PASSWORD": "pf",
        "MQTT_HEALTH_PASSWORD": "ph",
        "INGEST_SHARE_GROUP_SECRET": "g-1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "dynamic-security.json"
    main(["broker", "accounts", str(path)])
    main(["broker", "device", str(path), "acme", "gate-1"])
    account = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert account["mqtt_username"] == "acme.gate-1"
    monkeypatch.setenv("INGEST_SHARE_GROUP_SECRET", "g-2")
    main(["broker", "accounts", str(path)])  # a new share group keeps the device
    config = json.loads(path.read_text())
    assert path.stat().st_mode & 0o077 == 0
    clients = {client["username"]: client for client in config["clients"]}
    assert check_password(clients["acme.gate-1"], account["mqtt_password"])
    assert check_password(clients["tracefin-ingest-2"], "p2")
    assert ingest_role("g-2") in config["roles"]
    # A revoked device's account goes too; a second removal says there is nothing to remove.
    main(["broker", "remove-device", str(path), "acme", "gate-1"])
    config = json.loads(path.read_text())
    assert "acme.gate-1" not in {client["username"] for client in config["clients"]}
    assert "acme.gate-1" not in {role["rolename"] for role in config["roles"]}
    assert check_password({c["username"]: c for c in config["clients"]}["tracefin-ingest-2"], "p2")
    with pytest.raises(SystemExit) as again:
        main(["broker", "remove-device", str(path), "acme", "gate-1"])
    assert again.value.code == 2
    assert "no account 'acme.gate-1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("org", "add", "Bad_Slug", "--role", "financier"), "Bad_Slug"),
        (("org", "add", "x", "--role", "banker"), "invalid choice"),
        (("device", "add", "{org}", "d-1"), "exactly one of --address"),
        (
            ("device", "add", "{org}", "d-1", "--unsigned", "--address", "0x" + "1" * 40),
            "exactly one of --address",
        ),
        (("device", "add", "{org}", "d-1", "--address", "0x1234"), "not a 0x-prefixed"),
        (("device", "add", "no-such-org", "d-1", "--unsigned"), "unknown organisation"),
        (("org", "add", "{org}", "--role", "financier"), "already exists"),
    ],
)
def test_bad_commands_fail_with_one_clear_sentence(
    database_url: str, org: str, args: tuple[str, ...], message: str
) -> None:
    result = tracefin(database_url, *(arg.format(org=org) for arg in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_device_is_refused(database_url: str, org: str) -> None:
    assert tracefin(database_url, "device", "add", org, "twin", "--unsigned").returncode == 0
    again = tracefin(database_url, "device", "add", org, "twin", "--unsigned")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_unreachable_database_is_one_sentence() -> None:
    result = tracefin("postgresql://postgres@127.0.0.1:1/nowhere", "db", "migrate")
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr

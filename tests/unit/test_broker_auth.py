"""The broker's accounts as a dynamic-security config, and the device username convention."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import pytest

import tracefin.broker_auth
from ingest.mqtt_link import parse_mqtt_url
from ingest.topics import DeviceTopic, Kind, parse_topic, subscriptions
from tracefin.broker_auth import (
    DEFAULT_ITERATIONS,
    FINANCE_USERNAME,
    HASH_BYTES,
    HEALTH_USERNAME,
    INGEST_ROLE,
    SALT_BYTES,
    check_password,
    device_role,
    device_topics,
    device_username,
    dynsec_client,
    dynsec_config,
    generate_password,
    ingest_role,
    ingest_username,
    with_device,
)

# Made by Mosquitto 2.0.11's own `mosquitto_passwd -b pw alice secret`: the PBKDF2-SHA512 that
# the dynamic-security plugin checks too (src/password_mosq.h, shared by both).
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$E/b3KiZRl7BzAwhK$NrCzN8dyKaBGQHyf7VeLMz9EA6jtgrmuZ9RHv7nlu6FCLY51tt4Ook5DG5y"
    "dlfYGcI/05xjSpVK5rpGM1qNfng=="
)
SALT, DIGEST = MOSQUITTO_PASSWD_LINE.split("$")[3:]


def test_a_client_made_with_mosquitto_passwds_salt_has_mosquitto_passwds_hash() -> None:
    client = dynsec_client("alice", "secret", "r", iterations=101, salt=base64.b64decode(SALT))
    assert client == {
        "username": "alice",
        "password": DIGEST,
        "salt": SALT,
        "iterations": 101,
        "roles": [{"rolename": "r"}],
    }
    assert check_password(client, "secret")
    assert not check_password(client, "Secret")


def test_clients_get_a_fresh_salt_and_the_default_iterations() -> None:
    first = dynsec_client("tracefin-ingest-1", "pw", INGEST_ROLE)
    second = dynsec_client("tracefin-ingest-1", "pw", INGEST_ROLE)
    assert first["iterations"] == DEFAULT_ITERATIONS
    assert len(base64.b64decode(first["salt"])) == SALT_BYTES
    assert len(base64.b64decode(first["password"])) == HASH_BYTES
    assert first["salt"] != second["salt"]
    assert check_password(first, "pw")
    assert check_password(second, "pw")


@pytest.mark.parametrize("username", ["", "a:b", "org/device", "dev+", "dev#", "a b", "a\nb"])
def test_usernames_mosquitto_or_its_acls_would_misread_are_refused(username: str) -> None:
    with pytest.raises(ValueError):
        dynsec_client(username, "pw", "r")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        dynsec_client("u", "", "r")
    with pytest.raises(ValueError, match="iterations"):
        dynsec_client("u", "pw", "r", iterations=0)
    with pytest.raises(ValueError, match="salt"):
        dynsec_client("u", "pw", "r", salt=b"short")


def test_generated_passwords_are_random_and_survive_an_mqtt_url() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", password)  # 32 bytes, URL-safe base64
        address = parse_mqtt_url(f"mqtt://tracefin-ingest:{password}@broker:1883")
        assert (address.username, address.password) == ("tracefin-ingest", password)


def test_device_usernames_name_org_and_device_unambiguously() -> None:
    assert device_username("acme-foods", "line-1") == "acme-foods.line-1"
    for org, device in [("Acme", "line-1"), ("acme", "line_1"), ("a.b", "c"), ("", "d")]:
        with pytest.raises(ValueError):
            device_username(org, device)


def test_device_topics_are_the_topics_ingest_reads_and_answers_on() -> None:
    topics = device_topics("acme-foods", "line-1")
    assert parse_topic(topics["events"]) == DeviceTopic("acme-foods", "line-1", Kind.EVENTS)
    assert parse_topic(topics["telemetry"]) == DeviceTopic("acme-foods", "line-1", Kind.TELEMETRY)
    answers = DeviceTopic("acme-foods", "line-1", Kind.EVENTS)
    assert (topics["receipts"], topics["rejects"]) == (answers.receipts, answers.rejects)


def test_a_devices_role_writes_its_inputs_and_reads_its_answers_only() -> None:
    assert device_role("acme-foods", "line-1") == {
        "rolename": "acme-foods.line-1",
        "acls": [
            {"acltype": acltype, "topic": f"tf/acme-foods/line-1/{leaf}", "allow": True}
            for acltype, leaf in [
                ("publishClientSend", "events"),
                ("publishClientSend", "telemetry"),
                ("subscribeLiteral", "receipts"),
                ("publishClientReceive", "receipts"),
                ("subscribeLiteral", "rejects"),
                ("publishClientReceive", "rejects"),
            ]
        ],
    }


def test_the_ingest_role_subscribes_to_its_share_group_exactly() -> None:
    acls = {(acl["acltype"], acl["topic"]) for acl in ingest_role("g-1")["acls"]}
    assert acls == {
        ("subscribeLiteral", "$share/g-1/tf/+/+/events"),
        ("subscribeLiteral", "$share/g-1/tf/+/+/telemetry"),
        ("publishClientReceive", "tf/+/+/events"),
        ("publishClientReceive", "tf/+/+/telemetry"),
        ("publishClientSend", "tf/+/+/receipts"),
        ("publishClientSend", "tf/+/+/rejects"),
    }
    assert {topic for kind, topic in acls if kind == "subscribeLiteral"} == set(
        subscriptions("g-1")
    )


def test_each_ingest_worker_has_its_own_account() -> None:
    assert [ingest_username(n) for n in (1, 2, 10)] == [
        "tracefin-ingest-1",
        "tracefin-ingest-2",
        "tracefin-ingest-10",
    ]
    # A device's username always holds a `.`, an ingest account never: they cannot collide.
    assert "." not in ingest_username(1)
    with pytest.raises(ValueError, match="numbered from 1"):
        ingest_username(0)


def test_the_config_denies_by_default_and_gives_each_account_its_role() -> None:
    passwords = {
        ingest_username(1): "p1",
        ingest_username(2): "p2",
        FINANCE_USERNAME: "pf",
        HEALTH_USERNAME: "ph",
    }
    config = dynsec_config("g-1", passwords)
    assert set(config["defaultACLAccess"].values()) == {False}
    roles = {c["username"]: c["roles"] for c in config["clients"]}
    assert roles == {
        ingest_username(1): [{"rolename": INGEST_ROLE}],
        ingest_username(2): [{"rolename": INGEST_ROLE}],
        FINANCE_USERNAME: [{"rolename": FINANCE_USERNAME}],
        HEALTH_USERNAME: [{"rolename": HEALTH_USERNAME}],
    }
    assert all(check_password(c, passwords[c["username"]]) for c in config["clients"])
    assert {r["rolename"] for r in config["roles"]} == {
        INGEST_ROLE,
        FINANCE_USERNAME,
        HEALTH_USERNAME,
    }
    with pytest.raises(ValueError, match="service account"):
        dynsec_config("g-1", {"acme-foods.line-1": "p"})


def test_devices_are_added_replaced_and_kept_when_the_services_change() -> None:
    config = with_device(dynsec_config("g-1", {ingest_username(1): "p1"}), "acme", "l-1", "a")
    config = with_device(config, "acme", "l-1", "b")  # a new password replaces the account
    devices = [c for c in config["clients"] if c["username"] == "acme.l-1"]
    assert len(devices) == 1
    assert check_password(devices[0], "b")
    assert [r["rolename"] for r in config["roles"]].count("acme.l-1") == 1
    renewed = dynsec_config("g-2", {ingest_username(1): "p9"}, keep_devices_of=config)
    assert [c for c in renewed["clients"] if c["username"] == "acme.l-1"] == devices
    assert device_role("acme", "l-1") in renewed["roles"]
    assert ingest_role("g-2") in renewed["roles"]
    assert ingest_role("g-1") not in renewed["roles"]


def test_the_module_stays_pure() -> None:
    # It runs inside CLI commands and tests alike: hashing and randomness only, no I/O.
    tree = ast.parse(Path(tracefin.broker_auth.__file__).read_text(encoding="utf-8"))
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }
    # ingest.topics is the topic contract, itself pure (import-linter's pure-core contract).
    allowed = {"__future__", "base64", "collections.abc", "hashlib", "hmac", "os", "re", "typing"}
    assert imported <= allowed | {"ingest.topics"}

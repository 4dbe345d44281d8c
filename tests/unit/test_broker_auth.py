"""Mosquitto password-file lines and the device username / ACL convention (tracefin.broker_auth)."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import pytest

import tracefin.broker_auth
from ingest.mqtt_link import parse_mqtt_url
from ingest.topics import DeviceTopic, Kind, parse_topic
from tracefin.broker_auth import (
    DEFAULT_ITERATIONS,
    HASH_BYTES,
    SALT_BYTES,
    check_password,
    device_acl_entry,
    device_topics,
    device_username,
    generate_password,
    ingest_acl_entry,
    ingest_username,
    parse_password_line,
    password_line,
)

# Made by Mosquitto 2.0.11's own `mosquitto_passwd -b pw alice secret`: the format's ground truth.
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$E/b3KiZRl7BzAwhK$NrCzN8dyKaBGQHyf7VeLMz9EA6jtgrmuZ9RHv7nlu6FCLY51tt4Ook5DG5y"
    "dlfYGcI/05xjSpVK5rpGM1qNfng=="
)
LINE = re.compile(r"^([^:]+):\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def test_a_line_made_with_mosquitto_passwds_salt_is_byte_for_byte_mosquitto_passwds() -> None:
    salt = base64.b64decode("E/b3KiZRl7BzAwhK")
    assert password_line("alice", "secret", iterations=101, salt=salt) == MOSQUITTO_PASSWD_LINE


def test_mosquitto_passwd_lines_check_and_parse() -> None:
    assert check_password(MOSQUITTO_PASSWD_LINE, "secret")
    assert not check_password(MOSQUITTO_PASSWD_LINE, "Secret")
    entry = parse_password_line(MOSQUITTO_PASSWD_LINE + "\n")
    assert (entry.username, entry.iterations) == ("alice", 101)
    assert (len(entry.salt), len(entry.digest)) == (SALT_BYTES, HASH_BYTES)


def test_lines_have_the_7_format_a_fresh_salt_and_the_default_iterations() -> None:
    first = password_line("tracefin-ingest", "pw")
    second = password_line("tracefin-ingest", "pw")
    match = LINE.match(first)
    assert match is not None, first
    assert match.group(1) == "tracefin-ingest"
    assert int(match.group(2)) == DEFAULT_ITERATIONS
    assert len(base64.b64decode(match.group(3))) == SALT_BYTES
    assert len(base64.b64decode(match.group(4))) == HASH_BYTES
    assert first != second  # a random salt per line
    assert check_password(first, "pw")
    assert check_password(second, "pw")
    assert "\n" not in first


@pytest.mark.parametrize("username", ["", "a:b", "org/device", "dev+", "dev#", "a b", "a\nb"])
def test_usernames_mosquitto_or_its_acls_would_misread_are_refused(username: str) -> None:
    with pytest.raises(ValueError):
        password_line(username, "pw")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        password_line("u", "")
    with pytest.raises(ValueError, match="iterations"):
        password_line("u", "pw", iterations=0)
    with pytest.raises(ValueError, match="salt"):
        password_line("u", "pw", salt=b"short")


@pytest.mark.parametrize(
    "line",
    [
        "alice",
        "alice:$6$E/b3KiZRl7BzAwhK$NrCz",  # Mosquitto 1.x sha512 format
        "alice:$7$x$E/b3KiZRl7BzAwhK$" + "A" * 88,
        "alice:$7$101$AAAA$" + base64.b64encode(bytes(HASH_BYTES)).decode(),  # short salt
        "alice:$7$101$E/b3KiZRl7BzAwhK$AAAA",  # short hash
        "alice:$7$101$not base64!$" + base64.b64encode(bytes(HASH_BYTES)).decode(),
        "alice:plain-text",
    ],
)
def test_lines_mosquitto_would_drop_do_not_parse(line: str) -> None:
    with pytest.raises(ValueError):
        parse_password_line(line)


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


def test_a_devices_acl_block_writes_its_inputs_and_reads_its_answers_only() -> None:
    assert device_acl_entry("acme-foods", "line-1").splitlines() == [
        "# device line-1 of acme-foods",
        "user acme-foods.line-1",
        "topic write tf/acme-foods/line-1/events",
        "topic write tf/acme-foods/line-1/telemetry",
        "topic read tf/acme-foods/line-1/receipts",
        "topic read tf/acme-foods/line-1/rejects",
    ]


def test_each_ingest_worker_has_its_own_account_which_reads_and_answers_only() -> None:
    assert [ingest_username(n) for n in (1, 2, 10)] == [
        "tracefin-ingest-1",
        "tracefin-ingest-2",
        "tracefin-ingest-10",
    ]
    assert ingest_acl_entry(2).splitlines() == [
        "# ingest worker 2",
        "user tracefin-ingest-2",
        "topic read tf/+/+/events",
        "topic read tf/+/+/telemetry",
        "topic write tf/+/+/receipts",
        "topic write tf/+/+/rejects",
    ]
    # A device's username always holds a `.`, an ingest account never: they cannot collide.
    assert "." not in ingest_username(1)
    with pytest.raises(ValueError, match="numbered from 1"):
        ingest_username(0)


def test_the_shipped_acl_has_the_blocks_broker_auth_writes() -> None:
    acl = (Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl").read_text()
    assert ingest_acl_entry(1) in acl
    assert ingest_acl_entry(2) in acl
    # No shared ingest account any more: one that still existed would let two workers (or
    # whoever holds its password) share one persistent session.
    assert "user tracefin-ingest\n" not in acl


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
    allowed = {"__future__", "base64", "dataclasses", "hashlib", "hmac", "os", "re"}
    assert imported <= allowed | {"ingest.topics"}

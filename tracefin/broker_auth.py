"""Mosquitto 2.x credentials: `$7$` PBKDF2-SHA512 password-file lines and per-device ACL blocks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from ingest.topics import device_topic

# Mosquitto 2.x decodes exactly these sizes and removes any entry that differs (security_default.c).
SALT_BYTES = 12
HASH_BYTES = 64
# mosquitto_passwd uses 101. tracefin's passwords are random 256-bit tokens (generate_password),
# which stretching cannot make stronger, while the broker pays the iterations on every CONNECT,
# including every device reconnecting at once after a broker restart: a modest count suffices.
DEFAULT_ITERATIONS = 10_000

# The finance process's broker account: it publishes financiers' alerts on tf/+/alerts only.
FINANCE_USERNAME = "tracefin-finance"
# The broker container's health check: it reads $SYS/broker/uptime only.
HEALTH_USERNAME = "tracefin-health"

_SLUG = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass(frozen=True)
class PasswordEntry:
    """One parsed `$7$` line of a Mosquitto password file."""

    username: str
    iterations: int
    salt: bytes
    digest: bytes


def password_line(
    username: str,
    password: str,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> str:
    """`username:$7$<iterations>$<base64 salt>$<base64 hash>`, as Mosquitto 2.x reads it."""
    _check_username(username)
    if not password:
        raise ValueError("the password must not be empty")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"Mosquitto needs a {SALT_BYTES}-byte salt, not {len(salt)} bytes")
    digest = _digest(password, salt, iterations)
    return f"{username}:$7${iterations}${_b64(salt)}${_b64(digest)}"


def parse_password_line(line: str) -> PasswordEntry:
    """The parts of a `$7$` line; ValueError for anything Mosquitto would drop."""
    username, sep, encoded = line.rstrip("\r\n").partition(":")
    if not sep:
        raise ValueError("a password line is `username:$7$…`")
    _check_username(username)
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        raise ValueError("only Mosquitto's `$7$` (PBKDF2-SHA512) format is supported")
    if not parts[2].isdigit() or int(parts[2]) < 1:
        raise ValueError(f"bad iteration count {parts[2]!r}")
    try:
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except ValueError:
        raise ValueError("salt and hash must be standard base64") from None
    if len(salt) != SALT_BYTES or len(digest) != HASH_BYTES:
        raise ValueError(f"Mosquitto needs a {SALT_BYTES}-byte salt and a {HASH_BYTES}-byte hash")
    return PasswordEntry(username, int(parts[2]), salt, digest)


def check_password(line: str, password: str) -> bool:
    """Whether `password` is the one a password-file line was made from (as the broker checks)."""
    entry = parse_password_line(line)
    return hmac.compare_digest(_digest(password, entry.salt, entry.iterations), entry.digest)


def generate_password(nbytes: int = 32) -> str:
    """A random URL-safe password: it goes into TRACEFIN_MQTT_URL and device configs verbatim."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode("ascii")


def device_username(org: str, device: str) -> str:
    """The broker username of a device: `{org}.{device}`.

    Slugs cannot contain `.`, so the name is unambiguous. Not `{org}/{device}` with a `%u`
    pattern ACL: Mosquitto 2.1 stopped matching substitutions that contain `/`, and usernames
    with MQTT separators or wildcards are refused by some auth plugins.
    """
    for kind, value in (("organisation", org), ("device", device)):
        if not _SLUG.match(value):
            raise ValueError(f"{kind} {value!r} is not a slug ([a-z0-9-], at most 64)")
    return f"{org}.{device}"


def ingest_username(worker: int) -> str:
    """The broker account of ingest worker `worker` (1, 2, …): `tracefin-ingest-{worker}`.

    One account per worker, not one shared: the broker binds each connection's client id to its
    username (`use_username_as_clientid`, deploy/mosquitto/mosquitto.conf), so the account names
    the worker's persistent session, and workers sharing one would take each other's session.
    """
    if worker < 1:
        raise ValueError(f"ingest workers are numbered from 1, not {worker}")
    return f"tracefin-ingest-{worker}"


def ingest_acl_entry(worker: int) -> str:
    """The ACL block of one ingest worker's account (deploy/mosquitto/acl ships workers 1 and 2).

    It reads the devices' events and telemetry (through the shared subscriptions of
    ingest/topics.py) and answers on any device's receipts and rejects; it cannot publish events.
    """
    return (
        f"# ingest worker {worker}\n"
        f"user {ingest_username(worker)}\n"
        "topic read tf/+/+/events\n"
        "topic read tf/+/+/telemetry\n"
        "topic write tf/+/+/receipts\n"
        "topic write tf/+/+/rejects\n"
    )


def device_topics(org: str, device: str) -> dict[str, str]:
    """The four topics of one device, by kind."""
    device_username(org, device)  # validates both slugs
    return {
        kind: device_topic(org, device, kind)
        for kind in ("events", "telemetry", "receipts", "rejects")
    }


def device_acl_entry(org: str, device: str) -> str:
    """The ACL block to append to deploy/mosquitto/acl for one device.

    The device may publish only its own events and telemetry and read only its own receipts
    and rejects: it cannot speak for another device, nor forge tracefin's answers.
    """
    topics = device_topics(org, device)
    return (
        f"# device {device} of {org}\n"
        f"user {device_username(org, device)}\n"
        f"topic write {topics['events']}\n"
        f"topic write {topics['telemetry']}\n"
        f"topic read {topics['receipts']}\n"
        f"topic read {topics['rejects']}\n"
    )


def _check_username(username: str) -> None:
    # `:` separates the fields of a password line; whitespace and newlines break the ACL file's
    # `user` lines; `+`, `#` and `/` would be read as topic syntax by pattern ACLs and plugins.
    if not username or any(ch in username for ch in ":+#/") or not username.isprintable():
        raise ValueError(f"{username!r} cannot be a Mosquitto username here")
    if any(ch.isspace() for ch in username):
        raise ValueError(f"{username!r}: a Mosquitto username here has no whitespace")


def _digest(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

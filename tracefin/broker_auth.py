"""The broker's accounts and ACLs as a Mosquitto 2.0 dynamic-security plugin config (dicts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from ingest.topics import device_topic, subscriptions

# The plugin decodes exactly these sizes and drops a client whose salt or hash differs
# (plugins/dynamic-security/clients.c and src/password_mosq.h, SALT_LEN, in 2.0.11 and 2.0.21).
SALT_BYTES = 12
HASH_BYTES = 64
# The plugin and mosquitto_passwd use 101. tracefin's passwords are random 256-bit tokens
# (generate_password), which stretching cannot make stronger, while the broker pays the iterations
# on every CONNECT, including every device reconnecting at once after a broker restart: a modest
# count suffices.
DEFAULT_ITERATIONS = 10_000

# The finance process's broker account: it publishes financiers' alerts on tf/+/alerts only.
FINANCE_USERNAME = "tracefin-finance"
# The broker container's health check: it reads $SYS/broker/uptime only.
HEALTH_USERNAME = "tracefin-health"

# The one role all ingest workers share; a device's role is named after its username instead.
INGEST_ROLE = "tracefin-ingest"
# Whatever no role grants is refused: the plugin then defers, and with no other plugin and no
# acl_file the broker denies (src/security.c). Unsubscribing too: nothing needs it granted.
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": False,
}

_SLUG = re.compile(r"^[a-z0-9-]{1,64}$")
_INGEST_USERNAME = re.compile(r"^tracefin-ingest-[1-9][0-9]*$")

# One entry of the plugin's JSON config (a client, a role, an ACL, or the whole file).
Json = dict[str, Any]


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


def device_topics(org: str, device: str) -> dict[str, str]:
    """The four topics of one device, by kind."""
    device_username(org, device)  # validates both slugs
    return {
        kind: device_topic(org, device, kind)
        for kind in ("events", "telemetry", "receipts", "rejects")
    }


def dynsec_client(
    username: str,
    password: str,
    rolename: str,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> Json:
    """A client of the plugin's config: the username, its PBKDF2-SHA512 hash as the plugin
    stores it (base64 `password` and `salt`, `iterations`) and its one role."""
    _check_username(username)
    if not password:
        raise ValueError("the password must not be empty")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"Mosquitto needs a {SALT_BYTES}-byte salt, not {len(salt)} bytes")
    return {
        "username": username,
        "password": _b64(_digest(password, salt, iterations)),
        "salt": _b64(salt),
        "iterations": iterations,
        "roles": [{"rolename": rolename}],
    }


def check_password(client: Mapping[str, Any], password: str) -> bool:
    """Whether `password` logs in as a client of the plugin's config (as the plugin checks)."""
    salt = base64.b64decode(client["salt"], validate=True)
    digest = base64.b64decode(client["password"], validate=True)
    if len(salt) != SALT_BYTES or len(digest) != HASH_BYTES:
        raise ValueError(f"the plugin drops a client without a {SALT_BYTES}-byte salt")
    return hmac.compare_digest(_digest(password, salt, int(client["iterations"])), digest)


def ingest_role(share_group: str) -> Json:
    """The ingest workers' role: the shared subscriptions of `share_group` exactly (ingest/
    topics.py), reading any device's events and telemetry, answering on any device's receipts and
    rejects; no event of their own.

    `subscribeLiteral`, and with the `$share/{group}/` prefix: the plugin checks a SUBSCRIBE
    against the topic filter as sent, prefix included, so a device (which has no such ACL) is
    refused the workers' group, and a worker may join that group only.
    """
    return {
        "rolename": INGEST_ROLE,
        "acls": [_allow("subscribeLiteral", topic) for topic in subscriptions(share_group)]
        + [_allow("publishClientReceive", device_topic("+", "+", kind)) for kind in _INPUTS]
        + [_allow("publishClientSend", device_topic("+", "+", kind)) for kind in _ANSWERS],
    }


def device_role(org: str, device: str) -> Json:
    """A device's own role, named after its username: it publishes only its own events and
    telemetry and subscribes to and reads only its own receipts and rejects."""
    topics = device_topics(org, device)
    return {
        "rolename": device_username(org, device),
        "acls": [_allow("publishClientSend", topics[kind]) for kind in _INPUTS]
        + [_allow(acltype, topics[kind]) for kind in _ANSWERS for acltype in _READ],
    }


def dynsec_config(
    share_group: str,
    passwords: Mapping[str, str],
    *,
    keep_devices_of: Mapping[str, Any] | None = None,
) -> Json:
    """The whole plugin config: the service accounts of `passwords` (username to password: the
    ingest workers, FINANCE_USERNAME, HEALTH_USERNAME) and their roles, the devices' accounts
    and roles of `keep_devices_of` (the config this one replaces) unchanged, nothing else."""
    clients = [
        dynsec_client(username, password, _service_role(username))
        for username, password in passwords.items()
    ]
    roles = [
        ingest_role(share_group),
        # Financiers' alerts, tf/{financier}/alerts (finance/alerts.py).
        {"rolename": FINANCE_USERNAME, "acls": [_allow("publishClientSend", "tf/+/alerts")]},
        # docker-compose.yml's health check waits for this retained $SYS message.
        {"rolename": HEALTH_USERNAME, "acls": [_allow(a, "$SYS/broker/uptime") for a in _READ]},
    ]
    if keep_devices_of is not None:
        clients += [c for c in keep_devices_of["clients"] if _is_device(c["username"])]
        roles += [r for r in keep_devices_of["roles"] if _is_device(r["rolename"])]
    return {
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def with_device(config: Mapping[str, Any], org: str, device: str, password: str) -> Json:
    """`config` with one device's account and role added, or replaced (a new password)."""
    username = device_username(org, device)
    return {
        **config,
        "clients": [c for c in config["clients"] if c["username"] != username]
        + [dynsec_client(username, password, username)],
        "roles": [r for r in config["roles"] if r["rolename"] != username]
        + [device_role(org, device)],
    }


def without_device(config: Mapping[str, Any], org: str, device: str) -> Json:
    """`config` without one device's account and role (a revoked or retired device); ValueError
    when it holds no such account."""
    username = device_username(org, device)
    clients = [c for c in config["clients"] if c["username"] != username]
    if len(clients) == len(config["clients"]):
        raise ValueError(f"the file holds no account {username!r}")
    return {
        **config,
        "clients": clients,
        "roles": [r for r in config["roles"] if r["rolename"] != username],
    }


_INPUTS = ("events", "telemetry")
_ANSWERS = ("receipts", "rejects")
# Reading a topic takes two grants in the plugin: the SUBSCRIBE, then each delivery.
_READ = ("subscribeLiteral", "publishClientReceive")


def _allow(acltype: str, topic: str) -> Json:
    return {"acltype": acltype, "topic": topic, "allow": True}


def _is_device(username: str) -> bool:
    # device_username always holds a `.`, a service account never does.
    return "." in username


def _service_role(username: str) -> str:
    if _INGEST_USERNAME.match(username):
        return INGEST_ROLE
    if username in (FINANCE_USERNAME, HEALTH_USERNAME):
        return username
    raise ValueError(f"{username!r} is not a service account (ingest worker, finance, health)")


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

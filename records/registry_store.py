"""SQL for organisations, API keys and devices."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg.rows import class_row

from epcis.capture import DeviceKey
from records.db import Conn

ROLES = ("manufacturer", "warehouse", "logistics", "retailer", "financier", "regulator")
API_KEY_PREFIX = "tf_"


class RegistryError(Exception):
    """A registration that cannot be done as asked (unknown org, duplicate slug, bad role...)."""


@dataclass(frozen=True)
class Org:
    id: int
    slug: str
    role: str


def hash_api_key(api_key: str) -> bytes:
    # Keys are 256-bit random, so a fast hash is enough; a slow KDF guards low-entropy secrets.
    return hashlib.sha256(api_key.encode()).digest()


def add_org(conn: Conn, slug: str, role: str) -> tuple[Org, str]:
    """Create an organisation and its first API key; the key is returned once, stored hashed."""
    if role not in ROLES:
        raise RegistryError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    with conn.transaction():
        existing = conn.execute("SELECT 1 FROM orgs WHERE slug = %s", (slug,)).fetchone()
        if existing is not None:
            raise RegistryError(f"organisation {slug!r} already exists")
        with conn.cursor(row_factory=class_row(Org)) as cursor:
            org = cursor.execute(
                "INSERT INTO orgs (slug, role) VALUES (%s, %s) RETURNING id, slug, role",
                (slug, role),
            ).fetchone()
        assert org is not None
        api_key = issue_api_key(conn, org.id)
    return org, api_key


def issue_api_key(conn: Conn, org_id: int) -> str:
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (org_id, key_prefix, key_hash) VALUES (%s, %s, %s)",
        (org_id, api_key[:8], hash_api_key(api_key)),
    )
    return api_key


def get_org(conn: Conn, slug: str) -> Org | None:
    with conn.cursor(row_factory=class_row(Org)) as cursor:
        return cursor.execute("SELECT id, slug, role FROM orgs WHERE slug = %s", (slug,)).fetchone()


def add_device(conn: Conn, org_slug: str, device_id: str, address: str | None) -> DeviceKey:
    """Register a device; `address` None means --unsigned (broker auth is its only proof)."""
    with conn.transaction():
        org = get_org(conn, org_slug)
        if org is None:
            raise RegistryError(f"unknown organisation {org_slug!r}")
        inserted = conn.execute(
            "INSERT INTO devices (org_id, device_id, address, unsigned) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING device_id",
            (org.id, device_id, address, address is None),
        ).fetchone()
        if inserted is None:
            raise RegistryError(f"device {org_slug}/{device_id} already exists")
    return DeviceKey(org.id, org.slug, device_id, address)


def find_devices(conn: Conn, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], DeviceKey]:
    """The registered devices among (org slug, device id) pairs, in one query."""
    pairs = list(keys)
    if not pairs:
        return {}
    rows = conn.execute(
        "SELECT o.id, o.slug, d.device_id, d.address"
        " FROM unnest(%s::text[], %s::text[]) AS k(slug, device_id)"
        " JOIN orgs o ON o.slug = k.slug"
        " JOIN devices d ON d.org_id = o.id AND d.device_id = k.device_id",
        ([slug for slug, _ in pairs], [device for _, device in pairs]),
    ).fetchall()
    devices = [DeviceKey(*row) for row in rows]
    return {(device.org_slug, device.device_id): device for device in devices}


def known_orgs(conn: Conn, slugs: Iterable[str]) -> set[str]:
    rows = conn.execute(
        "SELECT slug FROM orgs WHERE slug = ANY(%s::text[])", (list(slugs),)
    ).fetchall()
    return {row[0] for row in rows}


def principal_for_key(conn: Conn, api_key: str) -> Org | None:
    """The organisation a live (not revoked) API key belongs to."""
    with conn.cursor(row_factory=class_row(Org)) as cursor:
        return cursor.execute(
            "SELECT o.id, o.slug, o.role FROM api_keys k JOIN orgs o ON o.id = k.org_id"
            " WHERE k.key_hash = %s AND k.revoked_at IS NULL",
            (hash_api_key(api_key),),
        ).fetchone()


def revoke_keys(conn: Conn, slug: str) -> int:
    """Revoke every live key of an organisation; returns how many."""
    cursor = conn.execute(
        "UPDATE api_keys SET revoked_at = now() FROM orgs o"
        " WHERE api_keys.org_id = o.id AND o.slug = %s AND api_keys.revoked_at IS NULL",
        (slug,),
    )
    return cursor.rowcount

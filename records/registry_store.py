"""SQL of the registry: organisations, their GS1 prefixes, sites, API keys, devices, and the
authorisations and rule extensions the evidence-authority rules read."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from epcis.authority import RULES, Fact, Parties
from epcis.capture import DeviceKey
from records.db import Conn

ROLES = (
    "manufacturer",
    "warehouse",
    "logistics",
    "retailer",
    "financier",
    "regulator",
    "inspector",
    "guarantor",
)
# The kind of authorisation an owner of goods gives, by the agent's role.
AUTHORISATION_KINDS = {"manufacturer": "manufacture", "inspector": "inspect"}
API_KEY_PREFIX = "tf_"
# The roles of a person within an org (records/people_store.py): maker makes writes, checker
# approves another user's four-eyes request, viewer reads.
USER_ROLES = ("maker", "checker", "viewer")
# Every org's first user: the key `org add` prints is its, and it has every role.
ADMIN_USER = "admin"


class RegistryError(Exception):
    """A registration that cannot be done as asked (unknown org, duplicate slug, bad role...)."""


class NotYourPrefix(RegistryError):
    """A key (GTIN, GLN) outside the GS1 Company Prefixes of the org that claims it."""


@dataclass(frozen=True)
class Org:
    id: int
    slug: str
    role: str


def hash_api_key(api_key: str) -> bytes:
    # Keys are 256-bit random, so a fast hash is enough; a slow KDF guards low-entropy secrets.
    return hashlib.sha256(api_key.encode()).digest()


def add_org(
    conn: Conn, slug: str, role: str, prefixes: Sequence[str] = (), *, four_eyes: bool = False
) -> tuple[Org, str]:
    """Create an organisation, with its GS1 Company Prefixes, its first user `admin` (every
    role) and admin's first API key; the key is returned once, stored hashed. `four_eyes`: the
    org's gated finance operations wait for a second person (records/people_store.py)."""
    if role not in ROLES:
        raise RegistryError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    with conn.transaction():
        existing = conn.execute("SELECT 1 FROM orgs WHERE slug = %s", (slug,)).fetchone()
        if existing is not None:
            raise RegistryError(f"organisation {slug!r} already exists")
        with conn.cursor(row_factory=class_row(Org)) as cursor:
            org = cursor.execute(
                "INSERT INTO orgs (slug, role, four_eyes) VALUES (%s, %s, %s)"
                " RETURNING id, slug, role",
                (slug, role, four_eyes),
            ).fetchone()
        assert org is not None
        for prefix in prefixes:
            _claim_prefix(conn, org, prefix)
        conn.execute(
            "INSERT INTO users (org_id, name, roles) VALUES (%s, %s, %s)",
            (org.id, ADMIN_USER, list(USER_ROLES)),
        )
        api_key = issue_api_key(conn, org.id)
    return org, api_key


def set_org_name(conn: Conn, slug: str, name: str) -> None:
    """The organisation's name as people read it (1-200 characters, surrounding blanks cut)."""
    text = " ".join(name.split())
    if not 1 <= len(text) <= 200:
        raise RegistryError("an organisation's name has 1 to 200 characters")
    if conn.execute("UPDATE orgs SET name = %s WHERE slug = %s", (text, slug)).rowcount != 1:
        raise RegistryError(f"unknown organisation {slug!r}")


def org_name(conn: Conn, slug: str) -> str | None:
    row = conn.execute("SELECT name FROM orgs WHERE slug = %s", (slug,)).fetchone()
    return str(row[0]) if row is not None and row[0] is not None else None


def add_prefix(conn: Conn, org_slug: str, prefix: str) -> None:
    """Give an org a GS1 Company Prefix (4-12 digits; `identifiers.gs1_prefix` checks it)."""
    with conn.transaction():
        _claim_prefix(conn, _org(conn, org_slug), prefix)


def _claim_prefix(conn: Conn, org: Org, prefix: str) -> None:
    if not (prefix.isascii() and prefix.isdigit() and 4 <= len(prefix) <= 12):
        raise RegistryError(f"a GS1 Company Prefix has 4 to 12 digits, not {prefix!r}")
    # Two registrations of overlapping prefixes at once must not both pass the check below.
    conn.execute("LOCK TABLE org_prefixes IN SHARE ROW EXCLUSIVE MODE")
    # A key belongs to the org of its longest registered prefix, so a prefix that extends
    # another org's (or that another org's extends) would take keys from it: refused.
    rows = conn.execute(
        "SELECT p.prefix, o.slug, o.id FROM org_prefixes p JOIN orgs o ON o.id = p.org_id"
        " WHERE starts_with(p.prefix, %(prefix)s) OR starts_with(%(prefix)s, p.prefix)"
        " ORDER BY p.prefix",
        {"prefix": prefix},
    ).fetchall()
    for held, holder, holder_id in rows:
        if holder_id == org.id:
            continue
        if held == prefix:
            raise RegistryError(f"GS1 Company Prefix {prefix} belongs to {holder}")
        relation = "is a prefix of" if held.startswith(prefix) else "extends"
        raise RegistryError(
            f"GS1 Company Prefix {prefix} {relation} {holder}'s prefix {held}:"
            " a prefix belongs to one org"
        )
    conn.execute(
        "INSERT INTO org_prefixes (prefix, org_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (prefix, org.id),
    )


def org_prefixes(conn: Conn, org_slug: str) -> list[str]:
    rows = conn.execute(
        "SELECT p.prefix FROM org_prefixes p JOIN orgs o ON o.id = p.org_id"
        " WHERE o.slug = %s ORDER BY p.prefix",
        (org_slug,),
    ).fetchall()
    return [row[0] for row in rows]


def all_prefixes(conn: Conn) -> frozenset[str]:
    """Every GS1 Company Prefix registered, of any org: where a Digital Link's company prefix
    ends, for answers in EPC URN form (GS1-EPC-Format). Prefixes never overlap (above)."""
    rows = conn.execute("SELECT prefix FROM org_prefixes").fetchall()
    return frozenset(str(row[0]) for row in rows)


def _org(conn: Conn, slug: str) -> Org:
    org = get_org(conn, slug)
    if org is None:
        raise RegistryError(f"unknown organisation {slug!r}")
    return org


def issue_api_key(conn: Conn, org_id: int, user_id: int | None = None) -> str:
    """A new API key of a user of the org (None: its `admin`), returned once, stored hashed."""
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (org_id, user_id, key_prefix, key_hash)"
        " VALUES (%(org)s, coalesce(%(user)s,"
        "  (SELECT id FROM users WHERE org_id = %(org)s AND name = %(admin)s)), %(prefix)s,"
        "  %(hash)s)",
        {
            "org": org_id,
            "user": user_id,
            "admin": ADMIN_USER,
            "prefix": api_key[:8],
            "hash": hash_api_key(api_key),
        },
    )
    return api_key


def slug_of(conn: Conn, org_id: int) -> str | None:
    row = conn.execute("SELECT slug FROM orgs WHERE id = %s", (org_id,)).fetchone()
    return str(row[0]) if row else None


def get_org(conn: Conn, slug: str) -> Org | None:
    with conn.cursor(row_factory=class_row(Org)) as cursor:
        return cursor.execute("SELECT id, slug, role FROM orgs WHERE slug = %s", (slug,)).fetchone()


class AddressInUse(RegistryError):
    """The address is (or was) another device's key: addresses are unique across orgs."""


class NotSiteOperator(RegistryError):
    """A device bound to a site its org does not operate (or no org does)."""


def add_device(
    conn: Conn,
    org_slug: str,
    device_id: str,
    address: str | None,
    sites: Sequence[str] = (),
) -> DeviceKey:
    """Register a device, or rotate the key of a registered one; bind it to `sites` (GLNs).

    `address` None means --unsigned (broker auth is its only proof). A device registered again
    with a new address has its key rotated: the old key is revoked now and kept in device_keys
    (a revoked device comes back with the new key). An address any device ever had is refused
    (AddressInUse), as is registering the same device again otherwise.
    """
    with conn.transaction():
        org = get_org(conn, org_slug)
        if org is None:
            raise RegistryError(f"unknown organisation {org_slug!r}")
        if address is not None:
            _refuse_used_address(conn, address, org, device_id)
        existing = conn.execute(
            "SELECT address FROM devices WHERE org_id = %s AND device_id = %s FOR UPDATE",
            (org.id, device_id),
        ).fetchone()
        current = address
        if existing is None:
            _insert_device(conn, org, device_id, address)
        elif address is not None and existing[0] != address:
            _rotate_key(conn, org, device_id, address)
        elif sites:  # only new bindings for a registered device
            current = existing[0]
        else:
            raise RegistryError(f"device {org_slug}/{device_id} already exists")
        if sites:
            _bind_sites(conn, org, device_id, sites)
    return DeviceKey(org.id, org.slug, device_id, current)


def _refuse_used_address(conn: Conn, address: str, org: Org, device_id: str) -> None:
    row = conn.execute(
        "SELECT o.slug, k.device_id FROM device_keys k JOIN orgs o ON o.id = k.org_id"
        " WHERE k.address = %s AND (k.org_id, k.device_id) <> (%s, %s)"
        " UNION ALL SELECT o.slug, d.device_id FROM devices d JOIN orgs o ON o.id = d.org_id"
        " WHERE d.address = %s AND (d.org_id, d.device_id) <> (%s, %s)"
        " LIMIT 1",
        (address, org.id, device_id, address, org.id, device_id),
    ).fetchone()
    if row is not None:
        raise AddressInUse(f"address {address} is already registered for another device")
    revoked = conn.execute(
        "SELECT 1 FROM device_keys WHERE address = %s AND org_id = %s AND device_id = %s"
        " AND revoked_at IS NOT NULL",
        (address, org.id, device_id),
    ).fetchone()
    if revoked is not None:
        raise AddressInUse(f"address {address} was this device's key and is revoked")


def _insert_device(conn: Conn, org: Org, device_id: str, address: str | None) -> None:
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO devices (org_id, device_id, address, unsigned)"
                " VALUES (%s, %s, %s, %s)",
                (org.id, device_id, address, address is None),
            )
    except psycopg.errors.UniqueViolation:  # registered by another org a moment ago
        raise AddressInUse(f"address {address} is already registered for another device") from None
    if address is not None:
        conn.execute(
            "INSERT INTO device_keys (org_id, device_id, address, valid_from)"
            " SELECT org_id, device_id, address, created_at FROM devices"
            " WHERE org_id = %s AND device_id = %s",
            (org.id, device_id),
        )


def _rotate_key(conn: Conn, org: Org, device_id: str, address: str) -> None:
    conn.execute(
        "UPDATE device_keys SET revoked_at = now()"
        " WHERE org_id = %s AND device_id = %s AND revoked_at IS NULL",
        (org.id, device_id),
    )
    try:
        with conn.transaction():
            conn.execute(
                "UPDATE devices SET address = %s, unsigned = false, revoked_at = NULL"
                " WHERE org_id = %s AND device_id = %s",
                (address, org.id, device_id),
            )
    except psycopg.errors.UniqueViolation:
        raise AddressInUse(f"address {address} is already registered for another device") from None
    conn.execute(
        "INSERT INTO device_keys (org_id, device_id, address, valid_from)"
        " VALUES (%s, %s, %s, now())",
        (org.id, device_id, address),
    )


def _bind_sites(conn: Conn, org: Org, device_id: str, sites: Sequence[str]) -> None:
    """Bind a device to sites its org operates (GLN-13 each, already checked)."""
    operators: dict[str, str] = dict(
        conn.execute(
            "SELECT s.gln, o.slug FROM sites s JOIN orgs o ON o.id = s.operator_org_id"
            " WHERE s.gln = ANY(%s::text[])",
            (list(sites),),
        ).fetchall()
    )
    for gln in sites:
        operator = operators.get(gln)
        if operator is None:
            raise NotSiteOperator(f"no site {gln} is registered (tracefin site add)")
        if operator != org.slug:
            raise NotSiteOperator(f"site {gln} is operated by {operator}, not {org.slug}")
    conn.execute(
        "INSERT INTO device_sites (org_id, device_id, gln)"
        " SELECT %s, %s, gln FROM unnest(%s::text[]) AS gln ON CONFLICT DO NOTHING",
        (org.id, device_id, list(sites)),
    )


def bind_device_sites(conn: Conn, org_slug: str, device_id: str, sites: Sequence[str]) -> None:
    """Bind a registered device to sites its org operates (`sensor add`)."""
    with conn.transaction():
        org = get_org(conn, org_slug)
        if org is None:
            raise RegistryError(f"unknown organisation {org_slug!r}")
        if not _device_exists(conn, org.id, device_id):
            raise RegistryError(f"no device {org_slug}/{device_id}")
        _bind_sites(conn, org, device_id, sites)


def _device_exists(conn: Conn, org_id: int, device_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM devices WHERE org_id = %s AND device_id = %s", (org_id, device_id)
    ).fetchone()
    return row is not None


def revoke_device(conn: Conn, org_slug: str, device_id: str) -> datetime:
    """Revoke a device and its key from now on; returns when (the first time, if revoked before)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE devices d SET revoked_at = coalesce(d.revoked_at, now()) FROM orgs o"
            " WHERE d.org_id = o.id AND o.slug = %s AND d.device_id = %s"
            " RETURNING d.org_id, d.revoked_at",
            (org_slug, device_id),
        ).fetchone()
        if row is None:
            raise RegistryError(f"no device {org_slug}/{device_id}")
        conn.execute(
            "UPDATE device_keys SET revoked_at = %s"
            " WHERE org_id = %s AND device_id = %s AND revoked_at IS NULL",
            (row[1], row[0], device_id),
        )
    revoked_at: datetime = row[1]
    return revoked_at


@dataclass(frozen=True)
class _DeviceRow:
    org_id: int
    org_slug: str
    device_id: str
    address: str | None
    revoked_at: datetime | None
    retired: list[str]
    retired_at: list[datetime]


def find_devices(conn: Conn, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], DeviceKey]:
    """The registered devices among (org slug, device id) pairs, with their retired keys."""
    pairs = list(keys)
    if not pairs:
        return {}
    with conn.cursor(row_factory=class_row(_DeviceRow)) as cursor:
        rows = cursor.execute(
            "SELECT o.id AS org_id, o.slug AS org_slug, d.device_id, d.address, d.revoked_at,"
            " coalesce(r.retired, '{}') AS retired, coalesce(r.retired_at, '{}') AS retired_at"
            " FROM unnest(%s::text[], %s::text[]) AS k(slug, device_id)"
            " JOIN orgs o ON o.slug = k.slug"
            " JOIN devices d ON d.org_id = o.id AND d.device_id = k.device_id"
            " LEFT JOIN LATERAL (SELECT array_agg(dk.address) AS retired,"
            "  array_agg(dk.revoked_at) AS retired_at FROM device_keys dk"
            "  WHERE dk.org_id = d.org_id AND dk.device_id = d.device_id"
            "  AND dk.revoked_at IS NOT NULL AND dk.address IS DISTINCT FROM d.address) r ON true",
            ([slug for slug, _ in pairs], [device for _, device in pairs]),
        ).fetchall()
    devices = [
        DeviceKey(
            row.org_id,
            row.org_slug,
            row.device_id,
            row.address,
            revoked_at=row.revoked_at,
            retired_keys=tuple(zip(row.retired, row.retired_at, strict=True)),
        )
        for row in rows
    ]
    return {(device.org_slug, device.device_id): device for device in devices}


def device_registry_version(conn: Conn) -> int:
    """Advances with every change of a device or its keys (ingest's device cache reads it)."""
    row = conn.execute("SELECT version FROM device_registry_version").fetchone()
    return int(row[0]) if row else 0


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


# --- sites, authorisations, the authority rules' data -----------------------------------------


@dataclass(frozen=True)
class Site:
    gln: str  # 13 digits
    operator: str  # org slug
    name: str
    supervised: bool
    granted: bool  # the operator's grant: the GLN is outside the operating org's prefixes
    city: str | None = None


def add_site(
    conn: Conn,
    org_slug: str,
    gln: str,
    name: str,
    *,
    supervised: bool = False,
    grant: bool = False,
    city: str | None = None,
) -> Site:
    """Register a site (a 13-digit GLN, as `identifiers.gln13` gives it) an org operates.

    By its own prefix, or by the operator's `grant` for a GLN of someone else's prefix (else
    NotYourPrefix). Registering it again by the same org updates its name (and its city, when
    given) and makes it supervised if asked (never unsupervised); a site another org operates
    is refused.
    """
    with conn.transaction():
        org = _org(conn, org_slug)
        owner = authority_parties(conn).owner_of(gln)
        if owner != org.slug and not grant:
            holder = f"{owner}'s prefix" if owner is not None else "no prefix of yours"
            raise NotYourPrefix(
                f"GLN {gln} is in {holder}: {org.slug} registers sites by its own GS1 Company"
                " Prefix, or by the operator's grant"
            )
        with conn.cursor(row_factory=class_row(Site)) as cursor:
            site = cursor.execute(
                "INSERT INTO sites AS s (gln, operator_org_id, name, supervised, granted, city)"
                " VALUES (%(gln)s, %(org)s, %(name)s, %(supervised)s, %(granted)s, %(city)s)"
                " ON CONFLICT (gln) DO UPDATE SET name = excluded.name,"
                " supervised = s.supervised OR excluded.supervised,"
                " city = coalesce(excluded.city, s.city)"
                " WHERE s.operator_org_id = excluded.operator_org_id"
                " RETURNING s.gln, %(slug)s AS operator, s.name, s.supervised, s.granted, s.city",
                {
                    "gln": gln,
                    "org": org.id,
                    "name": name,
                    "supervised": supervised,
                    "granted": owner != org.slug,
                    "slug": org.slug,
                    "city": city,
                },
            ).fetchone()
        if site is None:
            raise RegistryError(f"site {gln} is operated by another organisation, not {org.slug}")
    return site


def list_sites(conn: Conn, org_slug: str | None = None) -> list[Site]:
    """The registered sites (of one operating org, or all), by GLN."""
    with conn.cursor(row_factory=class_row(Site)) as cursor:
        return cursor.execute(
            "SELECT s.gln, o.slug AS operator, s.name, s.supervised, s.granted, s.city"
            " FROM sites s JOIN orgs o ON o.id = s.operator_org_id"
            " WHERE %(slug)s::text IS NULL OR o.slug = %(slug)s ORDER BY s.gln",
            {"slug": org_slug},
        ).fetchall()


def site_names(conn: Conn, glns: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """The registered name and city of the sites among `glns` (13-digit GLNs), by GLN."""
    if not glns:
        return {}
    rows = conn.execute(
        "SELECT gln, name, city FROM sites WHERE gln = ANY(%s)", (list(glns),)
    ).fetchall()
    return {str(gln): (str(name), city) for gln, name, city in rows}


@dataclass(frozen=True)
class Authorisation:
    owner: str
    agent: str
    kind: str  # manufacture | inspect
    gtin: str | None  # None: every GTIN of the owner's prefixes


def authorise(
    conn: Conn, owner_slug: str, agent_slug: str, gtins: Sequence[str] = ()
) -> list[Authorisation]:
    """An owner of goods lets a manufacturer make, or an inspector inspect, its GTINs (14
    digits, each in the owner's prefixes; none: all of them). The kind follows the agent's role.
    """
    with conn.transaction():
        owner = _org(conn, owner_slug)
        agent = _org(conn, agent_slug)
        kind = AUTHORISATION_KINDS.get(agent.role)
        if kind is None:
            raise RegistryError(
                f"{agent.slug} is a {agent.role}: only a manufacturer or an inspector is authorised"
            )
        if agent.id == owner.id:
            raise RegistryError("an org needs no authorisation of its own")
        parties = authority_parties(conn)
        for gtin in gtins:
            if parties.owner_of(gtin) != owner.slug:
                raise NotYourPrefix(f"GTIN {gtin} is not in {owner.slug}'s prefixes")
        targets: list[str | None] = [*dict.fromkeys(gtins)] or [None]
        for target in targets:
            conn.execute(
                "INSERT INTO authorisations (owner_org_id, agent_org_id, kind, gtin)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (owner.id, agent.id, kind, target),
            )
    return [Authorisation(owner.slug, agent.slug, kind, target) for target in targets]


_BUILT_IN_STEPS = frozenset(step for rule in RULES for step in rule.biz_steps)


def add_rule_extension(conn: Conn, biz_step: str, fact: Fact) -> None:
    """The operator says which fact a bizStep (a custom URI, as canonical_cbv gives it)
    states; the built-in steps keep their rule."""
    if biz_step in _BUILT_IN_STEPS:
        raise RegistryError(f"bizStep {biz_step!r} has a built-in rule")
    if fact is Fact.TELEMETRY:
        raise RegistryError("telemetry is not stated by events")
    conn.execute(
        "INSERT INTO authority_rule_extensions (biz_step, fact) VALUES (%s, %s)"
        " ON CONFLICT (biz_step) DO UPDATE SET fact = excluded.fact, added_at = now()",
        (biz_step, fact.value),
    )


def rule_extensions(conn: Conn) -> dict[str, Fact]:
    """The operator's extensions of the authority rules: bizStep -> fact."""
    pairs = _pairs(conn, "SELECT biz_step AS key, fact AS value FROM authority_rule_extensions")
    return {step: Fact(fact) for step, fact in sorted(pairs.items())}


@dataclass(frozen=True)
class _Pair:
    key: str
    value: str


@dataclass(frozen=True)
class _Binding:
    org: str
    device: str
    gln: str


@dataclass(frozen=True)
class _AuthorisationRow:
    owner: str
    agent: str
    kind: str
    gtin: str | None


def _pairs(conn: Conn, query: str) -> dict[str, str]:
    with conn.cursor(row_factory=class_row(_Pair)) as cursor:
        return {row.key: row.value for row in cursor.execute(query)}


def mark_supervised(conn: Conn, gln: str) -> None:
    """A registered site becomes supervised (a financier supervises it); no site, no change."""
    conn.execute("UPDATE sites SET supervised = true WHERE gln = %s", (gln,))


def authority_parties(conn: Conn) -> Parties:
    """The registry facts the authority rules read, as one snapshot (small tables)."""
    bindings: dict[tuple[str, str], set[str]] = {}
    with conn.cursor(row_factory=class_row(_Binding)) as cursor:
        for binding in cursor.execute(
            "SELECT o.slug AS org, d.device_id AS device, d.gln"
            " FROM device_sites d JOIN orgs o ON o.id = d.org_id"
        ):
            bindings.setdefault((binding.org, binding.device), set()).add(binding.gln)
    with conn.cursor(row_factory=class_row(_AuthorisationRow)) as cursor:
        authorisations = cursor.execute(
            "SELECT o.slug AS owner, g.slug AS agent, a.kind, a.gtin FROM authorisations a"
            " JOIN orgs o ON o.id = a.owner_org_id JOIN orgs g ON g.id = a.agent_org_id"
        ).fetchall()
    return Parties(
        prefixes=_pairs(
            conn,
            "SELECT p.prefix AS key, o.slug AS value"
            " FROM org_prefixes p JOIN orgs o ON o.id = p.org_id",
        ),
        site_operators=_pairs(
            conn,
            "SELECT s.gln AS key, o.slug AS value"
            " FROM sites s JOIN orgs o ON o.id = s.operator_org_id",
        ),
        device_sites={key: frozenset(glns) for key, glns in bindings.items()},
        authorisations=frozenset((a.owner, a.agent, a.kind, a.gtin) for a in authorisations),
        roles=_pairs(conn, "SELECT slug AS key, role AS value FROM orgs"),
        supervised_sites=frozenset(
            str(gln) for (gln,) in conn.execute("SELECT gln FROM sites WHERE supervised")
        ),
    )

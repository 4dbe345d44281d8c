"""SQL of the people of each organisation (issue 15 item 5): named users with roles (maker,
checker, viewer), each with API keys of its own, and the org's four-eyes switch.

Routes still authorise by the org's role (manufacturer, financier...); the user's roles narrow
what the person may do within it (api/auth.py), and finance/four_eyes.py makes a financier's
gated operations wait for a second person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import class_row

from records.db import Conn
from records.registry_store import (
    ADMIN_USER,
    USER_ROLES,
    Org,
    RegistryError,
    get_org,
    hash_api_key,
    issue_api_key,
)

_USER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# The journal names the operator's CLI as `org/cli` (tracefin/cli.py): no user may take it.
CLI_USER = "cli"


@dataclass(frozen=True)
class User:
    id: int
    org: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Person(Org):
    """Who an API key speaks for: the org (its role decides the routes) and its user."""

    user_id: int
    user: str
    user_roles: tuple[str, ...]
    four_eyes: bool

    @property
    def name(self) -> str:
        """`org/user`, as the finance journal names the person."""
        return f"{self.slug}/{self.user}"

    def has(self, role: str) -> bool:
        return role in self.user_roles


@dataclass(frozen=True)
class _PersonRow:
    id: int
    slug: str
    role: str
    user_id: int
    user: str
    user_roles: list[str]
    four_eyes: bool


def _org(conn: Conn, slug: str) -> Org:
    org = get_org(conn, slug)
    if org is None:
        raise RegistryError(f"unknown organisation {slug!r}")
    return org


def add_user(conn: Conn, org_slug: str, name: str, roles: Sequence[str]) -> tuple[User, str]:
    """A new user of an org with `roles` and its first API key (returned once, stored hashed)."""
    wanted = tuple(dict.fromkeys(roles))
    if not wanted or any(role not in USER_ROLES for role in wanted):
        raise RegistryError(f"a user's roles are some of {', '.join(USER_ROLES)}, not {roles!r}")
    if not _USER_NAME.match(name):
        raise RegistryError(
            f"a user name is a lower-case letter, then up to 31 letters, digits or '-': {name!r}"
        )
    if name == CLI_USER:
        raise RegistryError(f"{CLI_USER!r} names the operator's CLI in the journal")
    with conn.transaction():
        org = _org(conn, org_slug)
        row = conn.execute(
            "INSERT INTO users (org_id, name, roles) VALUES (%s, %s, %s)"
            " ON CONFLICT (org_id, name) DO NOTHING RETURNING id",
            (org.id, name, list(wanted)),
        ).fetchone()
        if row is None:
            raise RegistryError(f"{org_slug} already has a user {name!r}")
        api_key = issue_api_key(conn, org.id, int(row[0]))
    return User(int(row[0]), org.slug, name, wanted), api_key


def users(conn: Conn, org_slug: str) -> list[User]:
    """An org's users, in the order they were added."""
    org = _org(conn, org_slug)
    rows = conn.execute(
        "SELECT id, name, roles FROM users WHERE org_id = %s ORDER BY id", (org.id,)
    ).fetchall()
    return [User(int(row[0]), org.slug, row[1], tuple(row[2])) for row in rows]


def person_for_key(conn: Conn, api_key: str) -> Person | None:
    """The org and user a live (not revoked) API key belongs to."""
    with conn.cursor(row_factory=class_row(_PersonRow)) as cursor:
        row = cursor.execute(
            "SELECT o.id, o.slug, o.role, u.id AS user_id, u.name AS user,"
            " u.roles AS user_roles, o.four_eyes"
            " FROM api_keys k JOIN orgs o ON o.id = k.org_id JOIN users u ON u.id = k.user_id"
            " WHERE k.key_hash = %s AND k.revoked_at IS NULL",
            (hash_api_key(api_key),),
        ).fetchone()
    if row is None:
        return None
    return Person(
        row.id, row.slug, row.role, row.user_id, row.user, tuple(row.user_roles), row.four_eyes
    )


def set_four_eyes(conn: Conn, org_slug: str, on: bool) -> None:
    """Turn an org's four eyes on or off (financiers only: only their operations are gated)."""
    with conn.transaction():
        org = _org(conn, org_slug)
        if org.role != "financier":
            raise RegistryError(f"{org_slug} is a {org.role}: four eyes is a financier's control")
        conn.execute("UPDATE orgs SET four_eyes = %s WHERE id = %s", (on, org.id))


def four_eyes(conn: Conn, org_id: int) -> bool:
    """Whether the org's gated operations wait for a second person (read now, not at login)."""
    row = conn.execute("SELECT four_eyes FROM orgs WHERE id = %s", (org_id,)).fetchone()
    return bool(row and row[0])


def user_name(conn: Conn, user_id: int) -> str:
    """`org/user` of a user id (the journal's name for the person)."""
    row = conn.execute(
        "SELECT o.slug, u.name FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = %s",
        (user_id,),
    ).fetchone()
    if row is None:
        raise RegistryError(f"no user {user_id}")
    return f"{row[0]}/{row[1]}"


__all__ = [
    "ADMIN_USER",
    "CLI_USER",
    "USER_ROLES",
    "Person",
    "User",
    "add_user",
    "four_eyes",
    "person_for_key",
    "set_four_eyes",
    "user_name",
    "users",
]

"""Bearer API keys: who is calling (org and user), and whether their roles may use a route."""

from __future__ import annotations

from typing import TypeVar

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Problem
from records import people_store
from records.db import Conn
from records.people_store import Person
from records.registry_store import Org

# Inspectors record inspection results as enterprises do (with their devices or over HTTP).
ENTERPRISE = ("manufacturer", "warehouse", "logistics", "retailer", "inspector")
FINANCIER = ("financier",)
REGULATOR = ("regulator",)
GUARANTOR = ("guarantor",)

# Methods that only read: a viewer may use them and nothing else.
READS = frozenset({"GET", "HEAD", "OPTIONS"})

_O = TypeVar("_O", bound=Org)

bearer = HTTPBearer(auto_error=False, description="an API key from `tracefin org add`")


def caller(conn: Conn, credentials: HTTPAuthorizationCredentials | None, method: str) -> Person:
    """The org and user of the request's API key; 401 without a valid, unrevoked key, 403
    `forbidden_user_role` for a write by a user who only views."""
    key = credentials.credentials if credentials is not None else ""
    if not key.strip():
        raise Problem(401, "unauthenticated", "send Authorization: Bearer <api key>")
    person = people_store.person_for_key(conn, key.strip())
    if person is None:
        raise Problem(401, "invalid_api_key", "the API key is unknown or revoked")
    if method not in READS and not (person.has("maker") or person.has("checker")):
        raise Problem(403, "forbidden_user_role", f"{person.name} is a viewer: it may only read")
    return person


def check_user_role(person: Person, role: str) -> Person:
    """`person` if the user has `role` (maker, checker); 403 `forbidden_user_role` if not."""
    if not person.has(role):
        raise Problem(
            403,
            "forbidden_user_role",
            f"this needs a {role}; {person.name} is {', '.join(person.user_roles)}",
        )
    return person


def check_role(org: _O, roles: tuple[str, ...]) -> _O:
    """`org` if its role is one of `roles`; 403 for the others."""
    if org.role not in roles:
        raise Problem(
            403,
            "forbidden_role",
            f"this route is for {', '.join(roles)}; the key is a {org.role}'s",
        )
    return org

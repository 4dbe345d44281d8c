"""Bearer API keys: who is calling, and whether their role may use a route."""

from __future__ import annotations

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Problem
from records import registry_store
from records.db import Conn
from records.registry_store import Org

# Inspectors record inspection results as enterprises do (with their devices or over HTTP).
ENTERPRISE = ("manufacturer", "warehouse", "logistics", "retailer", "inspector")
FINANCIER = ("financier",)
REGULATOR = ("regulator",)
GUARANTOR = ("guarantor",)

bearer = HTTPBearer(auto_error=False, description="an API key from `tracefin org add`")


def caller(conn: Conn, credentials: HTTPAuthorizationCredentials | None) -> Org:
    """The organisation of the request's API key; 401 without a valid, unrevoked key."""
    key = credentials.credentials if credentials is not None else ""
    if not key.strip():
        raise Problem(401, "unauthenticated", "send Authorization: Bearer <api key>")
    org = registry_store.principal_for_key(conn, key.strip())
    if org is None:
        raise Problem(401, "invalid_api_key", "the API key is unknown or revoked")
    return org


def check_role(org: Org, roles: tuple[str, ...]) -> Org:
    """`org` if its role is one of `roles`; 403 for the others."""
    if org.role not in roles:
        raise Problem(
            403,
            "forbidden_role",
            f"this route is for {', '.join(roles)}; the key is a {org.role}'s",
        )
    return org

"""Bearer API keys: who is calling, and whether their role may use a route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Problem
from records import registry_store
from records.registry_store import Org

ENTERPRISE = ("manufacturer", "warehouse", "logistics", "retailer")
FINANCIER = ("financier",)
REGULATOR = ("regulator",)


_bearer = HTTPBearer(auto_error=False, description="an API key from `tracefin org add`")


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Org:
    """The organisation of the request's API key; 401 without a valid, unrevoked key."""
    key = credentials.credentials if credentials is not None else ""
    if not key.strip():
        raise Problem(401, "unauthenticated", "send Authorization: Bearer <api key>")
    with request.app.state.pool.connection() as conn:
        org = registry_store.principal_for_key(conn, key.strip())
    if org is None:
        raise Problem(401, "invalid_api_key", "the API key is unknown or revoked")
    return org


def require(*roles: str) -> Callable[[Org], Org]:
    """A dependency that lets only these roles through (403 for the others)."""

    def check(org: Annotated[Org, Depends(principal)]) -> Org:
        if org.role not in roles:
            raise Problem(
                403,
                "forbidden_role",
                f"this route is for {', '.join(roles)}; the key is a {org.role}'s",
            )
        return org

    return check


Enterprise = Annotated[Org, Depends(require(*ENTERPRISE))]
Financier = Annotated[Org, Depends(require(*FINANCIER))]
Regulator = Annotated[Org, Depends(require(*REGULATOR))]
AnyOrg = Annotated[Org, Depends(principal)]

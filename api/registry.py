"""Registry routes: the sites (GLNs) an organisation operates, registered by its own prefix."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api.deps import DbConn, Enterprise, FinanceJournal
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS
from finance import service
from records import registry_store

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


class SiteCreate(BaseModel):
    gln: str = Field(
        min_length=13,
        max_length=200,
        description="13 digits, a Digital Link https://id.gs1.org/414/… or urn:epc:id:sgln:…",
    )
    name: str = Field(min_length=1, max_length=200)
    city: str | None = Field(
        None, min_length=1, max_length=100, description="shown beside the name to shoppers"
    )
    supervised: bool = Field(
        default=False, description="a warehouse financiers may supervise (as collateral)"
    )


class SitePublic(BaseModel):
    """A site and the org that operates it; `granted`: by the operator's grant, not a prefix."""

    gln: str
    operator: str
    name: str
    supervised: bool
    granted: bool
    city: str | None = None


class SitesPage(BaseModel):
    sites: list[SitePublic]


@router.post(
    "/v1/sites",
    status_code=201,
    response_model=SitePublic,
    summary="Register a site your organisation operates (a GLN in your GS1 Company Prefix)",
)
def add_site(
    conn: DbConn,
    journal: FinanceJournal,
    org: Enterprise,
    site: Annotated[SiteCreate, Body()],
) -> SitePublic:
    """A GLN outside your prefixes needs the operator's grant (`tracefin site add --grant`):
    403 not_your_prefix; a wrong check digit is 422 invalid_identifier; a site another org
    operates is 409 site_taken."""
    created = service.add_site(
        conn, journal, org.slug, site.gln, site.name, supervised=site.supervised, city=site.city
    )
    return SitePublic.model_validate(created, from_attributes=True)


@router.get("/v1/sites", response_model=SitesPage, summary="The sites your organisation operates")
def list_sites(conn: DbConn, org: Enterprise) -> SitesPage:
    return SitesPage(
        sites=[
            SitePublic.model_validate(site, from_attributes=True)
            for site in registry_store.list_sites(conn, org.slug)
        ]
    )

"""Routes of the programme as a whole: closing lines, run-off, reports and the journal.

Reports answer JSON, or CSV with the same rows and columns when the request's `Accept` asks for
`text/csv`; the regulator reads every financier's (or one's, with `financier=`), a financier
its own.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import AnyOrg, DbConn, FinanceJournal, Financier, Oversight, Regulator
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS
from api.requests import PENDING_RESPONSE
from api.schemas import LinePublic
from finance import four_eyes, portfolio, service
from finance.store import credit
from finance.store import journal as journal_store

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


@router.post(
    "/v1/lines/{line_id}/close",
    response_model=LinePublic,
    responses=PENDING_RESPONSE,
    summary="Close a settled line: nothing drawn or owed, no live pledge",
)
def close_line(conn: DbConn, journal: FinanceJournal, org: Financier, line_id: int) -> LinePublic:
    line = four_eyes.submit(conn, journal, org, service.close_line, line_id=line_id)
    return LinePublic.model_validate(line, from_attributes=True)


class RunOffCreate(BaseModel):
    """Put a programme into run-off: one financier's lines, or every line (`financier`
    null)."""

    financier: str | None = Field(pattern=r"^[a-z0-9-]{1,64}$")
    reason: str = Field(min_length=1, max_length=2000)


class RunOffPublic(BaseModel):
    financier: str | None
    started_at: datetime
    started_by: str
    reason: str


@router.post(
    "/v1/programmes/run-off",
    response_model=RunOffPublic,
    summary="Put a programme into run-off: no new loans, offers or limit increases",
)
def run_off(
    conn: DbConn, journal: FinanceJournal, org: Regulator, body: Annotated[RunOffCreate, Body()]
) -> RunOffPublic:
    stopped = service.run_off(conn, journal, org.slug, body.financier, body.reason)
    return RunOffPublic.model_validate(stopped, from_attributes=True)


@router.get(
    "/v1/programmes/run-offs",
    response_model=list[RunOffPublic],
    summary="The programmes in run-off",
)
def run_offs(conn: DbConn, org: Oversight) -> list[RunOffPublic]:
    return [
        RunOffPublic.model_validate(row, from_attributes=True) for row in service.run_offs(conn)
    ]


# --- reports ---------------------------------------------------------------------------------


class ReportPublic(BaseModel):
    """A report: its name, its day, and its rows (the columns of its CSV)."""

    report: str
    as_of: date
    rows: list[dict[str, Any]]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _answer(request: Request, name: str, as_of: date, rows: list[Any]) -> Response | ReportPublic:
    """CSV when asked for in `Accept`, else JSON; one column per row field, in field order."""
    if "text/csv" in request.headers.get("accept", ""):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
        columns = [f.name for f in fields(rows[0])] if rows and is_dataclass(rows[0]) else []
        if columns:
            writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(getattr(row, column)) for column in columns])
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{as_of}.csv"'},
        )
    return ReportPublic(
        report=name,
        as_of=as_of,
        rows=[
            {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(row).items()}
            for row in rows
        ],
    )


_CSV = {"text/csv": {"schema": {"type": "string"}}}
AsOf = Annotated[date | None, Query(description="YYYY-MM-DD (default today, UTC)")]
OfFinancier = Annotated[
    str | None,
    Query(pattern=r"^[a-z0-9-]{1,64}$", description="one financier's (the regulator's choice)"),
]


def _day(conn: DbConn, as_of: date | None) -> date:
    return as_of if as_of is not None else credit.utc_today(conn)


@router.get(
    "/v1/reports/exposure",
    response_model=ReportPublic,
    responses={200: {"content": _CSV}},
    summary="Outstanding exposure by financier, borrower or product category, per currency",
)
def exposure_report(
    request: Request,
    conn: DbConn,
    org: Oversight,
    by: Annotated[Literal["financier", "borrower", "category"], Query()] = "financier",
    financier: OfFinancier = None,
    as_of: AsOf = None,
) -> Response | ReportPublic:
    day = _day(conn, as_of)
    rows = portfolio.exposure(conn, org.slug, by, financier, day)
    return _answer(request, "exposure", day, rows)


@router.get(
    "/v1/reports/concentration",
    response_model=ReportPublic,
    responses={200: {"content": _CSV}},
    summary="Each financier's top borrowers and their share of its exposure",
)
def concentration_report(
    request: Request,
    conn: DbConn,
    org: Oversight,
    top: Annotated[int, Query(ge=1, le=100)] = 5,
    financier: OfFinancier = None,
    as_of: AsOf = None,
) -> Response | ReportPublic:
    day = _day(conn, as_of)
    rows = portfolio.concentration(conn, org.slug, top, financier, day)
    return _answer(request, "concentration", day, rows)


@router.get(
    "/v1/reports/aging",
    response_model=ReportPublic,
    responses={200: {"content": _CSV}},
    summary="Overdue loans and open margin calls by age (1-30, 31-60, 61-90, 91+ days)",
)
def aging_report(
    request: Request,
    conn: DbConn,
    org: Oversight,
    financier: OfFinancier = None,
    as_of: AsOf = None,
) -> Response | ReportPublic:
    day = _day(conn, as_of)
    return _answer(request, "aging", day, portfolio.aging(conn, org.slug, financier, day))


@router.get(
    "/v1/reports/runoff",
    response_model=ReportPublic,
    responses={200: {"content": _CSV}},
    summary="Every loan still owing, with its collateral, status and expected end",
)
def runoff_report(
    request: Request,
    conn: DbConn,
    org: Oversight,
    financier: OfFinancier = None,
    as_of: AsOf = None,
) -> Response | ReportPublic:
    day = _day(conn, as_of)
    return _answer(request, "runoff", day, portfolio.run_off(conn, org.slug, financier, day))


class DecisionRead(BaseModel):
    """A financing decision: what was asked against which lot, and what was decided, why."""

    id: int
    application_id: int
    line_id: int
    lot_uri: str
    requested_minor: int
    kind: Literal["approve", "partial", "decline", "refer"]
    approved_minor: int
    reasons: list[str]
    collateral_minor: int
    decided_at: datetime


@router.get(
    "/v1/decisions",
    response_model=list[DecisionRead],
    summary="Financing decisions on your lines (financier or borrower; the regulator: all)",
)
def decisions(conn: DbConn, org: AnyOrg) -> list[DecisionRead]:
    return [
        DecisionRead.model_validate(row, from_attributes=True)
        for row in service.decisions(conn, org.slug)
    ]


# --- the journal -----------------------------------------------------------------------------


class JournalEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    evidence: list[str]  # event hashes, hex
    log_index: int | None


@router.get(
    "/v1/journal",
    response_model=list[JournalEntryPublic],
    summary="The finance journal, read-only, by cursor (the regulator's)",
)
def journal(
    conn: DbConn,
    org: Regulator,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="an entry id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JournalEntryPublic]:
    return [
        JournalEntryPublic(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            detail=row.detail,
            evidence=[bytes(e).hex() for e in row.evidence],
            log_index=row.log_index,
        )
        for row in journal_store.entries_after(conn, after, limit)
    ]

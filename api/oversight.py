"""Financier and regulator routes: goods status, risk flags, trace and audit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_serializer

from api.deps import AnyOrg, Config, DbConn, FinanceJournal, Oversight, Regulator
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.schemas import Attester, AuditResult, Recorder, RiskFlag, TraceResult, TraceStep
from epcis.authority import Reason
from finance import service
from finance.audit import full_audit
from finance.store import credit, goods
from ledger import provenance
from ledger.chain import connect

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


class InspectionPublic(BaseModel):
    disposition: str | None
    time: datetime | None

    @field_serializer("time")
    def _iso(self, time: datetime | None) -> str | None:
        # Python's ISO form (`+00:00`), as this route has always answered.
        return time.isoformat() if time is not None else None


class LotPledgePublic(BaseModel):
    line: int
    lot_key: str
    quantity: int = Field(description="units pledged: the lot's at pledging, less partial releases")


class LotEvidencePublic(BaseModel):
    """An event applied to the lot: anchored or not, who recorded and attested it, and whether
    it counts as evidence (finance believes only events that do)."""

    event_hash: str
    anchored: bool
    recorded_by: Recorder | None = Field(description="the earliest attestation of the event")
    signed: bool = Field(description="whether the recorder signed its submission")
    attested_by: list[Attester] = Field(description="everyone else who submitted the event")
    evidence: Literal["counts", "unattested"] = Field(
        description="counts: attested by the party the authority rules name for this fact;"
        " unattested: stored, but it changes nothing about the collateral"
    )
    reason: Reason | None = Field(None, description="why the event does not count")


class LotStatusPublic(BaseModel):
    """Goods status of a lot: quantity, place, custody, inspection, pledge, flags, value."""

    lot: str
    quantity: int
    location: str | None
    custody: str | None
    best_before: date | None
    last_inspection: InspectionPublic
    pledge: LotPledgePublic | None
    risk_flags: list[str]
    collateral_value: str
    collateral_value_minor: int
    evidence: list[LotEvidencePublic]


@router.get("/v1/lots/{lot:path}", response_model=LotStatusPublic, summary="Goods status of a lot")
def lot_status(conn: DbConn, lot: str, org: AnyOrg) -> LotStatusPublic:
    """The owner, financiers it is offered or pledged to, and regulators may look."""
    uri = service.canonical_lot(lot)
    if not goods.lot_visible_to(conn, org.id, org.role, uri):
        # The same answer as for a lot that does not exist: no probing of others' goods.
        raise Problem(404, "unknown_lot", f"no lot {uri} visible to this key")
    status = service.lot_status(conn, uri, org.slug if org.role == "financier" else None)
    return LotStatusPublic.model_validate(status, from_attributes=True)


class SensorMinutePublic(BaseModel):
    """One minute of a metric at a site: all its bound devices' readings in that minute."""

    start: datetime
    lowest: float
    highest: float
    mean: float
    readings: int


class SensorHistoryPublic(BaseModel):
    """A lot's sensor history: the metric at the site holding it, minute by minute."""

    lot: str
    site: str | None = Field(description="GLN of the site holding the lot; null: none (no minutes)")
    metric: str
    since: datetime
    until: datetime
    minutes: list[SensorMinutePublic] = Field(
        description="the latest `limit` minutes from the minute holding `since` to before"
        " `until`, oldest first"
    )


@router.get(
    "/v1/sensor-history/{lot:path}",
    response_model=SensorHistoryPublic,
    summary="A lot's sensor readings, minute by minute, at the site holding it",
)
def sensor_history(
    conn: DbConn,
    lot: str,
    org: AnyOrg,
    metric: Annotated[str, Query(pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")] = "temperature",
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_080)] = 1_440,
) -> SensorHistoryPublic:
    """Read from the per-minute telemetry aggregate (TimescaleDB) or view (PostgreSQL); only
    the devices bound to the site count. Who may see the lot's status may see this."""
    uri = service.canonical_lot(lot)
    if not goods.lot_visible_to(conn, org.id, org.role, uri):
        raise Problem(404, "unknown_lot", f"no lot {uri} visible to this key")
    history = service.sensor_history(conn, uri, metric, since, until, limit)
    if history is None:
        raise Problem(404, "unknown_lot", f"no lot {uri} visible to this key")
    return SensorHistoryPublic(
        lot=history.lot,
        site=history.site,
        metric=history.metric,
        since=history.since,
        until=history.until,
        minutes=[
            SensorMinutePublic(
                start=m.bucket,
                lowest=m.min_value,
                highest=m.max_value,
                mean=m.mean_value,
                readings=m.readings,
            )
            for m in history.minutes
        ],
    )


@router.get("/v1/risk-flags", response_model=list[RiskFlag], summary="The financier's risk feed")
def risk_flags(
    conn: DbConn, org: Oversight, since: Annotated[datetime | None, Query()] = None
) -> list[RiskFlag]:
    return [
        RiskFlag(
            id=row.id,
            lot=row.lot_uri,
            line_id=row.line_id,
            kind=row.kind,
            detail=row.detail,
            raised_at=row.raised_at,
        )
        for row in (
            credit.every_risk_flag(conn, since)
            if org.role == "regulator"
            else credit.risk_flags_for_financier(conn, org.id, since)
        )
    ]


@router.get(
    "/v1/trace/{lot:path}",
    response_model=TraceResult,
    summary="Trace a lot forward (where it went) or backward (what it came from)",
)
def trace(
    conn: DbConn,
    lot: str,
    org: Regulator,
    direction: Annotated[Literal["forward", "backward"], Query()] = "forward",
) -> TraceResult:
    uri = service.canonical_lot(lot)
    steps = provenance.trace(conn, uri, direction)
    return TraceResult(
        lot=uri,
        direction=direction,
        steps=[
            TraceStep(
                event_hash=s.hash_id,
                event_time=s.event_time,
                biz_step=s.biz_step,
                biz_location=s.biz_location,
                parties=s.parties,
                items=s.items,
            )
            for s in steps
        ],
    )


@router.get("/v1/audit", response_model=AuditResult, summary="Audit the store against the chain")
def run_audit(conn: DbConn, config: Config, journal: FinanceJournal, org: Regulator) -> AuditResult:
    rpc = config.chain_rpc_url
    report = full_audit(conn, connect(rpc) if rpc else None, journal)
    return AuditResult.model_validate(report.as_json())

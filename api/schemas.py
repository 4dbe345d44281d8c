"""Request and response models of the HTTP API (the OpenAPI document is built from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Verification(BaseModel):
    state: Literal["anchored", "pending", "failed"]
    batch_id: int | None = None
    block_number: int | None = None
    tx_hash: str | None = None
    proof_url: str


class SensorReading(BaseModel):
    type: str | None = None
    value: float | int | None = None
    uom: str | None = None


class EventPublic(BaseModel):
    event_hash: str
    event_time: datetime
    event_time_zone_offset: str
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    stage: str | None
    read_point: str | None
    biz_location: str | None
    sensor_readings: list[SensorReading]
    verification: Verification


class ProductPublic(BaseModel):
    gtin: str
    name: str | None = None
    lot: str | None = None
    serial: str | None = None
    digital_link: str


class ProvenancePublic(BaseModel):
    product: ProductPublic
    events: list[EventPublic]
    verified: int = Field(description="events anchored on chain and intact")
    pending: int
    failed: int


class CaptureItem(BaseModel):
    index: int
    event_hash: str
    status: Literal["accepted", "duplicate"]


class CaptureRefusal(BaseModel):
    index: int
    reason: str
    detail: str


class CaptureResultPublic(BaseModel):
    accepted: list[CaptureItem]
    rejected: list[CaptureRefusal]


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    next_cursor: int | None


class VerifyResult(BaseModel):
    valid: bool
    reasons: list[str]


class TraceStep(BaseModel):
    event_hash: str
    event_time: datetime
    biz_step: str | None
    biz_location: str | None
    parties: list[str]
    items: list[str]


class TraceResult(BaseModel):
    lot: str
    direction: Literal["forward", "backward"]
    steps: list[TraceStep]


class AuditFindingPublic(BaseModel):
    kind: str
    detail: str


class AuditResult(BaseModel):
    clean: bool
    events_checked: int
    batches_checked: int
    findings: list[AuditFindingPublic]


class RiskFlag(BaseModel):
    id: int
    lot: str | None
    line_id: int | None
    kind: str
    detail: str
    raised_at: datetime


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]

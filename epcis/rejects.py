"""Stable, machine-readable reasons for refusing an event or a payload."""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    """Reason codes sent on `.../rejects`, kept in the dead-letter table and counted in metrics.

    The string values are a public contract (devices and dashboards match on them): never rename.
    """

    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_JSON = "not_json"
    NOT_AN_EVENT = "not_an_event"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VOCABULARY = "invalid_vocabulary"
    INVALID_IDENTIFIER = "invalid_identifier"
    NAIVE_EVENT_TIME = "naive_event_time"
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    INVALID_TOPIC = "invalid_topic"
    UNKNOWN_ORG = "unknown_org"
    UNKNOWN_DEVICE = "unknown_device"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_MALFORMED = "signature_malformed"
    SIGNATURE_MISMATCH = "signature_mismatch"
    DEVICE_REVOKED = "device_revoked"
    INVALID_TELEMETRY = "invalid_telemetry"
    INVALID_TEXT = "invalid_text"
    STORAGE_REFUSED = "storage_refused"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    # A rule of the EPCIS 2.0 JSON Schema beyond types and required fields (e.g. ilmd only
    # with action ADD).
    SCHEMA_VIOLATION = "schema_violation"
    # An XML payload that is not a well-formed, DTD-free EPCIS 2.0 XML document.
    INVALID_XML = "invalid_xml"


class EventRejected(Exception):
    """Raised by pure validation code; carries the stable code and a human-readable detail."""

    def __init__(self, code: RejectCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail

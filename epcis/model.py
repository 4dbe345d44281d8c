"""EPCIS 2.0 JSON event and document models; validation that maps every fault to a reject code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from epcis.identifiers import normalise_epc
from epcis.rejects import EventRejected, RejectCode
from epcis.vocabulary import CBVKind, Stage, canonical_cbv, stage_of

__all__ = [
    "EVENT_TYPES",
    "AggregationEvent",
    "AssociationEvent",
    "BizTransaction",
    "Destination",
    "EPCISDocument",
    "EPCISEvent",
    "EPCISQueryDocument",
    "ErrorDeclaration",
    "ObjectEvent",
    "PersistentDisposition",
    "Place",
    "QuantityElement",
    "SensorElement",
    "SensorMetadata",
    "SensorReport",
    "Source",
    "TransactionEvent",
    "TransformationEvent",
    "events_from_document",
    "parse_event",
]

DEFAULT_MAX_FUTURE_SKEW: Final = timedelta(minutes=10)

# Patterns run in pydantic-core (Rust); of the identifiers only EPCs call back into Python.
_URI_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$"
_OFFSET_PATTERN: Final = r"^[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)$"
_UOM_PATTERN: Final = r"^[A-Z0-9]{2,3}$"
_HEX_PATTERN: Final = r"^[A-Fa-f0-9]+$"

_PATTERN_FAULTS: Final[dict[str, tuple[RejectCode, str]]] = {
    _URI_PATTERN: (
        RejectCode.INVALID_IDENTIFIER,
        "is not a URI (expected e.g. urn:epc:id:sgtin:... or https://id.gs1.org/...)",
    ),
    _OFFSET_PATTERN: (RejectCode.WRONG_TYPE, "must be a zone offset ±HH:MM from -14:00 to +14:00"),
    _UOM_PATTERN: (
        RejectCode.WRONG_TYPE,
        "must be a UN/CEFACT Rec. 20 unit code (2-3 upper-case letters or digits)",
    ),
    _HEX_PATTERN: (RejectCode.WRONG_TYPE, "must be hexadecimal digits"),
}

# RFC 3339 date-time; the zone group is optional only so a naive time gets its own reject code.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?P<zone>[Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


def _parse_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("time_type", "must be an RFC 3339 date-time string")
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise PydanticCustomError(
            "time_format", "is not an RFC 3339 date-time (e.g. 2024-01-01T10:00:00.000+01:00)"
        )
    if match.group("zone") is None:
        raise PydanticCustomError("naive_time", "has no zone offset: end it with Z or ±HH:MM")
    try:
        parsed = datetime.fromisoformat(value.upper())
        # Years 1 and 9999 with an offset overflow in UTC; catch that here, not in a consumer.
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("time_range", "is not a valid date-time") from None
    return parsed


def _normalised_epc(value: str) -> str:
    try:
        return normalise_epc(value)
    except ValueError as exc:
        raise PydanticCustomError("invalid_identifier", str(exc)) from None


def _vocabulary(kind: CBVKind) -> AfterValidator:
    def canonical(value: str) -> str:
        try:
            return canonical_cbv(kind, value)
        except EventRejected as exc:
            raise PydanticCustomError("invalid_vocabulary", exc.detail) from None

    return AfterValidator(canonical)


# Parsed here rather than by pydantic, whose lax datetime would take 1700000000 or a date alone.
Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]
Uri = Annotated[str, StringConstraints(pattern=_URI_PATTERN)]
Epc = Annotated[str, StringConstraints(pattern=_URI_PATTERN), AfterValidator(_normalised_epc)]
TimeZoneOffset = Annotated[str, StringConstraints(pattern=_OFFSET_PATTERN)]
Uom = Annotated[str, StringConstraints(pattern=_UOM_PATTERN)]
HexBinary = Annotated[str, StringConstraints(pattern=_HEX_PATTERN)]
Number = int | float
Action = Literal["ADD", "OBSERVE", "DELETE"]
BizStep = Annotated[str, _vocabulary(CBVKind.BIZ_STEP)]
Disposition = Annotated[str, _vocabulary(CBVKind.DISPOSITION)]
BizTransactionType = Annotated[str, _vocabulary(CBVKind.BIZ_TRANSACTION_TYPE)]
SourceDestType = Annotated[str, _vocabulary(CBVKind.SOURCE_DEST_TYPE)]
ErrorReason = Annotated[str, _vocabulary(CBVKind.ERROR_REASON)]
SensorMeasurementType = Annotated[str, _vocabulary(CBVKind.SENSOR_MEASUREMENT_TYPE)]


class _Model(BaseModel):
    # strict: JSON types only (no "5" -> 5, no 1700000000 -> datetime); extra: user extensions
    # (namespaced keys, @context) are part of the event and of its hash, so they are kept.
    model_config = ConfigDict(
        strict=True,
        extra="allow",
        frozen=True,
        allow_inf_nan=False,
        serialize_by_alias=True,
    )


class Place(_Model):
    """readPoint or bizLocation."""

    id: Uri


class QuantityElement(_Model):
    epc_class: Epc = Field(alias="epcClass")
    quantity: Number | None = None
    uom: Uom | None = None


class BizTransaction(_Model):
    type: BizTransactionType | None = None
    biz_transaction: Uri = Field(alias="bizTransaction")


class Source(_Model):
    type: SourceDestType
    source: Uri


class Destination(_Model):
    type: SourceDestType
    destination: Uri


class ErrorDeclaration(_Model):
    declaration_time: Timestamp = Field(alias="declarationTime")
    reason: ErrorReason | None = None
    corrective_event_ids: list[str] = Field(default_factory=list, alias="correctiveEventIDs")


class PersistentDisposition(_Model):
    to_set: list[Disposition] = Field(default_factory=list, alias="set")
    to_unset: list[Disposition] = Field(default_factory=list, alias="unset")


class SensorMetadata(_Model):
    time: Timestamp | None = None
    start_time: Timestamp | None = Field(None, alias="startTime")
    end_time: Timestamp | None = Field(None, alias="endTime")
    device_id: str | None = Field(None, alias="deviceID")
    device_metadata: str | None = Field(None, alias="deviceMetadata")
    raw_data: str | None = Field(None, alias="rawData")
    data_processing_method: str | None = Field(None, alias="dataProcessingMethod")
    biz_rules: str | None = Field(None, alias="bizRules")


class SensorReport(_Model):
    type: SensorMeasurementType | None = None
    exception: Literal["ALARM_CONDITION", "ERROR_CONDITION"] | None = None
    device_id: str | None = Field(None, alias="deviceID")
    device_metadata: str | None = Field(None, alias="deviceMetadata")
    raw_data: str | None = Field(None, alias="rawData")
    data_processing_method: str | None = Field(None, alias="dataProcessingMethod")
    time: Timestamp | None = None
    microorganism: str | None = None
    chemical_substance: str | None = Field(None, alias="chemicalSubstance")
    value: Number | None = None
    component: str | None = None
    string_value: str | None = Field(None, alias="stringValue")
    boolean_value: bool | None = Field(None, alias="booleanValue")
    hex_binary_value: HexBinary | None = Field(None, alias="hexBinaryValue")
    uri_value: str | None = Field(None, alias="uriValue")
    min_value: Number | None = Field(None, alias="minValue")
    max_value: Number | None = Field(None, alias="maxValue")
    mean_value: Number | None = Field(None, alias="meanValue")
    s_dev: Number | None = Field(None, alias="sDev")
    perc_rank: Number | None = Field(None, alias="percRank")
    perc_value: Number | None = Field(None, alias="percValue")
    uom: Uom | None = None
    coordinate_reference_system: str | None = Field(None, alias="coordinateReferenceSystem")


class SensorElement(_Model):
    sensor_metadata: SensorMetadata | None = Field(None, alias="sensorMetadata")
    sensor_report: list[SensorReport] = Field(alias="sensorReport", min_length=1)


def _missing(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("missing_field", message, {"field": field})


class _Event(_Model):
    """Fields and conveniences common to the five event types.

    Vocabulary fields hold the canonical form (`vocabulary.canonical_cbv`) and EPC fields
    (epcList, childEPCs, parentID, input/output lists, epcClass) the normalised identifier
    (`identifiers.normalise_epc`), so they may differ from the submitted JSON: keep the raw
    JSON for hashing and storage.
    """

    event_id: str | None = Field(None, alias="eventID")
    event_time: Timestamp = Field(alias="eventTime")
    event_time_zone_offset: TimeZoneOffset = Field(alias="eventTimeZoneOffset")
    record_time: Timestamp | None = Field(None, alias="recordTime")
    certification_info: str | list[str] | None = Field(None, alias="certificationInfo")
    error_declaration: ErrorDeclaration | None = Field(None, alias="errorDeclaration")
    biz_step: BizStep | None = Field(None, alias="bizStep")
    disposition: Disposition | None = None
    persistent_disposition: PersistentDisposition | None = Field(
        None, alias="persistentDisposition"
    )
    read_point: Place | None = Field(None, alias="readPoint")
    biz_location: Place | None = Field(None, alias="bizLocation")
    biz_transaction_list: list[BizTransaction] = Field(
        default_factory=list, alias="bizTransactionList"
    )
    source_list: list[Source] = Field(default_factory=list, alias="sourceList")
    destination_list: list[Destination] = Field(default_factory=list, alias="destinationList")
    sensor_element_list: list[SensorElement] = Field(
        default_factory=list, alias="sensorElementList"
    )

    @property
    def event_time_utc(self) -> datetime:
        return self.event_time.astimezone(UTC)

    @property
    def stage(self) -> Stage | None:
        return stage_of(self.biz_step)

    def epcs(self) -> list[str]:
        """Every instance-level identifier the event names, in order, without repeats."""
        return []

    def epc_classes(self) -> list[str]:
        """Every epcClass of the event's quantity lists, in order, without repeats."""
        return []


def _unique(*groups: list[str] | str | None) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        if group is None:
            continue
        if isinstance(group, str):
            seen[group] = None
        else:
            seen.update(dict.fromkeys(group))
    return list(seen)


def _classes(*lists: list[QuantityElement]) -> list[str]:
    return list(dict.fromkeys(element.epc_class for quantities in lists for element in quantities))


class ObjectEvent(_Event):
    type: Literal["ObjectEvent"]
    action: Action
    epc_list: list[Epc] = Field(default_factory=list, alias="epcList")
    quantity_list: list[QuantityElement] = Field(default_factory=list, alias="quantityList")
    ilmd: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _ilmd_only_when_added(self) -> Self:
        # EPCIS 2.0 JSON Schema (ObjectEvent): instance/lot master data describes objects as
        # they come into being, so `ilmd` goes only with action ADD.
        if self.ilmd is not None and self.action != "ADD":
            raise PydanticCustomError(
                "schema_violation",
                "ilmd is allowed only with action ADD (EPCIS 2.0 JSON Schema)",
                {"field": "ilmd"},
            )
        return self

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        # EPCIS 2.0 schema: epcList (even empty), a quantity, or a sensor report at a readPoint.
        if (
            "epc_list" not in self.model_fields_set
            and not self.quantity_list
            and not (self.sensor_element_list and self.read_point)
        ):
            raise _missing(
                "epcList",
                "an ObjectEvent needs epcList, quantityList, or sensorElementList with readPoint",
            )
        return self

    def epcs(self) -> list[str]:
        return _unique(self.epc_list)

    def epc_classes(self) -> list[str]:
        return _classes(self.quantity_list)


class AggregationEvent(_Event):
    type: Literal["AggregationEvent"]
    action: Action
    parent_id: Epc | None = Field(None, alias="parentID")
    child_epcs: list[Epc] = Field(default_factory=list, alias="childEPCs")
    child_quantity_list: list[QuantityElement] = Field(
        default_factory=list, alias="childQuantityList"
    )

    @model_validator(mode="after")
    def _has_parent_and_children(self) -> Self:
        if self.parent_id is None and self.action != "OBSERVE":
            raise _missing("parentID", f"an AggregationEvent with action {self.action} needs one")
        if self.action != "DELETE" and not self.child_epcs and not self.child_quantity_list:
            raise _missing("childEPCs", "an AggregationEvent needs childEPCs or childQuantityList")
        return self

    def epcs(self) -> list[str]:
        return _unique(self.parent_id, self.child_epcs)

    def epc_classes(self) -> list[str]:
        return _classes(self.child_quantity_list)


class TransactionEvent(_Event):
    type: Literal["TransactionEvent"]
    action: Action
    biz_transaction_list: list[BizTransaction] = Field(alias="bizTransactionList", min_length=1)
    parent_id: Epc | None = Field(None, alias="parentID")
    epc_list: list[Epc] = Field(default_factory=list, alias="epcList")
    quantity_list: list[QuantityElement] = Field(default_factory=list, alias="quantityList")

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if (
            self.action != "DELETE"
            and "epc_list" not in self.model_fields_set
            and not self.quantity_list
        ):
            raise _missing("epcList", "a TransactionEvent needs epcList or quantityList")
        return self

    def epcs(self) -> list[str]:
        return _unique(self.parent_id, self.epc_list)

    def epc_classes(self) -> list[str]:
        return _classes(self.quantity_list)


class TransformationEvent(_Event):
    type: Literal["TransformationEvent"]
    input_epc_list: list[Epc] = Field(default_factory=list, alias="inputEPCList")
    input_quantity_list: list[QuantityElement] = Field(
        default_factory=list, alias="inputQuantityList"
    )
    output_epc_list: list[Epc] = Field(default_factory=list, alias="outputEPCList")
    output_quantity_list: list[QuantityElement] = Field(
        default_factory=list, alias="outputQuantityList"
    )
    transformation_id: Uri | None = Field(None, alias="transformationID")
    ilmd: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_inputs_or_outputs(self) -> Self:
        if not (
            self.input_epc_list
            or self.input_quantity_list
            or self.output_epc_list
            or self.output_quantity_list
        ):
            raise _missing(
                "inputEPCList",
                "a TransformationEvent needs at least one input or output (EPC or quantity list)",
            )
        return self

    @property
    def stage(self) -> Stage | None:
        # Transforming is manufacturing even when the step is custom or left out.
        return stage_of(self.biz_step) or Stage.MANUFACTURING

    def epcs(self) -> list[str]:
        return _unique(self.input_epc_list, self.output_epc_list)

    def epc_classes(self) -> list[str]:
        return _classes(self.input_quantity_list, self.output_quantity_list)


class AssociationEvent(_Event):
    type: Literal["AssociationEvent"]
    action: Action
    parent_id: Epc = Field(alias="parentID")
    child_epcs: list[Epc] = Field(default_factory=list, alias="childEPCs")
    child_quantity_list: list[QuantityElement] = Field(
        default_factory=list, alias="childQuantityList"
    )

    @model_validator(mode="after")
    def _has_children(self) -> Self:
        if self.action != "DELETE" and not self.child_epcs and not self.child_quantity_list:
            raise _missing("childEPCs", "an AssociationEvent needs childEPCs or childQuantityList")
        return self

    def epcs(self) -> list[str]:
        return _unique(self.parent_id, self.child_epcs)

    def epc_classes(self) -> list[str]:
        return _classes(self.child_quantity_list)


EPCISEvent: TypeAlias = (
    ObjectEvent | AggregationEvent | TransformationEvent | TransactionEvent | AssociationEvent
)
_TaggedEvent = Annotated[EPCISEvent, Field(discriminator="type")]
EVENT_TYPES: Final = frozenset(
    {
        "ObjectEvent",
        "AggregationEvent",
        "TransformationEvent",
        "TransactionEvent",
        "AssociationEvent",
    }
)
_EVENT_ADAPTER: Final[TypeAdapter[EPCISEvent]] = TypeAdapter(_TaggedEvent)


class _Document(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class EPCISBody(_Document):
    event_list: list[_TaggedEvent] = Field(default_factory=list, alias="eventList")


class EPCISDocument(_Document):
    """An EPCIS 2.0 capture document (header fields such as sender/receiver kept as extras)."""

    type: Literal["EPCISDocument"] = "EPCISDocument"
    context: Any = Field(None, alias="@context")
    schema_version: str = Field("2.0", alias="schemaVersion")
    creation_date: Timestamp = Field(alias="creationDate")
    epcis_body: EPCISBody = Field(alias="epcisBody")


class QueryResultsBody(_Document):
    event_list: list[_TaggedEvent] = Field(default_factory=list, alias="eventList")


class QueryResults(_Document):
    query_name: str | None = Field(None, alias="queryName")
    subscription_id: str | None = Field(None, alias="subscriptionID")
    results_body: QueryResultsBody = Field(alias="resultsBody")


class EPCISQueryBody(_Document):
    query_results: QueryResults = Field(alias="queryResults")


class EPCISQueryDocument(_Document):
    """An EPCIS 2.0 query result document."""

    type: Literal["EPCISQueryDocument"] = "EPCISQueryDocument"
    context: Any = Field(None, alias="@context")
    schema_version: str = Field("2.0", alias="schemaVersion")
    creation_date: Timestamp = Field(alias="creationDate")
    epcis_body: EPCISQueryBody = Field(alias="epcisBody")


def parse_event(
    obj: object,
    *,
    now: datetime,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> EPCISEvent:
    """Validate one JSON-decoded EPCIS event; any fault raises `EventRejected`, nothing else.

    `now` must be timezone-aware; an eventTime later than `now + max_future_skew` is refused.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(obj, dict):
        raise EventRejected(RejectCode.NOT_AN_EVENT, "an event must be a JSON object")
    if "type" not in obj:
        raise EventRejected(RejectCode.NOT_AN_EVENT, "an event needs a type, e.g. ObjectEvent")
    event_type = obj["type"]
    if not isinstance(event_type, str):
        raise EventRejected(RejectCode.WRONG_TYPE, "type: must be a string")
    if event_type not in EVENT_TYPES:
        hint = " (a document: send its events)" if event_type.startswith("EPCIS") else ""
        raise EventRejected(
            RejectCode.UNKNOWN_EVENT_TYPE,
            f"type: {_shown(event_type)} is not an EPCIS 2.0 event type{hint}",
        )
    try:
        event = _EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise _rejection(exc.errors(include_url=False, include_input=True)) from None
    if event.event_time > now + max_future_skew:
        raise EventRejected(
            RejectCode.EVENT_TIME_IN_FUTURE,
            f"eventTime: {event.event_time_utc.isoformat()} is more than "
            f"{_minutes(max_future_skew)} after the server time {now.astimezone(UTC).isoformat()}",
        )
    return event


def events_from_document(obj: object) -> tuple[list[object], object]:
    """The raw events of an EPCISDocument or EPCISQueryDocument, and its @context (None if absent).

    Events are not validated here, so that one bad event does not refuse the others.
    """
    if not isinstance(obj, dict):
        raise EventRejected(RejectCode.NOT_AN_EVENT, "a document must be a JSON object")
    doc_type = obj.get("type")
    body = obj.get("epcisBody")
    if not isinstance(body, dict):
        raise EventRejected(RejectCode.NOT_AN_EVENT, "epcisBody: must be a JSON object")
    if doc_type == "EPCISDocument":
        events = body.get("eventList")
        where = "epcisBody.eventList"
    elif doc_type == "EPCISQueryDocument":
        results = body.get("queryResults")
        results_body = results.get("resultsBody") if isinstance(results, dict) else None
        if not isinstance(results_body, dict):
            raise EventRejected(
                RejectCode.NOT_AN_EVENT, "epcisBody.queryResults.resultsBody: must be a JSON object"
            )
        events = results_body.get("eventList")
        where = "epcisBody.queryResults.resultsBody.eventList"
    else:
        raise EventRejected(
            RejectCode.NOT_AN_EVENT, "type: must be EPCISDocument or EPCISQueryDocument"
        )
    if not isinstance(events, list):
        raise EventRejected(RejectCode.NOT_AN_EVENT, f"{where}: must be an array of events")
    return list(events), obj.get("@context")


# When several faults are found, the most specific one names the rejection.
_PRECEDENCE: Final = (
    RejectCode.NAIVE_EVENT_TIME,
    RejectCode.SCHEMA_VIOLATION,
    RejectCode.INVALID_VOCABULARY,
    RejectCode.INVALID_IDENTIFIER,
    RejectCode.MISSING_FIELD,
    RejectCode.WRONG_TYPE,
)
# Location segments pydantic adds for union members (they are not JSON keys), and what the union
# as a whole expects.
_UNION_MEMBERS: Final = {
    "int": "must be a number",
    "float": "must be a number",
    "str": "must be a string or an array of strings",
    "list[str]": "must be a string or an array of strings",
}


# pydantic's own wording names Python classes ("instance of Place"); say it in JSON terms.
_TYPE_MESSAGES: Final = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "finite_number": "must be a finite number",
}


def _rejection(errors: list[ErrorDetails]) -> EventRejected:
    faults: dict[str, tuple[RejectCode, str]] = {}
    for error in errors:
        path, code, message = _fault(error)
        faults.setdefault(path, (code, message))
    for wanted in _PRECEDENCE:
        for path, (code, message) in faults.items():
            if code is wanted:
                more = len(faults) - 1
                suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
                detail = f"{path}: {message}" if path else message
                return EventRejected(code, _clip(detail) + suffix)
    raise AssertionError("unreachable: every fault has a code")  # pragma: no cover


def _fault(error: ErrorDetails) -> tuple[str, RejectCode, str]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = error["loc"][1:]
    path = _path(loc) or str(ctx.get("field", ""))
    union = next((part for part in loc if isinstance(part, str) and part in _UNION_MEMBERS), None)
    if union is not None and kind.endswith("_type"):
        return path, RejectCode.WRONG_TYPE, _UNION_MEMBERS[union]
    if kind in ("missing", "missing_field"):
        message = "required field is missing" if kind == "missing" else error["msg"]
        return path, RejectCode.MISSING_FIELD, message
    if kind == "too_short":
        return path, RejectCode.MISSING_FIELD, "must not be empty"
    if kind == "naive_time":
        return path, RejectCode.NAIVE_EVENT_TIME, error["msg"]
    if kind == "schema_violation":
        return path, RejectCode.SCHEMA_VIOLATION, error["msg"]
    if kind == "invalid_vocabulary":
        return path, RejectCode.INVALID_VOCABULARY, error["msg"]
    if kind == "invalid_identifier":
        return path, RejectCode.INVALID_IDENTIFIER, error["msg"]
    if kind == "literal_error" and isinstance(error.get("input"), str):
        return path, RejectCode.INVALID_VOCABULARY, error["msg"]
    if kind == "string_pattern_mismatch":
        code, message = _PATTERN_FAULTS.get(
            str(ctx.get("pattern")), (RejectCode.WRONG_TYPE, error["msg"])
        )
        return path, code, message
    return path, RejectCode.WRONG_TYPE, _TYPE_MESSAGES.get(kind, error["msg"])


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _UNION_MEMBERS:
            path += f".{part}" if path else part
    return path


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"

"""The EPCIS 2.0 SimpleEventQuery parameters `GET /v1/events` answers, parsed strictly.

An unknown parameter, one given twice, or a malformed value raises `QueryParameterError`
(the standard's QueryParameterException): a filter is never silently ignored, so a query
never answers "everything" for a filter it did not apply. Values may be `|`-separated (any of
them matches); CBV values are accepted as bare words, web URIs, CURIEs and EPCIS 1.x URNs;
identifiers as EPC URNs or GS1 Digital Links (compared in their Digital Link form, as stored).

Supported (docs/api.md lists them with what each matches): `eventType`, `GE_`/`LT_eventTime`,
`GE_`/`LT_recordTime`, `EQ_action`, `EQ_bizStep`, `EQ_disposition`, `EQ_readPoint`,
`EQ_bizLocation`, `MATCH_epc`, `MATCH_parentID`, `MATCH_inputEPC`, `MATCH_outputEPC`,
`MATCH_anyEPC`, `MATCH_epcClass`, `MATCH_inputEPCClass`, `MATCH_outputEPCClass`,
`MATCH_anyEPCClass`, `EQ_eventID`, `EXISTS_errorDeclaration`, `EQ_errorReason`,
`EQ_correctiveEventID`, `GE_`/`LT_errorDeclarationTime`, `perPage`, `nextPageToken` (and
tracefin's older `limit`, `cursor`). The standard's other parameters are known and refused as
not supported yet, by name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from epcis.epc_format import DEFAULT_EPC_FORMAT, EPCFormat, answered_format, translate_event
from epcis.event_hash import digest_from_hash_id
from epcis.identifiers import checked_epc
from epcis.model import EVENT_TYPES
from epcis.rejects import EventRejected
from epcis.vocabulary import CBVKind, canonical_cbv

__all__ = [
    "EPCIS_CONTEXT",
    "MAX_PER_PAGE",
    "EventFilter",
    "QueryParameterError",
    "as_recorded",
    "parse_event_query",
    "query_document",
]

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"

MAX_PER_PAGE: Final = 500
DEFAULT_PER_PAGE: Final = 100
ACTIONS: Final = frozenset({"ADD", "OBSERVE", "DELETE"})
# The instance-identifier fields each MATCH_ parameter looks in (stored JSON names).
MATCH_EPC_FIELDS: Final = {
    "MATCH_epc": ("epcList", "childEPCs"),
    "MATCH_parentID": ("parentID",),
    "MATCH_inputEPC": ("inputEPCList",),
    "MATCH_outputEPC": ("outputEPCList",),
    "MATCH_anyEPC": ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"),
}
MATCH_CLASS_FIELDS: Final = {
    "MATCH_epcClass": ("quantityList", "childQuantityList"),
    "MATCH_inputEPCClass": ("inputQuantityList",),
    "MATCH_outputEPCClass": ("outputQuantityList",),
    "MATCH_anyEPCClass": (
        "quantityList",
        "childQuantityList",
        "inputQuantityList",
        "outputQuantityList",
    ),
}
# Parameters of the standard this repository does not answer yet: refused by name, never
# ignored. (Families: `EQ_`/`EXISTS_` on fields and ILMD, sensor and quantity filters.)
NOT_YET: Final = frozenset(
    {
        "WD_readPoint",
        "WD_bizLocation",
        "EQ_quantity",
        "GT_quantity",
        "GE_quantity",
        "LT_quantity",
        "LE_quantity",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
    }
)
_NOT_YET_PREFIXES: Final = (
    "EQ_persistentDisposition",
    "EQ_bizTransaction_",
    "EQ_source_",
    "EQ_destination_",
    "EQ_INNER_",
    "EQ_ILMD_",
    "EXISTS_",
    "HASATTR_",
    "EQATTR_",
    "EQ_sensor",
    "GT_",
    "GE_",
    "LT_",
    "LE_",
    "EQ_",
    "MATCH_",
)


class QueryParameterError(ValueError):
    """A query parameter that is unknown, repeated, unsupported or malformed."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass(frozen=True)
class EventFilter:
    """A parsed SimpleEventQuery: each set is "any of", each field None when not asked."""

    event_types: frozenset[str] | None = None
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    actions: frozenset[str] | None = None
    biz_steps: frozenset[str] | None = None
    dispositions: frozenset[str] | None = None
    read_points: frozenset[str] | None = None
    biz_locations: frozenset[str] | None = None
    # field names (stored JSON) -> identifiers (Digital Link), one entry per MATCH_ parameter
    match_epcs: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = ()
    match_classes: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = ()
    event_ids: frozenset[str] | None = None
    event_digests: frozenset[bytes] | None = None
    # Error declarations: any of these narrows to declared events (EXISTS_errorDeclaration).
    declared: bool = False
    error_reasons: frozenset[str] | None = None  # CBV words or URIs, as stored
    corrective_event_ids: frozenset[str] | None = None
    ge_declaration_time: datetime | None = None
    lt_declaration_time: datetime | None = None
    per_page: int = DEFAULT_PER_PAGE
    after: int | None = None
    asked: tuple[str, ...] = field(default=())


def _values(name: str, raw: str) -> list[str]:
    values = [value.strip() for value in raw.split("|")]
    if not raw or any(not value for value in values):
        raise QueryParameterError(name, "an empty value")
    if len(values) > 100:
        raise QueryParameterError(name, "more than 100 values")
    return values


def _time(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise QueryParameterError(name, f"{raw[:40]!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise QueryParameterError(name, "give the time zone (Z or +08:00)")
    return value


def _int(name: str, raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or len(raw) > 19:
        raise QueryParameterError(name, f"{raw[:40]!r} is not a non-negative integer")
    value = int(raw)
    if not low <= value <= high:
        raise QueryParameterError(name, f"must be between {low} and {high}")
    return value


def _epcs(name: str, raw: str) -> frozenset[str]:
    found = set()
    for value in _values(name, raw):
        if value.startswith("urn:epc:idpat:"):
            raise QueryParameterError(name, "EPC patterns (urn:epc:idpat:) are not supported yet")
        try:
            found.add(checked_epc(value))
        except ValueError as exc:
            raise QueryParameterError(name, str(exc)) from None
    return frozenset(found)


def _cbv(name: str, raw: str, kind: CBVKind) -> frozenset[str]:
    try:
        return frozenset(canonical_cbv(kind, value) for value in _values(name, raw))
    except EventRejected as exc:
        raise QueryParameterError(name, exc.detail) from None


def _among(name: str, raw: str, allowed: frozenset[str]) -> frozenset[str]:
    values = frozenset(_values(name, raw))
    unknown = sorted(values - allowed)
    if unknown:
        raise QueryParameterError(name, f"{unknown[0][:40]!r} is not one of {sorted(allowed)}")
    return values


def parse_event_query(params: Iterable[tuple[str, str]]) -> EventFilter:
    """The filter of a query string's (name, value) pairs; QueryParameterError otherwise."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name in seen:
            raise QueryParameterError(name, "given more than once (use | between values)")
        seen[name] = value
    kwargs: dict[str, object] = {}
    match_epcs: list[tuple[tuple[str, ...], frozenset[str]]] = []
    match_classes: list[tuple[tuple[str, ...], frozenset[str]]] = []
    for name, raw in seen.items():
        if name == "eventType":
            kwargs["event_types"] = _among(name, raw, EVENT_TYPES)
        elif name in ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime"):
            bound, what = name.split("_", 1)
            key = f"{bound.lower()}_{'event' if what == 'eventTime' else 'record'}_time"
            kwargs[key] = _time(name, raw)
        elif name == "EQ_action":
            kwargs["actions"] = _among(name, raw, ACTIONS)
        elif name == "EQ_bizStep":
            kwargs["biz_steps"] = _cbv(name, raw, CBVKind.BIZ_STEP)
        elif name == "EQ_disposition":
            kwargs["dispositions"] = _cbv(name, raw, CBVKind.DISPOSITION)
        elif name == "EQ_readPoint":
            kwargs["read_points"] = _epcs(name, raw)
        elif name == "EQ_bizLocation":
            kwargs["biz_locations"] = _epcs(name, raw)
        elif name in MATCH_EPC_FIELDS:
            match_epcs.append((MATCH_EPC_FIELDS[name], _epcs(name, raw)))
        elif name in MATCH_CLASS_FIELDS:
            match_classes.append((MATCH_CLASS_FIELDS[name], _epcs(name, raw)))
        elif name == "EQ_eventID":
            values = _values(name, raw)
            digests = set()
            for value in values:
                if value.startswith("ni:///"):
                    try:
                        digests.add(digest_from_hash_id(value))
                    except ValueError as exc:
                        raise QueryParameterError(name, str(exc)) from None
            kwargs["event_ids"] = frozenset(v for v in values if not v.startswith("ni:///"))
            kwargs["event_digests"] = frozenset(digests)
        elif name == "EXISTS_errorDeclaration":
            if raw not in ("true", "false"):
                raise QueryParameterError(name, "true or false")
            kwargs["declared"] = raw == "true"  # false: events whether declared or not
        elif name == "EQ_errorReason":
            kwargs["error_reasons"] = _cbv(name, raw, CBVKind.ERROR_REASON)
        elif name == "EQ_correctiveEventID":
            kwargs["corrective_event_ids"] = frozenset(_values(name, raw))
        elif name in ("GE_errorDeclarationTime", "LT_errorDeclarationTime"):
            kwargs[f"{name[:2].lower()}_declaration_time"] = _time(name, raw)
        elif name in ("perPage", "limit"):
            kwargs["per_page"] = _int(name, raw, 1, MAX_PER_PAGE)
        elif name in ("nextPageToken", "cursor"):
            kwargs["after"] = _int(name, raw, 0, 2**63 - 1)
        elif name in NOT_YET or name.startswith(_NOT_YET_PREFIXES):
            raise QueryParameterError(name, "not supported by this repository yet")
        else:
            raise QueryParameterError(name, "not a query parameter of EPCIS 2.0")
    if {"perPage", "limit"} <= seen.keys() or {"nextPageToken", "cursor"} <= seen.keys():
        raise QueryParameterError("perPage", "give perPage/nextPageToken or limit/cursor")
    return EventFilter(
        **kwargs,  # type: ignore[arg-type]
        match_epcs=tuple(match_epcs),
        match_classes=tuple(match_classes),
        asked=tuple(sorted(seen)),
    )


def _context_entries(context: object) -> list[object]:
    if context is None:
        return []
    return list(context) if isinstance(context, list) else [context]


def query_document(
    events: list[dict[str, Any]], contexts: Iterable[object], created: datetime
) -> dict[str, Any]:
    """An EPCISQueryDocument of SimpleEventQuery results: the standard context first, then
    every other context entry the events were captured with (once each, in order), so the
    extensions the events use are defined where a reader meets them."""
    merged: list[object] = [EPCIS_CONTEXT]
    for context in contexts:
        for entry in _context_entries(context):
            if entry not in merged:
                merged.append(entry)
    return {
        "@context": merged,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": created.isoformat().replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": events},
            }
        },
    }


def as_recorded(
    event: dict[str, Any],
    received_at: datetime,
    hash_id: str,
    declaration: dict[str, Any] | None = None,
    *,
    captured: dict[str, Any] | None = None,
    epc_format: EPCFormat = DEFAULT_EPC_FORMAT,
    company_prefixes: Collection[str] = (),
) -> dict[str, Any]:
    """The event as the repository answers it: the event as captured (`captured`, when it
    differs from the stored normalised `event`), its EPC fields in the `epc_format` asked for
    (`epc_format.translate_event`; every other value as captured), its `recordTime` (when it
    was received, UTC) set, an absent `eventID` filled with its event hash ID (CBV 2.0 hash IDs
    are valid eventIDs) and its recorded `errorDeclaration` (as captured), if it was declared
    erroneous; none is part of the event hash, so the hash of the answer is the stored one.

    Called with the stored event alone it answers that event with its EPC fields as canonical
    Digital Links (the REST binding's default format)."""
    answered_as = answered_format(epc_format)
    if answered_as is EPCFormat.ALWAYS_GS1_DIGITAL_LINK:
        # Capture's normalisation is this very translation (event_hash.normalise_event maps
        # the same EPC fields to the same canonical links): the stored event is the answer.
        answered = dict(event)
    else:
        answered = translate_event(
            captured if captured is not None else event, answered_as, company_prefixes
        )
    answered["recordTime"] = received_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    answered.setdefault("eventID", hash_id)
    if declaration is not None:
        answered["errorDeclaration"] = declaration
    return answered

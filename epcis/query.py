"""The EPCIS 2.0 SimpleEventQuery parameters `GET /v1/events` answers, parsed strictly.

An unknown parameter, one given twice, or a malformed value raises `QueryParameterError`
(the standard's QueryParameterException): a filter is never silently ignored, so a query
never answers "everything" for a filter it did not apply. Values may be `|`-separated (any of
them matches); CBV values are accepted as bare words, web URIs, CURIEs and EPCIS 1.x URNs;
identifiers as EPC URNs or GS1 Digital Links (compared in their Digital Link form, as stored).

Supported (docs/api.md lists them with what each matches): `eventType`, `GE_`/`LT_eventTime`,
`GE_`/`LT_recordTime`, `EQ_action`, `EQ_bizStep`, `EQ_disposition`,
`EQ_persistentDisposition_set`/`_unset`, `EQ_readPoint`, `EQ_bizLocation`, `WD_readPoint`,
`WD_bizLocation` (a GLN's descendants: the same GLN with an extension; tracefin keeps no master
data), the `MATCH_` family with identifiers and EPC patterns (`urn:epc:idpat:`, matched as
regexes over the stored Digital Links: epcis/epc_patterns.py), `EQ_`/`GT_`/`GE_`/`LT_`/
`LE_quantity`, `EQ_bizTransaction_{type}`, `EQ_source_{type}`, `EQ_destination_{type}`,
`EQ_`/`EXISTS_`/`GT_`/`GE_`/`LT_`/`LE_` on extension fields (`namespace#localname` or a
CURIE; `_ILMD_`, `_INNER_`; comparisons with a number or a time),
the sensor parameters (`EQ_type`, `EQ_deviceID`, ..., `{EQ,GT,GE,LT,LE}_{value,...}_{uom}`,
`_percRank`, `GE_`/`LT_time`, `GE_`/`LT_startTime`, `GE_`/`LT_endTime`), `EQ_transformationID`,
`EQ_eventID`, `EXISTS_errorDeclaration`, `EQ_errorReason`,
`EQ_correctiveEventID`, `GE_`/`LT_errorDeclarationTime`, `orderBy` (eventTime, recordTime),
`orderDirection`, `eventCountLimit`, `maxEventCount`, `perPage`, `nextPageToken` (and
tracefin's older `limit`, `cursor`). Refused by name: `HASATTR_`/`EQATTR_` (no master data).

Names only ever select from fixed tables or pass strict allow-lists; values are handed to the
store as bind parameters or jsonpath variables, never spliced into SQL or a jsonpath.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from epcis.epc_format import DEFAULT_EPC_FORMAT, EPCFormat, answered_format, translate_event
from epcis.epc_patterns import PATTERN_PREFIX, pattern_regex
from epcis.event_hash import digest_from_hash_id
from epcis.identifiers import checked_epc
from epcis.model import EVENT_TYPES
from epcis.rejects import EventRejected
from epcis.vocabulary import CBVKind, canonical_cbv, cbv_spellings

__all__ = [
    "EPCIS_CONTEXT",
    "MAX_PER_PAGE",
    "EventFilter",
    "FieldMatch",
    "PartyMatch",
    "PatternMatch",
    "QueryParameterError",
    "QueryTooLargeError",
    "SensorMatch",
    "as_recorded",
    "page_token",
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
# The sensor times: a sensorReport's `time`, a sensorMetadata's `startTime` / `endTime`.
_SENSOR_TIMES: Final = frozenset(
    f"{bound}_{field}" for bound in ("GE", "LT") for field in ("time", "startTime", "endTime")
)
# Prefixes of the standard's families, with a rest this repository does not answer (no
# namespace#localname or CURIE, an unknown sensor member, ...): refused by name, never ignored.
_NOT_YET_PREFIXES: Final = (
    "EQ_INNER_",
    "EQ_ILMD_",
    "EXISTS_",
    "EQ_sensor",
    "GT_",
    "GE_",
    "LT_",
    "LE_",
    "EQ_",
    "MATCH_",
)
# Master-data attributes: tracefin keeps no master data (vocabulary elements and their
# attributes), so these can never be answered truthfully: refused by name, saying why.
_MASTER_DATA_PREFIXES: Final = ("HASATTR_", "EQATTR_")
ORDER_KEYS: Final = {"eventTime": "event_time", "recordTime": "received_at"}
QUANTITY_BOUNDS: Final = {
    "EQ_quantity": "==",
    "GT_quantity": ">",
    "GE_quantity": ">=",
    "LT_quantity": "<",
    "LE_quantity": "<=",
}
# EQ_bizTransaction_{type}, EQ_source_{type}, EQ_destination_{type}: the stored list, its
# element's identifier field, and the vocabulary of the type.
PARTY_PARAMETERS: Final = {
    "EQ_bizTransaction_": ("bizTransactionList", "bizTransaction", CBVKind.BIZ_TRANSACTION_TYPE),
    "EQ_source_": ("sourceList", "source", CBVKind.SOURCE_DEST_TYPE),
    "EQ_destination_": ("destinationList", "destination", CBVKind.SOURCE_DEST_TYPE),
}
# The token of a page under orderBy: the sort key and ingest_seq of the page's last event.
_TOKEN_PREFIX: Final = "k1."  # noqa: S105 - a format marker, not a secret
# The sensor parameters (EPCIS 2.0 8.2.7.1) on sensorReport/sensorMetadata members: name ->
# (member, in sensorMetadata too, kind). Members come from this table only.
SENSOR_EQUALS: Final = {
    "EQ_deviceID": ("deviceID", True, "identifier"),
    "EQ_dataProcessingMethod": ("dataProcessingMethod", True, "identifier"),
    "EQ_bizRules": ("bizRules", True, "identifier"),
    "EQ_microorganism": ("microorganism", False, "uri"),
    "EQ_chemicalSubstance": ("chemicalSubstance", False, "uri"),
    "EQ_uriValue": ("uriValue", False, "uri"),
    "EQ_stringValue": ("stringValue", False, "string"),
    "EQ_hexBinaryValue": ("hexBinaryValue", False, "hex"),
    "EQ_booleanValue": ("booleanValue", False, "boolean"),
    "EQ_type": ("type", False, "type"),
}
SENSOR_NUMBERS: Final = ("value", "minValue", "maxValue", "meanValue", "sDev", "percValue")
_BOUNDS: Final = {"EQ": "==", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}
# {EQ,GT,GE,LT,LE}_{value,minValue,...}_{uom} (UN/CEFACT Rec 20 codes), and _percRank.
_SENSOR_NUMBER = re.compile(
    r"(EQ|GT|GE|LT|LE)_(?:(value|minValue|maxValue|meanValue|sDev|percValue)_([A-Z0-9]{2,3})"
    r"|(percRank))",
    re.ASCII,
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+", re.ASCII)
# Extension field names: `namespace#localname` (an absolute IRI, then a local name) or a CURIE.
# Strict: they are compared with JSON keys (as bind parameters), never spliced into SQL or a
# jsonpath, and anything else is refused.
_LOCAL_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}"
_IRI_FIELD = re.compile(
    rf"([A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9._~:/%@\-]{{1,200}})#({_LOCAL_NAME})"
)
_CURIE_FIELD = re.compile(rf"({_LOCAL_NAME}):({_LOCAL_NAME})")
# The families on extension fields: (parameter prefix, kind, in ILMD, inner), longest
# prefixes first so `EQ_INNER_ILMD_` is not read as `EQ_` of a field `INNER_ILMD_...`.
_FIELD_FAMILIES: Final = tuple(
    sorted(
        (
            (f"{kind}_{'INNER_' * inner}{'ILMD_' * ilmd}", kind, ilmd, inner)
            for kind in ("EQ", "EXISTS", "GT", "GE", "LT", "LE")
            for ilmd in (True, False)
            for inner in (True, False)
        ),
        key=lambda family: -len(family[0]),
    )
)
# A decimal number as a query value may give it; records/event_query.py matches stored strings
# with the same form in SQL, so a string compares as a number exactly where a value would parse.
DECIMAL_FORM = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?"
_DECIMAL = re.compile(DECIMAL_FORM)


class QueryTooLargeError(Exception):
    """The query would answer more events than its maxEventCount (QueryTooLargeException)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than maxEventCount={limit} events match")
        self.limit = limit


@dataclass(frozen=True)
class PartyMatch:
    """One EQ_bizTransaction_/EQ_source_/EQ_destination_ parameter: an element of `list_field`
    whose `type` is one of `types` (every spelling) and whose `id_field` is one of `values`."""

    list_field: str
    id_field: str
    types: frozenset[str]
    values: frozenset[str]


@dataclass(frozen=True)
class FieldMatch:
    """One parameter on an extension field: in the event (`ilmd` False) or its ILMD, at its
    top level or nested anywhere below it (`inner`). The name is given as
    `namespace#localname` (`namespaces`: the IRIs a context may bind a prefix to for it) or as a
    CURIE (`prefix`: a prefix the event's context must declare). EQ_: `values`; GT_/GE_/LT_/
    LE_: `op` and `bound`, a number (the field's value a JSON number or a decimal string) or a
    time (the field's value an RFC 3339 time string); EXISTS_: neither."""

    ilmd: bool
    inner: bool
    local: str
    namespaces: frozenset[str]
    prefix: str | None
    values: frozenset[str] | None
    op: str | None = None
    bound: Decimal | datetime | None = None


@dataclass(frozen=True)
class SensorMatch:
    """One sensor parameter: a sensorReport (and, for `metadata_too`, a sensorMetadata) of the
    event whose `field` compares with `op` to one of `values` (strings or booleans), to
    `number` (in `uom`, when the parameter names one) or to `when` (a time)."""

    field: str
    op: str = "=="
    values: tuple[str | bool, ...] = ()
    number: Decimal | None = None
    uom: str | None = None
    when: datetime | None = None
    metadata_too: bool = False


@dataclass(frozen=True)
class PatternMatch:
    """One MATCH_ parameter with EPC patterns: an identifier in `fields` equal to one of `exact`
    or matching one of `regexes` (epc_patterns.pattern_regex)."""

    fields: tuple[str, ...]
    exact: frozenset[str]
    regexes: frozenset[str]


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
    # EQ_transformationID: each value as given and, for a GS1 key, as its Digital Link.
    transformation_ids: frozenset[str] | None = None
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
    # MATCH_ parameters with EPC patterns (the others are in match_epcs/match_classes).
    match_epc_patterns: tuple[PatternMatch, ...] = ()
    match_class_patterns: tuple[PatternMatch, ...] = ()
    # orderBy (a column: event_time or received_at; None: ingest order), orderDirection,
    # and the page token under it: the last event's sort key and ingest_seq.
    order_by: str | None = None
    order_descending: bool = True
    after_key: tuple[datetime, int] | None = None
    event_count_limit: int | None = None
    max_event_count: int | None = None
    # EQ_/GT_/GE_/LT_/LE_quantity: (jsonpath comparison, value), all on one quantity element.
    quantity: tuple[tuple[str, Decimal], ...] = ()
    # Every spelling (bare word, web URI, CURIE, URN) of the asked dispositions.
    persistent_set: frozenset[str] | None = None
    persistent_unset: frozenset[str] | None = None
    parties: tuple[PartyMatch, ...] = ()
    # EQ_/EXISTS_ (and _ILMD_, _INNER_) on extension fields, each a filter.
    fields: tuple[FieldMatch, ...] = ()
    # The sensor parameters, each a filter on the event's sensorElementList.
    sensors: tuple[SensorMatch, ...] = ()
    # WD_readPoint/WD_bizLocation: the locations, each also matching its sub-locations.
    wd_read_points: frozenset[str] | None = None
    wd_biz_locations: frozenset[str] | None = None


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


def _given_and_canonical(value: str) -> tuple[str, ...]:
    """An identifier as given and, for a GS1 key, as its Digital Link: a field outside the EPC
    fields is stored as captured (bizTransaction, sensor deviceID, ...), but was stored as its
    Digital Link before capture kept it (and source/destination ids are EPC fields, stored
    normalised), so both forms are looked for."""
    try:
        canonical = checked_epc(value)
    except ValueError:
        return (value,)
    return (value,) if canonical == value else (value, canonical)


def _epc(name: str, value: str) -> str:
    try:
        return checked_epc(value)
    except ValueError as exc:
        raise QueryParameterError(name, str(exc)) from None


def _epcs(name: str, raw: str) -> frozenset[str]:
    found = set()
    for value in _values(name, raw):
        if value.startswith(PATTERN_PREFIX):
            raise QueryParameterError(name, "EPC patterns (urn:epc:idpat:) match EPCs (MATCH_)")
        found.add(_epc(name, value))
    return frozenset(found)


def _match(name: str, raw: str, fields: tuple[str, ...], classes: bool) -> PatternMatch:
    """A MATCH_ parameter's identifiers (Digital Link) and patterns (as regexes)."""
    exact, regexes = set(), set()
    for value in _values(name, raw):
        if value.startswith(PATTERN_PREFIX):
            try:
                regexes.add(pattern_regex(value, classes=classes))
            except ValueError as exc:
                raise QueryParameterError(name, f"{value[:60]!r}: {exc}") from None
        else:
            exact.add(_epc(name, value))
    return PatternMatch(fields, frozenset(exact), frozenset(regexes))


def _cbv(name: str, raw: str, kind: CBVKind) -> frozenset[str]:
    try:
        return frozenset(canonical_cbv(kind, value) for value in _values(name, raw))
    except EventRejected as exc:
        raise QueryParameterError(name, exc.detail) from None


def _spellings(name: str, raw: str, kind: CBVKind) -> frozenset[str]:
    return frozenset(
        spelling for value in _cbv(name, raw, kind) for spelling in cbv_spellings(kind, value)
    )


def _among(name: str, raw: str, allowed: frozenset[str]) -> frozenset[str]:
    values = frozenset(_values(name, raw))
    unknown = sorted(values - allowed)
    if unknown:
        raise QueryParameterError(name, f"{unknown[0][:40]!r} is not one of {sorted(allowed)}")
    return values


def _decimal(name: str, raw: str) -> Decimal:
    if _DECIMAL.fullmatch(raw) is None:
        raise QueryParameterError(name, f"{raw[:40]!r} is not a decimal number")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise QueryParameterError(name, f"{raw[:40]!r} is not a decimal number") from None
    return value


def _party(name: str, raw: str) -> PartyMatch:
    prefix = next(p for p in PARTY_PARAMETERS if name.startswith(p))
    list_field, id_field, kind = PARTY_PARAMETERS[prefix]
    kind_name = name[len(prefix) :]
    if not kind_name:
        raise QueryParameterError(name, f"name the type: {prefix}{{type}}")
    try:  # the type is one name, not a |-separated list
        types = cbv_spellings(kind, canonical_cbv(kind, kind_name))
    except EventRejected as exc:
        raise QueryParameterError(name, exc.detail) from None
    values: set[str] = set()
    for value in _values(name, raw):
        if ":" not in value:
            raise QueryParameterError(name, f"{value[:40]!r} is not a URI")
        values.update(_given_and_canonical(value))
    return PartyMatch(list_field, id_field, types, frozenset(values))


def _field_family(name: str) -> tuple[str, str, bool, bool] | None:
    """The family (prefix, kind, in ILMD, inner) of a parameter on an extension field: one
    whose rest is a namespace#localname or a CURIE; None for any other name."""
    for family in _FIELD_FAMILIES:
        rest = name[len(family[0]) :]
        if name.startswith(family[0]) and ("#" in rest or ":" in rest):
            return family
    return None


def _field(name: str, raw: str, family: tuple[str, str, bool, bool]) -> FieldMatch:
    prefix, kind, ilmd, inner = family
    field_name = name[len(prefix) :]
    values = frozenset(_values(name, raw)) if kind == "EQ" else None
    op: str | None = None
    bound: Decimal | datetime | None = None
    if kind == "EXISTS" and raw not in ("true", "false"):
        raise QueryParameterError(name, "true or false")
    if kind == "EXISTS" and raw == "false":
        # The standard's EXISTS_ takes no false; answering "every event" would hide a typo.
        raise QueryParameterError(name, "EXISTS_ filters on true (leave it out for any event)")
    if kind in ("GT", "GE", "LT", "LE"):
        op = _BOUNDS[kind]
        if _DECIMAL.fullmatch(raw) is not None:
            bound = Decimal(raw)  # the pattern admits only what Decimal reads
        else:
            try:
                bound = _time(name, raw)
            except QueryParameterError:
                raise QueryParameterError(
                    name, f"{raw[:40]!r}: a comparison takes one number or one time"
                ) from None
    iri = _IRI_FIELD.fullmatch(field_name)
    if iri is not None:
        namespace, local = iri.groups()
        # A context may bind the prefix to the namespace with or without its separator.
        base = namespace.rstrip("/#")
        forms = frozenset({namespace, base, base + "/", base + "#"})
        return FieldMatch(ilmd, inner, local, forms, None, values, op, bound)
    curie = _CURIE_FIELD.fullmatch(field_name)
    if curie is not None and not field_name.startswith(("http:", "https:", "urn:")):
        return FieldMatch(
            ilmd, inner, curie.group(2), frozenset(), curie.group(1), values, op, bound
        )
    raise QueryParameterError(
        name, "an extension field is named namespace#localname or prefix:localname"
    )


def _sensor_equals(name: str, raw: str) -> SensorMatch:
    member, metadata_too, kind = SENSOR_EQUALS[name]
    values: list[str | bool] = []
    for value in _values(name, raw):
        if kind == "boolean":
            if value not in ("true", "false"):
                raise QueryParameterError(name, "true or false")
            values.append(value == "true")
        elif kind == "hex":
            if _HEX.fullmatch(value) is None:
                raise QueryParameterError(name, f"{value[:40]!r} is not hexBinary")
            values += [value.upper(), value.lower()]  # hexBinary is case-insensitive
        elif kind == "type":
            try:
                canonical = canonical_cbv(CBVKind.SENSOR_MEASUREMENT_TYPE, value)
            except EventRejected as exc:
                raise QueryParameterError(name, exc.detail) from None
            values += sorted(cbv_spellings(CBVKind.SENSOR_MEASUREMENT_TYPE, canonical))
        elif kind == "string":
            values.append(value)
        else:
            if ":" not in value:
                raise QueryParameterError(name, f"{value[:40]!r} is not a URI")
            values.extend(_given_and_canonical(value) if kind == "identifier" else (value,))
    return SensorMatch(member, values=tuple(values), metadata_too=metadata_too)


def _sensor_number(name: str, raw: str, found: re.Match[str]) -> SensorMatch:
    bound, member, uom, rank = found.groups()
    return SensorMatch(
        rank or member, _BOUNDS[bound], number=_decimal(name, raw), uom=None if rank else uom
    )


def page_token(order_by: str, descending: bool, key: datetime, ingest_seq: int) -> str:
    """The opaque nextPageToken of a page under orderBy: its last event's key and position."""
    text = f"{order_by}|{'D' if descending else 'A'}|{key.isoformat()}|{ingest_seq}"
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _ordered_token(name: str, raw: str, order_by: str, descending: bool) -> tuple[datetime, int]:
    """The (key, ingest_seq) of a token `page_token` wrote for this very ordering."""
    malformed = QueryParameterError(name, "not a page token of this query (ask without it)")
    if not raw.startswith(_TOKEN_PREFIX) or len(raw) > 200:
        raise malformed
    body = raw[len(_TOKEN_PREFIX) :]
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        by, direction, key, seq = text.split("|")
        when = datetime.fromisoformat(key)
        position = int(seq)
    except ValueError:
        raise malformed from None
    if (by, direction) != (order_by, "D" if descending else "A") or when.tzinfo is None:
        raise malformed
    if not 0 <= position < 2**63:
        raise malformed
    return when, position


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
    epc_patterns: list[PatternMatch] = []
    class_patterns: list[PatternMatch] = []
    quantity: list[tuple[str, Decimal]] = []
    parties: list[PartyMatch] = []
    field_matches: list[FieldMatch] = []
    sensors: list[SensorMatch] = []
    token: tuple[str, str] | None = None
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
        elif name in ("EQ_persistentDisposition_set", "EQ_persistentDisposition_unset"):
            key = "persistent_set" if name.endswith("_set") else "persistent_unset"
            kwargs[key] = _spellings(name, raw, CBVKind.DISPOSITION)
        elif name == "EQ_readPoint":
            kwargs["read_points"] = _epcs(name, raw)
        elif name == "EQ_bizLocation":
            kwargs["biz_locations"] = _epcs(name, raw)
        elif name == "WD_readPoint":
            kwargs["wd_read_points"] = _epcs(name, raw)
        elif name == "WD_bizLocation":
            kwargs["wd_biz_locations"] = _epcs(name, raw)
        elif name in MATCH_EPC_FIELDS or name in MATCH_CLASS_FIELDS:
            classes = name in MATCH_CLASS_FIELDS
            fields = MATCH_CLASS_FIELDS[name] if classes else MATCH_EPC_FIELDS[name]
            found = _match(name, raw, fields, classes)
            if found.regexes:
                (class_patterns if classes else epc_patterns).append(found)
            else:
                (match_classes if classes else match_epcs).append((fields, found.exact))
        elif name in QUANTITY_BOUNDS:
            quantity.append((QUANTITY_BOUNDS[name], _decimal(name, raw)))
        elif name.startswith(tuple(PARTY_PARAMETERS)):
            parties.append(_party(name, raw))
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
        elif name == "orderBy":
            if raw not in ORDER_KEYS:
                raise QueryParameterError(
                    name,
                    f"{raw[:40]!r}: this repository orders by eventTime or recordTime"
                    " (not by extension fields)",
                )
            kwargs["order_by"] = ORDER_KEYS[raw]
        elif name == "orderDirection":
            if raw not in ("ASC", "DESC"):
                raise QueryParameterError(name, "ASC or DESC")
            kwargs["order_descending"] = raw == "DESC"
        elif name == "eventCountLimit":
            kwargs["event_count_limit"] = _int(name, raw, 1, 2**31 - 1)
        elif name == "maxEventCount":
            kwargs["max_event_count"] = _int(name, raw, 0, 2**31 - 1)
        elif name in ("perPage", "limit"):
            kwargs["per_page"] = _int(name, raw, 1, MAX_PER_PAGE)
        elif name in ("nextPageToken", "cursor"):
            token = (name, raw)
        elif name in SENSOR_EQUALS:
            sensors.append(_sensor_equals(name, raw))
        elif (found_number := _SENSOR_NUMBER.fullmatch(name)) is not None:
            sensors.append(_sensor_number(name, raw, found_number))
        elif name in _SENSOR_TIMES:
            bound, field_name = name.split("_", 1)
            sensors.append(SensorMatch(field_name, _BOUNDS[bound], when=_time(name, raw)))
        elif name == "EQ_transformationID":
            kwargs["transformation_ids"] = frozenset(
                form for value in _values(name, raw) for form in _given_and_canonical(value)
            )
        elif (family := _field_family(name)) is not None:
            field_matches.append(_field(name, raw, family))
        elif name.startswith(_MASTER_DATA_PREFIXES):
            raise QueryParameterError(
                name,
                "master-data attributes are not kept by this repository (no vocabulary"
                " master data is captured), so this filter cannot be answered",
            )
        elif name.startswith(_NOT_YET_PREFIXES):
            raise QueryParameterError(name, "not supported by this repository yet")
        else:
            raise QueryParameterError(name, "not a query parameter of EPCIS 2.0")
    if {"perPage", "limit"} <= seen.keys() or {"nextPageToken", "cursor"} <= seen.keys():
        raise QueryParameterError("perPage", "give perPage/nextPageToken or limit/cursor")
    order_by = kwargs.get("order_by")
    if "orderDirection" in seen and order_by is None:
        raise QueryParameterError("orderDirection", "give orderBy too")
    if "eventCountLimit" in seen:
        if "maxEventCount" in seen:
            raise QueryParameterError("eventCountLimit", "not with maxEventCount")
        if order_by is None:
            raise QueryParameterError("eventCountLimit", "give orderBy too")
    if token is not None:
        name, raw = token
        if isinstance(order_by, str):
            descending = bool(kwargs.get("order_descending", True))
            kwargs["after_key"] = _ordered_token(name, raw, order_by, descending)
        else:
            kwargs["after"] = _int(name, raw, 0, 2**63 - 1)
    return EventFilter(
        **kwargs,  # type: ignore[arg-type]
        match_epcs=tuple(match_epcs),
        match_classes=tuple(match_classes),
        match_epc_patterns=tuple(epc_patterns),
        match_class_patterns=tuple(class_patterns),
        quantity=tuple(quantity),
        parties=tuple(parties),
        fields=tuple(field_matches),
        sensors=tuple(sensors),
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
    extensions the events use are defined where a reader meets them. An event captured with a
    prefix that an earlier event's context binds to another IRI (two organisations' `ex:`,
    in a regulator's answer) carries its own `@context` instead: merged, the later binding
    would silently re-home the other's extensions."""
    merged: list[object] = [EPCIS_CONTEXT]
    bound: dict[str, object] = {}
    answered: list[dict[str, Any]] = []
    for event, context in zip(events, contexts, strict=True):
        entries = _context_entries(context)
        declared = [entry for entry in entries if isinstance(entry, dict)]
        if any(bound.get(k, v) != v for entry in declared for k, v in entry.items()):
            own = [*entries, *_context_entries(event.get("@context"))]
            answered.append({**event, "@context": own})
            continue
        for entry in entries:
            if entry not in merged:
                merged.append(entry)
        for entry in declared:
            bound.update(entry)
        answered.append(event)
    return {
        "@context": merged,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": created.isoformat().replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": answered},
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

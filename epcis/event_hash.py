"""GS1 CBV 2.0 EPCIS Event Hash ID (section 8.9): canonical pre-hash string, digest, ni: URI."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from epcis.epc_format import map_epc_fields
from epcis.identifiers import canonical_gs1_uri, normalise_epc
from epcis.vocabulary import (
    BIZ_STEPS,
    BIZ_TRANSACTION_TYPES,
    DISPOSITIONS,
    SENSOR_MEASUREMENT_TYPES,
    SOURCE_DEST_TYPES,
)

__all__ = [
    "HASH_RULE",
    "HASH_RULE_1",
    "HashContext",
    "digest_from_hash_id",
    "document_events",
    "document_hash_ids",
    "document_ignore_fields",
    "event_hash_digest",
    "event_hash_id",
    "hash_context",
    "hash_id_from_digest",
    "normalise_event",
    "prehash_string",
]

HASH_ID_PREFIX: Final = "ni:///sha-256;"
HASH_ID_SUFFIX: Final = "?ver=CBV2.0"
_HASH_ID = re.compile(r"ni:///sha-256;([0-9a-f]{64})\?ver=CBV2\.0", re.ASCII)

# --------------------------------------------------------------------------------------------
# Vocabulary: bare JSON-LD terms of the EPCIS 2.0.0 context and the IRIs they expand to. The
# reference implementation obtains these by JSON-LD expansion; a table keeps this module pure.
# --------------------------------------------------------------------------------------------

_CBV = "https://ref.gs1.org/cbv/"
_GS1_VOC = "https://gs1.org/voc/"  # value of the `gs1` prefix in the EPCIS 2.0.0 context


def _terms(prefix: str, names: Iterable[str]) -> dict[str, str]:
    return {name: prefix + name for name in names}


# The vocabularies are the ones capture validates against (one table, in epcis.vocabulary).
_BIZ_STEPS = _terms(_CBV + "BizStep-", BIZ_STEPS)
_DISPOSITIONS = _terms(_CBV + "Disp-", DISPOSITIONS)
_BIZ_TRANSACTION_TYPES = _terms(_CBV + "BTT-", BIZ_TRANSACTION_TYPES)
_SOURCE_DEST_TYPES = _terms(_CBV + "SDT-", SOURCE_DEST_TYPES)
_MEASUREMENT_TYPES = _terms(_GS1_VOC, SENSOR_MEASUREMENT_TYPES)
_SENSOR_EXCEPTIONS = _terms(_GS1_VOC, ("ALARM_CONDITION", "ERROR_CONDITION"))
_COMPONENTS = _terms(
    _CBV + "Comp-",
    [
        "x",
        "y",
        "z",
        "axial_distance",
        "azimuth",
        "height",
        "spherical_radius",
        "polar_angle",
        "elevation_angle",
        "easting",
        "northing",
        "latitude",
        "longitude",
        "altitude",
    ],
)

# Rule 1 (tracefin before 2026-12, hashes stored then): these prefixes were applied without a
# document declaring them, and CURIE values were expanded only with GS1 prefixes. Rule 2 (now):
# exactly the prefixes the document and the event declare, in keys and values alike, as the
# GS1 reference implementation does (docs/epcis-hash.md). Rule 1 is kept so the id an event
# had then can still be recomputed (its alias; tests rebuild a store of that time with it).
HASH_RULE_1: Final = 1
HASH_RULE: Final = 2
_RULE_1_PREFIXES: Final[Mapping[str, str]] = {
    "gs1": _GS1_VOC,
    "cbv": _CBV,
    "epcis": "https://ref.gs1.org/epcis/",
    "cbvmda": "urn:epcglobal:cbv:mda:",
}
# Old CBV 1.x URNs and their CBV 2.0 web vocabulary equivalents.
_CBV_URNS: Final = (
    ("urn:epcglobal:cbv:bizstep:", _CBV + "BizStep-"),
    ("urn:epcglobal:cbv:disp:", _CBV + "Disp-"),
    ("urn:epcglobal:cbv:btt:", _CBV + "BTT-"),
    ("urn:epcglobal:cbv:sdt:", _CBV + "SDT-"),
    ("urn:epcglobal:cbv:er:", _CBV + "ER-"),
)

# Keys ignored at every depth (comments are not event data).
_IGNORED_EVERYWHERE: Final = frozenset({"rdfs:comment", "comment"})
# Top-level keys that are not part of the hash: identity/bookkeeping and error declarations
# (an error declaration must keep the eventID of the event it corrects).
_IGNORED_TOP: Final = frozenset({"type", "eventID", "recordTime", "errorDeclaration", "@context"})

# --------------------------------------------------------------------------------------------
# Canonical property order
# --------------------------------------------------------------------------------------------

_LEAF, _TIME, _STRUCT, _LIST = range(4)


@dataclass(frozen=True, slots=True)
class _Node:
    """One property of the canonical order.

    LEAF/TIME: `name=value` (a list value gives one sorted entry per item). STRUCT: `name` +
    its fields in order + its extensions. LIST: `name` + sorted item entries, where `item` says
    how an item is written (an item with an empty name contributes only its fields).
    """

    name: str
    kind: int = _LEAF
    fields: tuple[_Node, ...] = ()
    positions: Mapping[str, tuple[int, _Node]] = field(default_factory=dict)
    item: _Node | None = None
    vocabulary: Mapping[str, str] | None = None
    assign: str = ""  # "name=", precomputed for leaves


def _leaf(name: str, vocabulary: Mapping[str, str] | None = None) -> _Node:
    return _Node(name, _LEAF, vocabulary=vocabulary, assign=name + "=")


def _time(name: str) -> _Node:
    return _Node(name, _TIME, assign=name + "=")


def _struct(name: str, *fields: _Node) -> _Node:
    positions = {f.name: (index, f) for index, f in enumerate(fields)}
    return _Node(name, _STRUCT, fields=fields, positions=positions)


def _list(name: str, item: _Node) -> _Node:
    return _Node(name, _LIST, item=item)


_QUANTITY_ELEMENT = _struct("quantityElement", _leaf("epcClass"), _leaf("quantity"), _leaf("uom"))
_EPC = _leaf("epc")

_SENSOR_METADATA = _struct(
    "sensorMetadata",
    _time("time"),
    _time("startTime"),
    _time("endTime"),
    _leaf("deviceID"),
    _leaf("deviceMetadata"),
    _leaf("rawData"),
    _leaf("dataProcessingMethod"),
    _leaf("bizRules"),
)
_SENSOR_REPORT = _struct(
    "sensorReport",
    _leaf("type", _MEASUREMENT_TYPES),
    _leaf("exception", _SENSOR_EXCEPTIONS),
    _leaf("deviceID"),
    _leaf("deviceMetadata"),
    _leaf("rawData"),
    _leaf("dataProcessingMethod"),
    _time("time"),
    _leaf("microorganism"),
    _leaf("chemicalSubstance"),
    _leaf("value"),
    _leaf("component", _COMPONENTS),
    _leaf("stringValue"),
    _leaf("booleanValue"),
    _leaf("hexBinaryValue"),
    _leaf("uriValue"),
    _leaf("minValue"),
    _leaf("maxValue"),
    _leaf("meanValue"),
    _leaf("sDev"),
    _leaf("percRank"),
    _leaf("percValue"),
    _leaf("uom"),
    _leaf("coordinateReferenceSystem"),
)

_EVENT = _struct(
    "",
    _time("eventTime"),
    _leaf("eventTimeZoneOffset"),
    _leaf("certificationInfo"),
    _list("epcList", _EPC),
    _leaf("parentID"),
    _list("inputEPCList", _EPC),
    _list("childEPCs", _EPC),
    _list("quantityList", _QUANTITY_ELEMENT),
    _list("childQuantityList", _QUANTITY_ELEMENT),
    _list("inputQuantityList", _QUANTITY_ELEMENT),
    _list("outputEPCList", _EPC),
    _list("outputQuantityList", _QUANTITY_ELEMENT),
    _leaf("action"),
    _leaf("transformationID"),
    _leaf("bizStep", _BIZ_STEPS),
    _leaf("disposition", _DISPOSITIONS),
    _struct("persistentDisposition", _leaf("set", _DISPOSITIONS), _leaf("unset", _DISPOSITIONS)),
    _struct("readPoint", _leaf("id")),
    _struct("bizLocation", _leaf("id")),
    _list("sensorElementList", _struct("sensorElement", _SENSOR_METADATA, _SENSOR_REPORT)),
)
# The reference writes these three lists (each item type first) in the closing block that is
# sorted together with ilmd and the user extensions, not at a fixed position; the conformance
# vectors depend on it (destinationList comes before sourceList, both after sensorElementList).
_SORTED_WITH_EXTENSIONS: Final[Mapping[str, _Node]] = {
    node.name: node
    for node in (
        _list(
            "bizTransactionList",
            _struct("", _leaf("type", _BIZ_TRANSACTION_TYPES), _leaf("bizTransaction")),
        ),
        _list("sourceList", _struct("", _leaf("type", _SOURCE_DEST_TYPES), _leaf("source"))),
        _list(
            "destinationList",
            _struct("", _leaf("type", _SOURCE_DEST_TYPES), _leaf("destination")),
        ),
    )
}
_NO_NODES: Final[Mapping[str, _Node]] = {}
_VALUE_CACHE_SIZE: Final = 16384


# --------------------------------------------------------------------------------------------
# Context: namespace prefixes for user extensions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashContext:
    """Prefix declarations of a JSON-LD `@context`, prepared once per document.

    `keys` maps a prefix to `{iri}` (how a prefixed key appears in the pre-hash string);
    `values` maps the prefixes whose CURIE values are expanded to their IRI. `source` is the
    frozen context it was made from, `rule` the hash rule (HASH_RULE unless asked).
    """

    keys: Mapping[str, str]
    values: Mapping[str, str]
    source: Any = None
    rule: int = HASH_RULE
    # Canonical form of values already seen under this context (bounded; see _Writer.value).
    cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Pairs:
    """A frozen JSON object (hashable, for the context cache).

    A wrapper rather than a tuple subclass: mypyc (scripts/build_native.py) compiles no
    subclass of a built-in type, and a wrapped tuple never equals a frozen JSON array.
    """

    items: tuple[tuple[str, Any], ...]


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _Pairs(tuple((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _collect_prefixes(frozen: Any, into: dict[str, str]) -> None:
    if isinstance(frozen, _Pairs):
        for prefix, iri in frozen.items:
            # Only plain prefix declarations: keywords and expanded term definitions don't
            # declare a namespace for `prefix:name` keys.
            if isinstance(iri, str) and not prefix.startswith("@"):
                into[prefix] = iri
    elif isinstance(frozen, tuple):
        for entry in frozen:
            _collect_prefixes(entry, into)


@lru_cache(maxsize=256)
def _compile_context(frozen: Any, rule: int = HASH_RULE) -> HashContext:
    # The prefix map is built once per document (capture prepares it once per payload): the
    # hot path looks a prefix up in a dict, it never runs a JSON-LD processor.
    if rule == HASH_RULE_1:
        prefixes = dict(_RULE_1_PREFIXES)
        _collect_prefixes(frozen, prefixes)
        values = {
            p: iri
            for p, iri in prefixes.items()
            if iri.startswith(("https://ref.gs1.org", "https://gs1.org"))
        }
    else:
        prefixes = {}
        _collect_prefixes(frozen, prefixes)
        values = prefixes
    return HashContext(
        keys={p: "{" + iri + "}" for p, iri in prefixes.items()},
        values=values,
        source=frozen,
        rule=rule,
    )


def hash_context(
    context: Any = None, event_context: Any = None, *, rule: int | None = None
) -> HashContext:
    """Prepare a document `@context` (string, object or list, or an already prepared
    HashContext), with an event's own `@context` declarations taking precedence.

    `rule` is HASH_RULE (the default; a prepared context keeps its own) or HASH_RULE_1, the
    rule of events stored before 2026-12 (see HASH_RULE_1)."""
    prepared = context if isinstance(context, HashContext) else None
    if rule is None:
        rule = prepared.rule if prepared is not None else HASH_RULE
    if rule not in (HASH_RULE, HASH_RULE_1):
        raise ValueError(f"unknown event hash rule {rule}")
    frozen = prepared.source if prepared is not None else _freeze(context)
    if event_context is not None:
        frozen = (frozen, _freeze(event_context))
    elif prepared is not None and prepared.rule == rule:
        return prepared
    if frozen is None or isinstance(frozen, str):
        frozen = None  # a context URL alone declares no prefix of its own
    try:
        return _compile_context(frozen, rule)
    except TypeError:  # an unhashable leaf somewhere: prepare it without the cache
        return _compile_context.__wrapped__(frozen, rule)


# --------------------------------------------------------------------------------------------
# Value canonicalisation
# --------------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?",
    re.ASCII,
)
_NUMERIC_START: Final = frozenset("0123456789+-.")  # any other ASCII start is not a number
_MAX_FRACTION_DIGITS: Final = 1000


@lru_cache(maxsize=4096)
def _utc_minute(date_minute: tuple[str, str, str, str, str], offset: int) -> str | None:
    """`YYYY-MM-DDTHH:MM` in UTC of a local minute `offset` minutes east of UTC, or None if
    the date is invalid (whole-minute offsets never touch seconds, so this caches well)."""
    year, month, day, hour, minute = date_minute
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute))
        if offset:
            moment -= timedelta(minutes=offset)
    except (ValueError, OverflowError):
        return None
    return moment.isoformat(timespec="minutes")


def _canonical_timestamp(text: str) -> str | None:
    """UTC, millisecond precision, `Z`; the 3rd decimal rounded up when the 4th is 5-9.

    A timestamp without offset is taken as UTC (the reference would use the host's zone).
    None if `text` is not a valid timestamp (the reference then keeps it as written).
    """
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, tz_h, tz_m = m.groups()
    offset = 0
    if sign is not None:
        offset = int(tz_h) * 60 + int(tz_m or 0)
        if sign == "-":
            offset = -offset
    seconds = int(second or 0)
    fraction = fraction or ""
    millis = int(fraction[:3].ljust(3, "0")) + (len(fraction) > 3 and fraction[3] >= "5")
    if seconds > 59:
        return None
    if millis == 1000:  # rounding carries into the seconds (and maybe the date)
        utc = _utc_minute((year, month, day, hour, minute), offset)
        if utc is None:
            return None
        moment = datetime.fromisoformat(utc) + timedelta(seconds=seconds + 1)
        return moment.isoformat(timespec="milliseconds") + "Z"
    utc = _utc_minute((year, month, day, hour, minute), offset)
    if utc is None:
        return None
    return f"{utc}:{seconds:02d}.{millis:03d}Z"


def _canonical_number(text: str) -> str:
    """Numbers without leading `+`, leading zeros or trailing zeros (`1.50` -> `1.5`).

    Exactly the reference's rule: a decimal (not a float, which would lose digits of long
    numbers); whole numbers written through `to_integral_value`, others in positional form.
    """
    if text[0] not in _NUMERIC_START and text[0].isascii():
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and abs(exponent) > _MAX_FRACTION_DIGITS:
        # Positional form of e.g. 1e-999999999 would be a gigabyte of zeros: keep it as sent.
        return text
    if number == 0:
        return "0"  # -0, 0.0 and 0e5 are one number (PostgreSQL's jsonb keeps no sign of zero)
    integral = number.to_integral_value()
    if number == integral:
        # Positional, as jsonb gives it back: 1e16 and 10000000000000000 are one number.
        return format(integral, "f")
    return format(number.normalize(), "f")


def _canonical_plain(text: str) -> str:
    """Web vocabulary for CBV 1.x URNs, then number formatting, then GS1 Digital Link."""
    if "urn:epcglobal:cbv:" in text:
        for urn, web in _CBV_URNS:
            text = text.replace(urn, web)
    text = _canonical_number(text)
    converted = canonical_gs1_uri(text)
    return text if converted is None else converted


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Pre-hash string
# --------------------------------------------------------------------------------------------


class _Writer:
    """Renders one event; carries the prefixes and the fields to ignore."""

    __slots__ = ("cache", "ignore", "keys", "values")

    def __init__(self, context: HashContext, ignore: Collection[str]) -> None:
        self.keys = context.keys
        self.values = context.values
        self.cache = context.cache
        self.ignore = ignore

    def key_name(self, key: str) -> str:
        colon = key.find(":")
        if colon > 0:
            iri = self.keys.get(key[:colon])
            if iri is not None:
                return iri + key[colon + 1 :]
        return key

    def skip(self, key: str) -> bool:
        if key in _IGNORED_EVERYWHERE:
            return True
        return bool(self.ignore) and (key in self.ignore or self.key_name(key) in self.ignore)

    def value(self, text: str) -> str:
        """Canonical form of a (stripped) value: GS1 CURIEs expanded, then _canonical_plain."""
        canonical = self.cache.get(text)
        if canonical is not None:
            return canonical
        canonical = text
        colon = text.find(":")
        if colon > 0:
            iri = self.values.get(text[:colon])
            if iri is not None:
                canonical = iri + text[colon + 1 :]
        canonical = _canonical_plain(canonical)
        if len(self.cache) >= _VALUE_CACHE_SIZE:
            self.cache.clear()  # cheap bound; the working set refills it at once
        self.cache[text] = canonical
        return canonical

    def leaf(self, node: _Node, text: str) -> str | None:
        """`name=value` of one scalar, or None if it is blank."""
        text = text.strip()
        if not text:
            return None
        if node.kind == _TIME:
            return node.assign + (_canonical_timestamp(text) or text)
        vocabulary = node.vocabulary
        if vocabulary is not None:
            text = vocabulary.get(text, text)
        return node.assign + self.value(text)

    def node(self, node: _Node, value: Any, out: list[str]) -> None:
        """Append the entries of `value` written as `node` (several for repeated values)."""
        kind = node.kind
        if kind == _LIST:
            item = node.item
            assert item is not None
            entries: list[str] = []
            leaves = item.kind != _STRUCT
            for element in value if isinstance(value, list) else (value,):
                if leaves and type(element) is str:
                    entry = self.leaf(item, element)
                    if entry is not None:
                        entries.append(entry)
                else:
                    self.node(item, element, entries)
            if entries:
                entries.sort()
                out.append(node.name + "".join(entries))
            return
        if isinstance(value, list):
            for element in value:
                self.node(node, element, out)
            return
        if kind == _STRUCT:
            if type(value) is dict or isinstance(value, Mapping):
                body = self.struct(node, value)
                if body:
                    out.append(node.name + body)
                return
            if node.name in ("readPoint", "bizLocation"):
                # Older JSON bindings gave the location id directly.
                self.node(node, {"id": value}, out)
                return
            # A scalar where a structure is expected: keep it as a plain value.
        text = _scalar_text(value)
        if text is not None:
            entry = self.leaf(node, text)
            if entry is not None:
                out.append(entry)

    def struct(
        self,
        node: _Node,
        data: Mapping[str, Any],
        ignored: frozenset[str] = frozenset(),
        sorted_nodes: Mapping[str, _Node] = _NO_NODES,
    ) -> str:
        """The fields of `data` in the canonical order of `node`, then its extensions sorted."""
        # Walk the (few) keys present rather than the (many) fields defined, then put the
        # rendered fields in canonical order by position. Plain strings take a short path:
        # this loop is the hot spot of event ingestion.
        positions = node.positions
        placed: list[tuple[int, str]] = []
        extensions: list[str] = []
        for key, value in data.items():
            hit = positions.get(key)
            if hit is not None:
                index, child = hit
                if type(value) is str and child.kind == _LEAF:
                    text = value.strip()
                    if text:
                        vocabulary = child.vocabulary
                        if vocabulary is not None:
                            text = vocabulary.get(text, text)
                        canonical = self.cache.get(text)
                        if canonical is None:
                            canonical = self.value(text)
                        placed.append((index, child.assign + canonical))
                    continue
                if type(value) is str and child.kind == _TIME:
                    entry = self.leaf(child, value)
                    if entry is not None:
                        placed.append((index, entry))
                    continue
                if value is None:
                    continue
                entries: list[str] = []
                self.node(child, value, entries)
                if entries:
                    if len(entries) > 1:
                        entries.sort()
                    placed.append((index, "".join(entries)))
                continue
            if key in ignored or self.skip(key):
                continue
            late = sorted_nodes.get(key)
            if late is not None:
                self.node(late, value, extensions)
            else:
                self.generic(self.key_name(key), value, extensions)
        if len(placed) > 1:
            placed.sort()  # positions are unique, so only they are compared
        if extensions:
            extensions.sort()
            return "".join([text for _, text in placed] + extensions)
        return "".join([text for _, text in placed])

    def generic(self, name: str, value: Any, out: list[str]) -> None:
        """A property outside the canonical order: sorted children, values canonicalised."""
        if isinstance(value, Mapping):
            children: list[str] = []
            text = value.get("#text")
            for key, child in value.items():
                if key == "#text" or self.skip(key):
                    continue
                self.generic(self.key_name(key), child, children)
            children.sort()
            head = name
            if isinstance(text, str) and text.strip():
                head += "=" + self.value(text.strip())
            out.append(head + "".join(children))
        elif isinstance(value, list):
            for element in value:
                self.generic(name, element, out)
        else:
            text = _scalar_text(value)
            if text is None:
                return
            text = text.strip()
            out.append(name + "=" + self.value(text) if text else name)


_NO_IGNORE: Final[frozenset[str]] = frozenset()


def _writer(event: Mapping[str, Any], context: Any, ignore_fields: Collection[str]) -> _Writer:
    event_context = event.get("@context")
    prepared = hash_context(context, event_context)
    return _Writer(prepared, ignore_fields)


def prehash_string(
    event: Mapping[str, Any],
    context: Any = None,
    *,
    ignore_fields: Collection[str] = _NO_IGNORE,
) -> str:
    """The canonical pre-hash string of an EPCIS 2.0 JSON(-LD) event (CBV 2.0, 8.9.2).

    `context` is the enclosing document's `@context` (or a prepared HashContext); an event's own
    `@context` is added to it. `ignore_fields` names properties (as written, e.g.
    `repository-x:hash`, or expanded `{iri}name`) declared by the document as not hashed.
    Raises ValueError if the event has no `type`.
    """
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("an EPCIS event needs a string 'type' (e.g. 'ObjectEvent')")
    writer = _writer(event, context, ignore_fields)
    return (
        "eventType="
        + event_type
        + writer.struct(_EVENT, event, _IGNORED_TOP, _SORTED_WITH_EXTENSIONS)
    )


def event_hash_digest(
    event: Mapping[str, Any],
    context: Any = None,
    *,
    ignore_fields: Collection[str] = _NO_IGNORE,
) -> bytes:
    """SHA-256 of the UTF-8 pre-hash string (32 bytes)."""
    text = prehash_string(event, context, ignore_fields=ignore_fields)
    return hashlib.sha256(text.encode("utf-8")).digest()


def hash_id_from_digest(digest: bytes) -> str:
    """`ni:///sha-256;<lowercase hex>?ver=CBV2.0` for a 32-byte digest."""
    if len(digest) != 32:
        raise ValueError(f"a SHA-256 digest has 32 bytes, got {len(digest)}")
    return HASH_ID_PREFIX + digest.hex() + HASH_ID_SUFFIX


def digest_from_hash_id(hash_id: str) -> bytes:
    """The 32-byte digest of an EPCIS Event Hash ID; ValueError unless exactly canonical."""
    m = _HASH_ID.fullmatch(hash_id)
    if m is None:
        raise ValueError(
            f"not an EPCIS event hash id (ni:///sha-256;<64 lowercase hex>?ver=CBV2.0): {hash_id!r}"
        )
    return bytes.fromhex(m.group(1))


def event_hash_id(
    event: Mapping[str, Any],
    context: Any = None,
    *,
    ignore_fields: Collection[str] = _NO_IGNORE,
) -> str:
    """The EPCIS Event Hash ID `ni:///sha-256;<hex>?ver=CBV2.0` of an event."""
    return hash_id_from_digest(event_hash_digest(event, context, ignore_fields=ignore_fields))


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def document_events(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The events of an EPCISDocument or EPCISQueryDocument, in document order."""
    body = document.get("epcisBody")
    if not isinstance(body, Mapping):
        raise ValueError("not an EPCIS document: no 'epcisBody' object")
    query_results = body.get("queryResults")
    if "eventList" in body:
        events = body["eventList"]
    elif isinstance(query_results, Mapping):
        results_body = query_results.get("resultsBody")
        events = results_body.get("eventList", []) if isinstance(results_body, Mapping) else []
    elif "event" in body:
        events = [body["event"]]
    else:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise ValueError("the eventList of an EPCIS document must be a list of objects")
    return events


def _ignore_declarations(holder: Any) -> Iterable[str]:
    if not isinstance(holder, Mapping):
        return
    for key, value in holder.items():
        if isinstance(key, str) and (key == "ignoreFields" or key.endswith(":ignoreFields")):
            for name in value if isinstance(value, list) else (value,):
                if isinstance(name, str):
                    yield name


def document_ignore_fields(document: Mapping[str, Any]) -> frozenset[str]:
    """Fields a document declares as not hashed (`<prefix>:ignoreFields`, repository-specific
    metadata), on the document or on its queryResults."""
    body = document.get("epcisBody")
    query_results = body.get("queryResults") if isinstance(body, Mapping) else None
    return frozenset([*_ignore_declarations(document), *_ignore_declarations(query_results)])


def document_hash_ids(document: Mapping[str, Any]) -> list[str]:
    """The Event Hash ID of every event of a document, in document order."""
    context = hash_context(document.get("@context"))
    ignore = document_ignore_fields(document)
    return [event_hash_id(e, context, ignore_fields=ignore) for e in document_events(document)]


# --------------------------------------------------------------------------------------------
# Identifier normalisation of an event
# --------------------------------------------------------------------------------------------


def normalise_event(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """A copy of `event` with every identifier of its EPC fields in its canonical DL form.

    The EPC fields (epc_format.map_epc_fields): the EPC lists, parentID, epcClass of the
    quantity lists, readPoint/bizLocation id and source/destination. Nothing else is touched:
    other URLs (sensor deviceID/metadata/rawData/method/rules, bizTransaction,
    transformationID, certificationInfo, extensions) are kept exactly as captured, since
    rewriting a URL that is no EPC changes where it points. The hash is unchanged by it.
    `context` is accepted for symmetry with the hash functions; identifiers do not depend on
    it. The copy shares the parts it leaves unchanged with `event`, which is not modified.
    Raises ValueError for a malformed EPC URN.
    """
    del context
    return map_epc_fields(event, normalise_epc)

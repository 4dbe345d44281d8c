"""EPCIS 2.0 XML binding, inbound: an XML EPCISDocument read into the JSON binding's document.

Capture then treats it as any JSON document (validation, hash, signature, storage), so XML and
JSON are one pipeline. The parser is hardened: no entity declarations at all, a DOCTYPE only in
its bare form (`<!DOCTYPE name>`, which GS1's own examples carry), no DTD loading, no network,
libxml2's default size limits, and a depth limit on what is read.

The mapping follows the XSD (EPCglobal-epcis-2_0.xsd): event fields are unqualified elements;
lists (`epcList/epc`, `quantityList/quantityElement`, `bizTransactionList/bizTransaction@type`,
`sourceList`, `destinationList`, `sensorElementList`, `persistentDisposition/set|unset`,
`errorDeclaration/correctiveEventIDs/correctiveEventID`) become JSON arrays and objects as the
JSON binding names them; the EPCIS 1.x wrappers `extension` and `baseExtension` are read
through; any element or attribute in another namespace is a user extension, named
`prefix:local` with its prefix defined in the document's `@context` (an element with children
becomes an object, repeated names an array, text a string, as the GS1 JSON examples write
them). CBV values are given in the JSON binding's forms (`urn:epcglobal:cbv:bizstep:shipping`
is `shipping`); a value that is no standard term is kept as written, for capture to judge.
"""

from __future__ import annotations

import re
from typing import Any, Final

from lxml import etree

from epcis.model import EVENT_TYPES
from epcis.rejects import EventRejected, RejectCode
from epcis.vocabulary import CBVKind, canonical_cbv

__all__ = ["EPCIS_XML_NAMESPACES", "looks_like_xml", "xml_document"]

EPCIS_XML_NAMESPACES: Final = frozenset({"urn:epcglobal:epcis:xsd:2"})
_EPCIS_CONTEXT_2_0: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
# Deeper than any EPCIS document needs; below orjson's and capture's own nesting limits.
MAX_XML_DEPTH: Final = 200

_TEXT_FIELDS: Final = frozenset(
    {
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "eventID",
        "parentID",
        "action",
        "transformationID",
        "certificationInfo",
    }
)
_EPC_LISTS: Final = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS: Final = frozenset(
    {"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"}
)
# List element -> (member element, the JSON key of the member's text).
_TYPED_LISTS: Final = {
    "bizTransactionList": ("bizTransaction", "bizTransaction"),
    "sourceList": ("source", "source"),
    "destinationList": ("destination", "destination"),
}
_PLACES: Final = frozenset({"readPoint", "bizLocation"})
_VOCABULARY_FIELDS: Final = {"bizStep": CBVKind.BIZ_STEP, "disposition": CBVKind.DISPOSITION}
_LIST_TYPES: Final = {
    "bizTransactionList": CBVKind.BIZ_TRANSACTION_TYPE,
    "sourceList": CBVKind.SOURCE_DEST_TYPE,
    "destinationList": CBVKind.SOURCE_DEST_TYPE,
}
_SENSOR_NUMBERS: Final = frozenset(
    {"value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"}
)
_WRAPPERS: Final = frozenset({"extension", "baseExtension"})
# A sensor attribute the XML binding writes as a gs1: CURIE and the JSON binding as a bare
# word. A measurement `type` becomes the bare word too when it is a standard term: the event
# hash expands only the prefixes a JSON document declares (docs/epcis-hash.md), and the
# binding's @context carries none for values, so `gs1:Temperature` would hash apart from its
# JSON twin's `Temperature`; a gs1: term outside the standard list stays as written, as in JSON.
_GS1_WORDS: Final = frozenset({"exception"})
_GS1_CURIE: Final = "gs1:"

# The only DOCTYPE allowed: a bare name, no internal subset, no external identifier.
_BARE_DOCTYPE = re.compile(rb"<!DOCTYPE\s+[A-Za-z_][\w.:-]*\s*>")


def looks_like_xml(payload: bytes) -> bool:
    """Whether a payload is XML rather than JSON (its first non-blank byte is `<`)."""
    return payload.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def _refuse(detail: str) -> EventRejected:
    return EventRejected(RejectCode.INVALID_XML, detail)


def _parse(payload: bytes) -> Any:
    if b"<!ENTITY" in payload:
        raise _refuse("entity declarations are not accepted")
    doctypes = payload.count(b"<!DOCTYPE")
    if doctypes > 1 or (doctypes == 1 and _BARE_DOCTYPE.search(payload) is None):
        raise _refuse("a DOCTYPE may only name the root element (no DTD, no internal subset)")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        return etree.fromstring(payload, parser)
    except etree.XMLSyntaxError as exc:
        raise _refuse(f"not well-formed XML: {exc}") from None


class _Reader:
    """Reads one document's events, collecting the extension namespaces it meets."""

    def __init__(self) -> None:
        self.prefixes: dict[str, str] = {}  # prefix -> namespace IRI, in order of first use

    def name(self, qname: str, prefix_hint: str | None) -> str:
        """`prefix:local` of a namespaced name (a prefix made up if the document had none)."""
        namespace, _, local = qname[1:].partition("}")
        for prefix, known in self.prefixes.items():
            if known == namespace:
                return f"{prefix}:{local}"
        prefix = prefix_hint or f"ns{len(self.prefixes) + 1}"
        while prefix in self.prefixes:
            prefix += "_"
        self.prefixes[prefix] = namespace
        return f"{prefix}:{local}"

    def extension(self, element: Any, depth: int) -> Any:
        """An extension element's value: text, or an object of its children."""
        if depth > MAX_XML_DEPTH:
            raise EventRejected(
                RejectCode.TOO_DEEPLY_NESTED, f"XML is nested more than {MAX_XML_DEPTH} deep"
            )
        children = [child for child in element if isinstance(child.tag, str)]
        if not children:
            return (element.text or "").strip()
        value: dict[str, Any] = {}
        for child in children:
            self._put(value, self._key(child), self.extension(child, depth + 1))
        return value

    def _key(self, element: Any) -> str:
        tag: str = element.tag
        if tag.startswith("{"):
            return self.name(tag, element.prefix)
        return tag

    @staticmethod
    def _put(target: dict[str, Any], key: str, value: Any) -> None:
        if key not in target:
            target[key] = value
        elif isinstance(target[key], list):
            target[key].append(value)
        else:
            target[key] = [target[key], value]

    def attributes(self, element: Any, numbers: frozenset[str] = frozenset()) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for qname, text in element.attrib.items():
            if qname.startswith(f"{{{_XSI}}}"):
                continue
            if qname.startswith("{"):
                found[self.name(qname, _prefix_of(element, qname))] = text
            elif qname in numbers:
                found[qname] = _number(text, f"{element.tag}/@{qname}")
            elif qname == "booleanValue":
                found[qname] = _boolean(text)
            elif qname in _GS1_WORDS and text.startswith(_GS1_CURIE):
                found[qname] = text[len(_GS1_CURIE) :]
            elif qname == "type" and element.tag == "sensorReport":
                found[qname] = _word(CBVKind.SENSOR_MEASUREMENT_TYPE, text)
            else:
                found[qname] = text
        return found

    def event(self, element: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"type": element.tag}
        self._fields(element, event, 0)
        return event

    def _fields(self, element: Any, event: dict[str, Any], depth: int) -> None:
        for child in element:
            if not isinstance(child.tag, str):
                continue
            tag: str = child.tag
            if tag.startswith("{"):
                self._put(event, self._key(child), self.extension(child, depth + 1))
            elif tag in _WRAPPERS:
                if depth > 4:
                    raise _refuse("extension wrappers nested too deep")
                self._fields(child, event, depth + 1)
            elif tag in _VOCABULARY_FIELDS:
                event[tag] = _word(_VOCABULARY_FIELDS[tag], (child.text or "").strip())
            elif tag in _TEXT_FIELDS:
                event[tag] = (child.text or "").strip()
            elif tag in _EPC_LISTS:
                event[tag] = [(epc.text or "").strip() for epc in _members(child, "epc")]
            elif tag in _QUANTITY_LISTS:
                event[tag] = [self._quantity(q) for q in _members(child, "quantityElement")]
            elif tag in _TYPED_LISTS:
                member, key = _TYPED_LISTS[tag]
                event[tag] = [
                    self._typed(item, key, _LIST_TYPES[tag]) for item in _members(child, member)
                ]
            elif tag in _PLACES:
                event[tag] = self._place(child)
            elif tag == "ilmd":
                event[tag] = self.extension(child, depth + 1) or {}
            elif tag == "sensorElementList":
                event[tag] = [self._sensor(s) for s in _members(child, "sensorElement")]
            elif tag == "persistentDisposition":
                event[tag] = self._persistent(child)
            elif tag == "errorDeclaration":
                event[tag] = self._declaration(child)
            else:
                raise EventRejected(
                    RejectCode.SCHEMA_VIOLATION, f"{element.tag} has no field <{tag}>"
                )

    def _quantity(self, element: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for child in element:
            if not isinstance(child.tag, str) or _is_nil(child):
                continue
            text = (child.text or "").strip()
            if child.tag == "quantity":
                found["quantity"] = _number(text, "quantityElement/quantity")
            elif child.tag in ("epcClass", "uom"):
                found[child.tag] = text
            else:
                raise EventRejected(
                    RejectCode.SCHEMA_VIOLATION, f"quantityElement has no field <{child.tag}>"
                )
        return found

    def _typed(self, element: Any, key: str, kind: CBVKind) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if element.get("type") is not None:
            found["type"] = _word(kind, str(element.get("type")))
        found[key] = (element.text or "").strip()
        return found

    def _place(self, element: Any) -> dict[str, Any]:
        place: dict[str, Any] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag == "id":
                place["id"] = (child.text or "").strip()
            elif child.tag in _WRAPPERS:
                place.update(self._place(child))
            else:
                self._put(place, self._key(child), self.extension(child, 1))
        return place

    def _sensor(self, element: Any) -> dict[str, Any]:
        sensor: dict[str, Any] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag == "sensorMetadata":
                sensor["sensorMetadata"] = self.attributes(child)
            elif child.tag == "sensorReport":
                sensor.setdefault("sensorReport", []).append(
                    self.attributes(child, _SENSOR_NUMBERS)
                )
            else:
                self._put(sensor, self._key(child), self.extension(child, 1))
        return sensor

    @staticmethod
    def _persistent(element: Any) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for child in element:
            if isinstance(child.tag, str) and child.tag in ("set", "unset"):
                word = _word(CBVKind.DISPOSITION, (child.text or "").strip())
                found.setdefault(child.tag, []).append(word)
        return found

    def _declaration(self, element: Any) -> dict[str, Any]:
        declaration: dict[str, Any] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag == "declarationTime":
                declaration[child.tag] = (child.text or "").strip()
            elif child.tag == "reason":
                declaration[child.tag] = _word(CBVKind.ERROR_REASON, (child.text or "").strip())
            elif child.tag == "correctiveEventIDs":
                declaration["correctiveEventIDs"] = [
                    (e.text or "").strip() for e in _members(child, "correctiveEventID")
                ]
            elif child.tag in _WRAPPERS:
                declaration.update(self._declaration(child))
            else:
                self._put(declaration, self._key(child), self.extension(child, 1))
        return declaration


def _word(kind: CBVKind, value: str) -> str:
    """A CBV value in the JSON binding's form (the bare word for a standard term; URNs are not
    JSON binding). What is no standard term is kept as written, for capture to judge."""
    try:
        return canonical_cbv(kind, value)
    except EventRejected:
        return value


def _is_nil(element: Any) -> bool:
    """xsi:nil="true": the XML binding's way of leaving an optional field out."""
    return str(element.get(f"{{{_XSI}}}nil", "")).strip() in ("true", "1")


def _members(element: Any, name: str) -> list[Any]:
    return [child for child in element if isinstance(child.tag, str) and child.tag == name]


def _prefix_of(element: Any, qname: str) -> str | None:
    namespace = qname[1:].partition("}")[0]
    for prefix, known in (element.nsmap or {}).items():
        if known == namespace and prefix:
            return str(prefix)
    return None


def _number(text: str, where: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise EventRejected(RejectCode.WRONG_TYPE, f"{where} is not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise EventRejected(RejectCode.WRONG_TYPE, f"{where} is not a finite number")
    # 26.0 is written 26, as the GS1 JSON examples write the same reading.
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _boolean(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return text  # left for validation to refuse as the wrong type


def xml_document(payload: bytes) -> dict[str, Any]:
    """The JSON-binding EPCISDocument an EPCIS 2.0 XML document holds.

    Raises `EventRejected` (`invalid_xml` for what is not a well-formed, DTD-free EPCIS 2.0
    XML document; `schema_violation` for an element the XSD does not have there).
    """
    root = _parse(payload)
    namespace, _, local = str(root.tag)[1:].partition("}")
    if local != "EPCISDocument" or namespace not in EPCIS_XML_NAMESPACES:
        raise _refuse(
            f"the root element must be EPCISDocument in {sorted(EPCIS_XML_NAMESPACES)[0]}"
        )
    reader = _Reader()
    events: list[dict[str, Any]] = []
    for body in _members(root, "EPCISBody"):
        for event_list in _members(body, "EventList"):
            for element in event_list:
                if not isinstance(element.tag, str):
                    continue
                if element.tag in _WRAPPERS:  # EPCIS 1.x put TransformationEvent there
                    wrapped = [e for e in element if isinstance(e.tag, str)]
                else:
                    wrapped = [element]
                for event in wrapped:
                    if event.tag not in EVENT_TYPES:
                        raise EventRejected(
                            RejectCode.UNKNOWN_EVENT_TYPE, f"<{event.tag}> is not an EPCIS event"
                        )
                    events.append(reader.event(event))
    document: dict[str, Any] = {
        "@context": [_EPCIS_CONTEXT_2_0, *({p: n} for p, n in reader.prefixes.items())],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": root.get("creationDate", ""),
        "epcisBody": {"eventList": events},
    }
    return document

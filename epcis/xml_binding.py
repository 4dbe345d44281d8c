"""EPCIS 2.0 XML binding: an XML EPCISDocument read into the JSON binding's document, and a
JSON-binding EPCISQueryDocument written as XML (`xml_query_document`).

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
from typing import Any, Final, Literal

from lxml import etree

from epcis.model import EVENT_TYPES
from epcis.rejects import EventRejected, RejectCode
from epcis.vocabulary import CBVKind, canonical_cbv, cbv_uri

__all__ = [
    "EPCIS_QUERY_XML_NAMESPACE",
    "EPCIS_XML_NAMESPACES",
    "CBVForm",
    "looks_like_xml",
    "xml_document",
    "xml_query_document",
]

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

# The prefixes the standard context defines: a namespace of theirs is named with its standard
# prefix and left out of the document's @context, as a JSON document using it would leave it
# (the event hash expands only the prefixes a document declares, docs/epcis-hash.md).
_STANDARD_PREFIXES: Final = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": "https://ref.gs1.org/cbv/",
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": "https://gs1.org/voc/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dcterms": "http://purl.org/dc/terms/",
}
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
        for prefix, known in (*self.prefixes.items(), *_STANDARD_PREFIXES.items()):
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


# Namespaces of the binding itself and of the XML machinery: never a user's prefix.
_SBDH: Final = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"


def _is_binding_namespace(namespace: str) -> bool:
    return namespace.startswith("urn:epcglobal:") or namespace in (_XSI, _SBDH)


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
    # The document's own namespace declarations are its prefixes, as a JSON twin's @context
    # declares them: a CURIE value (a sensor report's `example:Abc`) is expanded with them.
    for prefix, namespace in (root.nsmap or {}).items():
        standard = _STANDARD_PREFIXES.get(prefix) == namespace
        if prefix and not standard and not _is_binding_namespace(namespace):
            reader.prefixes.setdefault(prefix, namespace)
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


# --- Outbound: the JSON binding's query document written as the XML binding's ----------------

EPCIS_QUERY_XML_NAMESPACE: Final = "urn:epcglobal:epcis-query:xsd:2"
_EPCIS_XML_NAMESPACE: Final = "urn:epcglobal:epcis:xsd:2"
# The XSD's sequence of each event type, after EPCISEventType's own fields (extensions last).
_BASE_FIELDS: Final = (
    "eventTime",
    "recordTime",
    "eventTimeZoneOffset",
    "eventID",
    "errorDeclaration",
    "certificationInfo",
)
_EVENT_FIELDS: Final = {
    "ObjectEvent": (
        "epcList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
        "ilmd",
    ),
    "AggregationEvent": (
        "parentID",
        "childEPCs",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "childQuantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
    "TransactionEvent": (
        "bizTransactionList",
        "parentID",
        "epcList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
    "TransformationEvent": (
        "inputEPCList",
        "inputQuantityList",
        "outputEPCList",
        "outputQuantityList",
        "transformationID",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
        "ilmd",
    ),
    "AssociationEvent": (
        "parentID",
        "childEPCs",
        "childQuantityList",
        "action",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "persistentDisposition",
    ),
}
# Members of an event that are not written as fields: the JSON binding's own keys.
_NOT_FIELDS: Final = frozenset({"type", "@context"})
CBVForm = Literal["urn", "web"]


class _Writer:
    """Writes one document's events, resolving extension prefixes with its @context."""

    def __init__(self, prefixes: dict[str, str], form: CBVForm) -> None:
        self.prefixes = prefixes
        self.form = form
        self.used: set[str] = set()  # the namespaces written, declared on the root

    def qname(self, key: str) -> str:
        """The Clark name of an extension key (`prefix:local` with a prefix in scope)."""
        prefix, _, local = key.partition(":")
        namespace = self.prefixes.get(prefix)
        if not local or namespace is None:
            raise ValueError(f"{key!r} is an extension whose prefix no @context defines")
        self.used.add(namespace)
        return f"{{{namespace}}}{local}"

    def extension(self, parent: Any, key: str, value: Any, nested: bool = False) -> None:
        """`key: value` as extension elements under `parent` (a list repeats the element);
        inside an extension, a name without a prefix is an element in no namespace, as the
        reader reads one."""
        name = key if nested and ":" not in key else self.qname(key)
        for item in value if isinstance(value, list) else [value]:
            element = etree.SubElement(parent, name)
            if isinstance(item, dict):
                for child_key, child_value in item.items():
                    if child_key.startswith("@"):
                        continue  # JSON-LD keywords (@type, @value) are not XML
                    self.extension(element, child_key, child_value, nested=True)
            else:
                element.text = _text(item)

    def event(self, event: dict[str, Any]) -> Any:
        # An event with a context of its own (a prefix the document binds otherwise) declares
        # its prefixes on its own element and resolves its names with them.
        own = _declared_prefixes(event.get("@context")) if "@context" in event else {}
        if own:
            writer = _Writer({**self.prefixes, **own}, self.form)
            element = writer.event_element(event, nsmap=own)
            self.used |= {namespace for namespace in writer.used if namespace not in own.values()}
            return element
        return self.event_element(event)

    def event_element(self, event: dict[str, Any], nsmap: dict[str, str] | None = None) -> Any:
        kind = str(event["type"])
        element = etree.Element(kind, nsmap=nsmap)
        for field in (*_BASE_FIELDS, *_EVENT_FIELDS[kind]):
            if field in event:
                self.field(element, field, event[field])
        for key, value in event.items():
            if key in _NOT_FIELDS or key in _BASE_FIELDS or key in _EVENT_FIELDS[kind]:
                continue
            if ":" not in key:
                raise ValueError(f"{kind} has no field {key!r} in the XML binding")
            self.extension(element, key, value)
        return element

    def field(self, parent: Any, name: str, value: Any) -> None:
        element = etree.SubElement(parent, name)
        if name in _VOCABULARY_FIELDS:
            element.text = cbv_uri(_VOCABULARY_FIELDS[name], str(value), self.form)
        elif name in _EPC_LISTS:
            for epc in value:
                etree.SubElement(element, "epc").text = str(epc)
        elif name in _QUANTITY_LISTS:
            for quantity in value:
                member = etree.SubElement(element, "quantityElement")
                for key in ("epcClass", "quantity", "uom"):
                    if key in quantity:
                        etree.SubElement(member, key).text = _text(quantity[key])
        elif name in _TYPED_LISTS:
            member_name, key = _TYPED_LISTS[name]
            for item in value:
                member = etree.SubElement(element, member_name)
                if "type" in item:
                    member.set("type", cbv_uri(_LIST_TYPES[name], str(item["type"]), self.form))
                member.text = str(item[key])
        elif name in _PLACES:
            if "id" in value:
                etree.SubElement(element, "id").text = str(value["id"])
            for key, item in value.items():
                if key != "id":
                    self.extension(element, key, item)
        elif name == "ilmd":
            for key, item in value.items():
                self.extension(element, key, item)
        elif name == "sensorElementList":
            for sensor in value:
                self._sensor(etree.SubElement(element, "sensorElement"), sensor)
        elif name == "persistentDisposition":
            for key in ("unset", "set"):  # the XSD's order
                for word in value.get(key, []):
                    etree.SubElement(element, key).text = cbv_uri(
                        CBVKind.DISPOSITION, str(word), self.form
                    )
        elif name == "errorDeclaration":
            self._declaration(element, value)
        else:
            element.text = _text(value)

    def _sensor(self, element: Any, sensor: dict[str, Any]) -> None:
        if "sensorMetadata" in sensor:
            self._attributes(etree.SubElement(element, "sensorMetadata"), sensor["sensorMetadata"])
        for report in sensor.get("sensorReport", []):
            self._attributes(etree.SubElement(element, "sensorReport"), report)
        for key, value in sensor.items():
            if key not in ("sensorMetadata", "sensorReport"):
                self.extension(element, key, value)

    def _attributes(self, element: Any, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key == "type" and element.tag == "sensorReport":
                text = cbv_uri(CBVKind.SENSOR_MEASUREMENT_TYPE, str(value), self.form)
            elif key in _GS1_WORDS and ":" not in str(value):
                text = _GS1_CURIE + str(value)
            else:
                text = _text(value)
            element.set(self.qname(key) if ":" in key else key, text)

    def _declaration(self, element: Any, declaration: dict[str, Any]) -> None:
        if "declarationTime" in declaration:
            etree.SubElement(element, "declarationTime").text = str(declaration["declarationTime"])
        if "reason" in declaration:
            etree.SubElement(element, "reason").text = cbv_uri(
                CBVKind.ERROR_REASON, str(declaration["reason"]), self.form
            )
        if "correctiveEventIDs" in declaration:
            ids = etree.SubElement(element, "correctiveEventIDs")
            for event_id in declaration["correctiveEventIDs"]:
                etree.SubElement(ids, "correctiveEventID").text = str(event_id)
        for key, value in declaration.items():
            if key not in ("declarationTime", "reason", "correctiveEventIDs"):
                self.extension(element, key, value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _declared_prefixes(context: Any) -> dict[str, str]:
    """The prefixes a document's @context itself declares (IRIs only), in order."""
    found: dict[str, str] = {}
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            found.update({k: v for k, v in entry.items() if isinstance(v, str) and ":" in v})
    return found


def xml_query_document(document: dict[str, Any], form: CBVForm = "urn") -> bytes:
    """An EPCISQueryDocument of the JSON binding (as `epcis.query.query_document` makes it)
    written as the XML binding's, valid against GS1's XSD: CBV words as URNs (`form` "urn",
    the EPCIS 1.x form most XML readers expect) or web URIs ("web"); extensions as elements
    in the namespaces the document's @context gives their prefixes.

    Raises ValueError for an extension whose prefix no @context defines (it has no XML name).
    """
    # The document's own prefixes are declared on the root whether an element uses them or
    # not: a value may (a CURIE like a sensor report's `example:Abc`).
    declared = _declared_prefixes(document.get("@context"))
    writer = _Writer({**_STANDARD_PREFIXES, **declared}, form)
    root = etree.Element(
        f"{{{EPCIS_QUERY_XML_NAMESPACE}}}EPCISQueryDocument",
        nsmap={**declared, "epcisq": EPCIS_QUERY_XML_NAMESPACE},
    )
    root.set("schemaVersion", "2.0")
    root.set("creationDate", str(document.get("creationDate", "")))
    results = document["epcisBody"]["queryResults"]
    body = etree.SubElement(root, "EPCISBody")
    query_results = etree.SubElement(body, f"{{{EPCIS_QUERY_XML_NAMESPACE}}}QueryResults")
    etree.SubElement(query_results, "queryName").text = str(results["queryName"])
    if "subscriptionID" in results:
        etree.SubElement(query_results, "subscriptionID").text = str(results["subscriptionID"])
    event_list = etree.SubElement(etree.SubElement(query_results, "resultsBody"), "EventList")
    for event in results["resultsBody"]["eventList"]:
        event_list.append(writer.event(event))
    etree.cleanup_namespaces(
        root,
        top_nsmap={
            prefix: namespace
            for prefix, namespace in writer.prefixes.items()
            if namespace in writer.used
        },
        keep_ns_prefixes=["epcisq", *declared],
    )
    written: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return written

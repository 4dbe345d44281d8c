"""The XML binding, outbound (issue 16 item 2): a query document written as XML is valid
against GS1's XSD, and reading its events back gives events with the same event hashes as the
ones written, for every event of GS1's JSON and XML examples."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree

from epcis.event_hash import document_events, event_hash_digest
from epcis.query import query_document
from epcis.rejects import EventRejected
from epcis.xml_binding import EPCIS_QUERY_XML_NAMESPACE, xml_document, xml_query_document

FIXTURES = Path(__file__).parents[1] / "fixtures" / "epcis-2.0"
JSON_EXAMPLES = sorted((FIXTURES / "JSON").rglob("*.jsonld"))
XML_EXAMPLES = sorted((FIXTURES / "XML").rglob("*.xml"))
NOW = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "XSD" / "EPCglobal-epcis-query-2_0.xsd")))


def _read_back(written: bytes) -> dict[str, Any]:
    """The events of a written query document, read by the XML binding's reader (which reads
    EPCISDocuments: the EventList is moved into one)."""
    root = etree.fromstring(written)
    [event_list] = root.iter("EventList")
    document = etree.Element(
        "{urn:epcglobal:epcis:xsd:2}EPCISDocument",
        nsmap={**root.nsmap, "epcis": "urn:epcglobal:epcis:xsd:2"},
    )
    document.set("schemaVersion", "2.0")
    document.set("creationDate", "2026-12-04T00:00:00Z")
    etree.SubElement(document, "EPCISBody").append(copy.deepcopy(event_list))
    return xml_document(etree.tostring(document))


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = [(path.name, orjson.loads(path.read_bytes())) for path in JSON_EXAMPLES]
    for path in XML_EXAMPLES:
        try:
            found.append((path.name, xml_document(path.read_bytes())))
        except EventRejected:
            continue  # no events: capture jobs, master data
    return [(name, document) for name, document in found if document_events(document)]


DOCUMENTS = _documents()


def test_the_examples_hold_events_to_write() -> None:
    assert len(DOCUMENTS) >= 70  # GS1's 47 JSON documents and 30 XML documents of events


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
@pytest.mark.parametrize("form", ["urn", "web"])
def test_every_example_written_as_xml_is_valid_and_reads_back_to_the_same_hashes(
    name: str, document: dict[str, Any], form: str, xsd: etree.XMLSchema
) -> None:
    events = [dict(event) for event in document_events(document)]
    context = document.get("@context")
    answer = query_document(events, [context] * len(events), NOW)
    written = xml_query_document(answer, "urn" if form == "urn" else "web")
    parsed = etree.fromstring(written)
    assert parsed.tag == f"{{{EPCIS_QUERY_XML_NAMESPACE}}}EPCISQueryDocument"
    assert xsd.validate(parsed), [str(error) for error in xsd.error_log][:5]
    read = _read_back(written)
    again = document_events(read)
    assert len(again) == len(events)
    for original, back in zip(events, again, strict=True):
        assert event_hash_digest(back, read["@context"]) == event_hash_digest(
            original, answer["@context"]
        ), (name, original.get("eventID"))


def test_cbv_words_are_written_in_the_asked_form() -> None:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-12-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": ["https://id.gs1.org/01/09521141123454/21/1"],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:1:2"}],
    }
    document = query_document([event], [None], NOW)
    urn = etree.fromstring(xml_query_document(document, "urn"))
    web = etree.fromstring(xml_query_document(document, "web"))
    assert [urn.findtext(".//bizStep"), urn.findtext(".//disposition")] == [
        "urn:epcglobal:cbv:bizstep:shipping",
        "urn:epcglobal:cbv:disp:in_transit",
    ]
    assert [web.findtext(".//bizStep"), web.find(".//bizTransaction").get("type")] == [
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "https://ref.gs1.org/cbv/BTT-po",
    ]


def test_an_extension_without_a_namespace_cannot_be_written() -> None:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-12-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "acme:colour": "red",
    }
    with pytest.raises(ValueError, match="acme:colour"):
        xml_query_document(query_document([event], [None], NOW))
    written = xml_query_document(
        query_document([event], [[{"acme": "https://acme.example/ns#"}]], NOW)
    )
    assert etree.fromstring(written).findtext(".//{https://acme.example/ns#}colour") == "red"


def test_two_organisations_binding_one_prefix_keep_their_own_namespaces(
    xsd: etree.XMLSchema,
) -> None:
    """A regulator's page holds both: merged, the later `ex` would re-home the other's
    extensions; the clashing event carries its own @context (JSON) and its own namespace
    declaration (XML), and every event keeps its hash."""
    base = {
        "type": "ObjectEvent",
        "eventTime": "2026-12-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
    }
    maker = {**base, "ex:note": "from maker"}
    rival = {**base, "eventTime": "2026-12-01T00:00:01Z", "ex:note": "from rival"}
    contexts = [[{"ex": "https://maker.example/ns/"}], [{"ex": "https://rival.example/ns/"}]]
    originals = [
        event_hash_digest(event, context)
        for event, context in zip([maker, rival], contexts, strict=True)
    ]
    document = query_document([maker, rival], contexts, NOW)
    listed = document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert "@context" not in listed[0]
    assert listed[1]["@context"] == [{"ex": "https://rival.example/ns/"}]
    assert [event_hash_digest(e, document["@context"]) for e in listed] == originals
    written = etree.fromstring(xml_query_document(document))
    assert xsd.validate(written), [str(error) for error in xsd.error_log][:5]
    assert [e.text for e in written.iter("{https://maker.example/ns/}note")] == ["from maker"]
    assert [e.text for e in written.iter("{https://rival.example/ns/}note")] == ["from rival"]
    read = _read_back(etree.tostring(written))
    assert [event_hash_digest(e, read["@context"]) for e in document_events(read)] == originals

"""The EPCIS 2.0 XML binding (epcis/xml_binding.py): GS1's XML examples read into the JSON
binding, hashed as their JSON twins, captured; hostile XML refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema_rs
import orjson
import pytest

from epcis.capture import WHOLE_PAYLOAD, DeviceKey, capture
from epcis.event_hash import event_hash_digest
from epcis.rejects import EventRejected
from epcis.xml_binding import looks_like_xml, xml_document

FIXTURES = Path(__file__).parents[1] / "fixtures" / "epcis-2.0"
XML = FIXTURES / "XML"
JSON = FIXTURES / "JSON"
HTTP = DeviceKey(1, "acme", "http-capture", None)
NOW = datetime(2026, 12, 4, tzinfo=UTC)
# The examples whose root is not an EPCISDocument (capture jobs, master data, a CBV
# illustration): they hold no events to capture.
NOT_EVENT_DOCUMENTS = {
    "CBV/CBV-11.4-2020-06-16a.xml",
    "CaptureJob/Example-CaptureJobRunning.xml",
    "CaptureJob/Example-CaptureJobSuccess.xml",
    "CaptureJob/Example-CaptureJobWithErrorFile.xml",
    "CaptureJob/Example-CaptureJobWithErrors.xml",
    "Mimasu/Example-masterData.xml",
    "WithFullCombinationOfFields/masterdata_all_possible_fields.xml",
}
# GS1's example writes `https://ref.gs1.org/cbv/Bizstep-sensor_reporting` (CBV: BizStep-): a
# term in GS1's namespace that CBV does not have, refused as JSON capture refuses it.
MISSPELT = {
    ("WithSensorData/SensorDataExamples.xml", 12),
    ("WithSensorData/SensorDataExamples.xml", 13),
}
# XML events that are the same event as a JSON example's: (XML file, index, JSON file, index).
TWINS = [
    (
        "AssociationEvent/AssociationEventExamples.xml",
        0,
        "AssociationEvent/AssociationEvent-a.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        1,
        "AssociationEvent/AssociationEvent-b.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        2,
        "AssociationEvent/AssociationEvent-c.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        3,
        "AssociationEvent/AssociationEvent-d.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        4,
        "AssociationEvent/AssociationEvent-e.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        5,
        "AssociationEvent/AssociationEvent-f.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        6,
        "AssociationEvent/AssociationEvent-d.jsonld",
        0,
    ),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        7,
        "AssociationEvent/AssociationEvent-h.jsonld",
        0,
    ),
    (
        "Example-TransactionEvent-2020_07_03y.xml",
        0,
        "Example-TransactionEvents-2020_07_03y.jsonld",
        0,
    ),
    ("Example_9.6.1-ObjectEvent-2020_06_18a.xml", 0, "EPCISQueryDocument.jsonld", 0),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        0,
        "AssociationEvent/AssociationEvent-a.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        1,
        "AssociationEvent/AssociationEvent-b.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        2,
        "AssociationEvent/AssociationEvent-c.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        3,
        "AssociationEvent/AssociationEvent-d.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        4,
        "AssociationEvent/AssociationEvent-e.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        6,
        "AssociationEvent/AssociationEvent-d.jsonld",
        0,
    ),
    (
        "Mimasu/Example-associatonEvent-sensor.xml",
        7,
        "AssociationEvent/AssociationEvent-h.jsonld",
        0,
    ),
    ("Mimasu/Example1.xml", 0, "EPCISQueryDocument.jsonld", 0),
    ("WithSensorData/SensorDataExamples.xml", 0, "WithSensorData/SensorDataExample1.jsonld", 0),
    ("WithSensorData/SensorDataExamples.xml", 1, "WithSensorData/SensorDataExample2.jsonld", 0),
    ("WithSensorData/SensorDataExamples.xml", 2, "WithSensorData/SensorDataExample3.jsonld", 0),
    ("WithSensorData/SensorDataExamples.xml", 4, "WithSensorData/SensorDataExample5.jsonld", 0),
]


def _name(path: Path) -> str:
    return path.relative_to(XML).as_posix()


EVENT_DOCUMENTS = sorted(
    path for path in XML.rglob("*.xml") if _name(path) not in NOT_EVENT_DOCUMENTS
)


def _run(payload: bytes) -> list[tuple[int, str]]:
    result = capture(
        payload, HTTP, now=NOW, max_payload_bytes=1 << 20, max_future_skew=timedelta(minutes=10)
    )
    return [(refused.index, refused.code.value) for refused in result.refused]


def test_the_fixtures_hold_gs1s_xml_examples() -> None:
    assert len(list(XML.rglob("*.xml"))) == 37
    assert len(EVENT_DOCUMENTS) == 30
    assert (FIXTURES / "LICENSE").is_file()
    assert (FIXTURES / "Disclaimer").is_file()


@pytest.mark.parametrize("path", EVENT_DOCUMENTS, ids=_name)
def test_every_event_of_every_xml_example_is_captured(path: Path) -> None:
    document = xml_document(path.read_bytes())
    events = document["epcisBody"]["eventList"]
    assert events
    expected = [
        (i, "invalid_vocabulary") for i in range(len(events)) if (_name(path), i) in MISSPELT
    ]
    assert _run(path.read_bytes()) == expected


# Where GS1's XSD allows what GS1's JSON Schema does not, the XML examples hold it; the JSON
# binding read from them keeps it (and capture accepts it, as the XSD does): where, and why.
SCHEMA_GAPS = {
    # persistentDisposition on an AggregationEvent (the JSON Schema has it on ObjectEvent only).
    "Example-PersistentDisposition.xml": [
        ["epcisBody", "eventList", 0],
        ["epcisBody", "eventList", 1],
    ],
    # sensorReports without a type (optional in the XSD, required by the JSON Schema).
    "WithSensorData/SensorDataExamples.xml": [
        ["epcisBody", "eventList", 8, "sensorElementList", 0, "sensorReport", 0],
        ["epcisBody", "eventList", 8, "sensorElementList", 0, "sensorReport", 1],
    ],
}


@pytest.mark.parametrize("path", EVENT_DOCUMENTS, ids=_name)
def test_what_the_xml_binding_reads_is_valid_json_binding(path: Path) -> None:
    schema = jsonschema_rs.Draft7Validator(
        orjson.loads((FIXTURES / "EPCIS-JSON-Schema.json").read_bytes())
    )
    errors = schema.iter_errors(xml_document(path.read_bytes()))
    assert [list(error.instance_path) for error in errors] == SCHEMA_GAPS.get(_name(path), [])


@pytest.mark.parametrize(("xml", "xml_index", "json", "json_index"), TWINS)
def test_an_xml_event_hashes_as_its_json_twin(
    xml: str, xml_index: int, json: str, json_index: int
) -> None:
    document = xml_document((XML / xml).read_bytes())
    twin = orjson.loads((JSON / json).read_bytes())
    body = twin["epcisBody"]
    twin_events = body.get("eventList") or body["queryResults"]["resultsBody"]["eventList"]
    assert event_hash_digest(
        document["epcisBody"]["eventList"][xml_index], document["@context"]
    ) == event_hash_digest(twin_events[json_index], twin["@context"])


def test_one_event_written_six_ways_has_one_hash() -> None:
    """GS1's WithEventHashID examples: the same event in other orders, namespaces and time
    zones. The one whose eventTimeZoneOffset differs hashes differently: CBV 2.0 section 8.9
    hashes the offset as written."""
    digests = {}
    for number in range(1, 7):
        document = xml_document(
            (XML / f"WithEventHashID/event_with_identical_hash_id_{number}.xml").read_bytes()
        )
        (event,) = document["epcisBody"]["eventList"]
        digests[number] = event_hash_digest(event, document["@context"])
    assert len({digests[n] for n in (1, 3, 4, 5, 6)}) == 1
    assert digests[2] != digests[1]


def test_extensions_keep_their_namespace_and_nil_fields_are_left_out() -> None:
    document = xml_document(
        (XML / "WithFullCombinationOfFields/object_event_all_possible_fields.xml").read_bytes()
    )
    (event,) = document["epcisBody"]["eventList"]
    assert {"ext1": "http://example.com/ext1/"} in document["@context"]
    sensor = event["sensorElementList"][0]
    assert sensor["ext1:object"]["ext2:object"]["ext3:string"] == "stringInObjectInObject"
    report = sensor["sensorReport"][0]
    assert (report["value"], report["booleanValue"], report["ext1:someFurtherReportData"]) == (
        26,
        True,
        "someText",
    )
    assert event["persistentDisposition"] == {
        "set": ["completeness_verified"],
        "unset": ["completeness_inferred"],
    }
    assert (event["bizStep"], event["disposition"]) == ("receiving", "in_progress")
    declared = xml_document(
        (XML / "WithErrorDeclaration/ErrorDeclarationAndCorrectiveEvent.xml").read_bytes()
    )
    first = declared["epcisBody"]["eventList"][0]
    assert first["errorDeclaration"]["reason"]
    assert first["inputQuantityList"] == [  # <quantity xsi:nil="true"/>: no quantity
        {"epcClass": "urn:epc:class:lgtin:4012345.022222.87545GHGH"}
    ]


def test_xml_is_told_from_json_by_its_first_byte() -> None:
    assert looks_like_xml(b"\xef\xbb\xbf  <?xml version='1.0'?><a/>")
    assert not looks_like_xml(b' {"type": "ObjectEvent"}')


_DOC = (
    b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"'
    b' creationDate="2026-01-01T00:00:00Z"><EPCISBody><EventList>%s</EventList></EPCISBody>'
    b"</epcis:EPCISDocument>"
)
_EVENT = (
    b"<ObjectEvent><eventTime>2026-01-01T00:00:00Z</eventTime>"
    b"<eventTimeZoneOffset>+00:00</eventTimeZoneOffset>"
    b"<epcList><epc>urn:epc:id:sgtin:0614141.107346.2018</epc></epcList>"
    b"<action>OBSERVE</action>%s</ObjectEvent>"
)


def test_a_small_xml_document_is_captured() -> None:
    assert _run(_DOC % (_EVENT % b"")) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2'
            b' "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            + _DOC
            % (_EVENT % b"<bizStep>&lol2;</bizStep>"),
            "invalid_xml",
            id="entity-expansion",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + _DOC % (_EVENT % b"<bizStep>&x;</bizStep>"),
            "invalid_xml",
            id="external-entity",
        ),
        pytest.param(
            b'<!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">' + _DOC % (_EVENT % b""),
            "invalid_xml",
            id="external-dtd",
        ),
        pytest.param(b"<a><b></a>", "invalid_xml", id="not-well-formed"),
        pytest.param(b'<EPCISDocument xmlns="urn:other"/>', "invalid_xml", id="wrong-root"),
        pytest.param(_DOC % b"<CoffeeEvent/>", "unknown_event_type", id="unknown-event"),
        pytest.param(
            _DOC % b"<ObjectEvent><eventTime>x</eventTime><colour>red</colour></ObjectEvent>",
            "schema_violation",
            id="unknown-field",
        ),
        pytest.param(
            _DOC % (_EVENT % (b'<x:a xmlns:x="urn:x">' * 220 + b"deep" + b"</x:a>" * 220)),
            "too_deeply_nested",
            id="deep-extension",
        ),
        pytest.param(b"<" + b"a" * (1 << 20), "payload_too_large", id="too-large"),
    ],
)
def test_hostile_or_broken_xml_is_refused_with_a_reason(payload: bytes, code: str) -> None:
    assert _run(payload) == [(WHOLE_PAYLOAD, code)]


def test_refusals_are_the_one_exception_type() -> None:
    with pytest.raises(EventRejected):
        xml_document(b"not xml at all")

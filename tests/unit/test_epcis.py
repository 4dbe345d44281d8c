"""EPCIS 2.0 event models: conformance documents, every reject code, extensions, CBV forms."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcis.model import (
    AggregationEvent,
    AssociationEvent,
    EPCISDocument,
    EPCISQueryDocument,
    ObjectEvent,
    TransactionEvent,
    TransformationEvent,
    events_from_document,
    parse_event,
)
from epcis.rejects import EventRejected, RejectCode
from epcis.vocabulary import (
    BIZ_STEPS,
    BIZ_TRANSACTION_TYPES,
    DISPOSITIONS,
    CBVKind,
    Stage,
    canonical_cbv,
    stage_of,
)
from tests.support.examples import examples

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_HERE = Path(__file__).resolve()
_LOCAL_VECTORS = _HERE.parents[1] / "conformance" / "epcis-event-hash"
VECTORS = (
    _LOCAL_VECTORS
    if _LOCAL_VECTORS.is_dir()
    else _HERE.parents[3] / "shared" / "conformance" / "epcis-event-hash"
)
DOCUMENTS = sorted(VECTORS.glob("*.jsonld"))

SGTIN = "urn:epc:id:sgtin:0614141.107346.2017"
SGTIN_DL = "https://id.gs1.org/01/10614141073464/21/2017"
SSCC = "urn:epc:id:sscc:0614141.1234567890"
LGTIN = "urn:epc:class:lgtin:4012345.012345.998877"


def object_event(**changes: Any) -> dict[str, Any]:
    """A realistic shipping ObjectEvent; `changes` set keys, a value of ... removes one."""
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2025-12-31T10:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "epcList": [SGTIN],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
        "bizTransactionList": [
            {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-1"}
        ],
    }
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def rejected(obj: object, **kwargs: Any) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        parse_event(obj, now=NOW, **kwargs)
    return info.value


# --- conformance documents ------------------------------------------------------------------


def test_the_conformance_documents_are_there() -> None:
    assert len(DOCUMENTS) >= 22, f"EPCIS conformance documents not found under {VECTORS}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_every_event_of_every_conformance_document_parses(path: Path) -> None:
    document = json.loads(path.read_text())
    raw_events, context = events_from_document(document)

    events = [parse_event(raw, now=NOW) for raw in raw_events]

    assert context == document["@context"]
    hashes = path.with_suffix(".hashes")
    if hashes.exists():
        assert len(events) == len(hashes.read_text().split())
    for raw, event in zip(raw_events, events, strict=True):
        assert isinstance(raw, dict)
        assert event.type == raw["type"]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_every_conformance_document_validates_as_a_document_model(path: Path) -> None:
    document = json.loads(path.read_text())
    if document["type"] == "EPCISDocument":
        events = EPCISDocument.model_validate(document).epcis_body.event_list
    else:
        query = EPCISQueryDocument.model_validate(document)
        events = query.epcis_body.query_results.results_body.event_list
    assert len(events) == len(events_from_document(document)[0])


def test_all_43_conformance_events_parse() -> None:
    total = sum(len(events_from_document(json.loads(p.read_text()))[0]) for p in DOCUMENTS)
    assert total == 43


def test_conformance_event_types_cover_the_standard() -> None:
    seen = {
        raw["type"]  # type: ignore[index]
        for p in DOCUMENTS
        for raw in events_from_document(json.loads(p.read_text()))[0]
    }
    assert {"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent"} <= seen


# --- accepted shapes ------------------------------------------------------------------------


def test_a_typical_object_event_parses_into_its_model() -> None:
    event = parse_event(object_event(), now=NOW)

    assert isinstance(event, ObjectEvent)
    assert event.action == "OBSERVE"
    assert event.event_time_utc == datetime(2025, 12, 31, 9, 0, tzinfo=UTC)
    assert event.event_time_zone_offset == "+01:00"
    assert event.biz_step == "shipping"
    assert event.disposition == "in_transit"
    assert event.stage is Stage.LOGISTICS
    assert event.read_point is not None
    assert event.read_point.id == "urn:epc:id:sgln:0614141.07346.1234"
    assert event.biz_transaction_list[0].type == "po"
    assert event.epcs() == [SGTIN_DL]


def test_aggregation_event_epcs_name_parent_and_children_once() -> None:
    event = parse_event(
        {
            "type": "AggregationEvent",
            "eventTime": "2025-12-31T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "action": "ADD",
            "bizStep": "packing",
            "parentID": SSCC,
            "childEPCs": [SGTIN, SGTIN, "urn:epc:id:sgtin:0614141.107346.2018"],
            "childQuantityList": [{"epcClass": LGTIN, "quantity": 12, "uom": "KGM"}],
        },
        now=NOW,
    )
    assert isinstance(event, AggregationEvent)
    assert event.epcs() == [
        "https://id.gs1.org/00/106141412345678908",
        SGTIN_DL,
        "https://id.gs1.org/01/10614141073464/21/2018",
    ]
    assert event.epc_classes() == ["https://id.gs1.org/01/04012345123456/10/998877"]
    assert event.child_quantity_list[0].quantity == 12
    assert event.stage is Stage.MANUFACTURING


def test_transformation_event_reports_inputs_outputs_and_is_manufacturing() -> None:
    event = parse_event(
        {
            "type": "TransformationEvent",
            "eventTime": "2025-12-31T10:00:00+02:00",
            "eventTimeZoneOffset": "+02:00",
            "inputEPCList": [SGTIN],
            "inputQuantityList": [{"epcClass": LGTIN, "quantity": 2.5, "uom": "KGM"}],
            "outputEPCList": ["urn:epc:id:sgtin:0614141.107346.9"],
            "bizStep": "https://example.com/steps/blending",
            "ilmd": {"example:bestBefore": "2026-06-01"},
        },
        now=NOW,
    )
    assert isinstance(event, TransformationEvent)
    assert event.epcs() == [SGTIN_DL, "https://id.gs1.org/01/10614141073464/21/9"]
    assert event.epc_classes() == ["https://id.gs1.org/01/04012345123456/10/998877"]
    assert event.biz_step == "https://example.com/steps/blending"
    assert event.stage is Stage.MANUFACTURING
    assert event.ilmd == {"example:bestBefore": "2026-06-01"}


def test_transaction_and_association_events_parse() -> None:
    transaction = parse_event(
        object_event(type="TransactionEvent", action="ADD", bizStep="accepting"), now=NOW
    )
    association = parse_event(
        {
            "type": "AssociationEvent",
            "eventTime": "2025-12-31T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "action": "ADD",
            "parentID": "urn:epc:id:grai:4012345.55555.987",
            "childEPCs": ["urn:epc:id:giai:4000001.12345"],
        },
        now=NOW,
    )
    assert isinstance(transaction, TransactionEvent)
    assert transaction.stage is Stage.SALES
    assert isinstance(association, AssociationEvent)
    assert association.epcs()[0].startswith("https://id.gs1.org/8003/")


def test_quality_inspection_with_sensor_data() -> None:
    event = parse_event(
        object_event(
            bizStep="inspecting",
            disposition="non_conformant",
            sensorElementList=[
                {
                    "sensorMetadata": {"time": "2025-12-31T09:55:00Z", "deviceID": "urn:x:dev:1"},
                    "sensorReport": [
                        {"type": "Temperature", "value": 9.5, "uom": "CEL"},
                        {"type": "gs1:RelativeHumidity", "value": 61, "uom": "P1"},
                        {"type": "https://gs1.org/voc/Speed", "value": 0},
                        {"type": "Dimensionless", "exception": "ALARM_CONDITION"},
                    ],
                }
            ],
        ),
        now=NOW,
    )
    assert event.stage is Stage.QUALITY_INSPECTION
    reports = event.sensor_element_list[0].sensor_report
    assert [r.type for r in reports] == [
        "Temperature",
        "RelativeHumidity",
        "Speed",
        "Dimensionless",
    ]
    assert reports[0].value == 9.5
    assert reports[3].exception == "ALARM_CONDITION"


def test_an_object_event_with_only_sensor_data_at_a_read_point_parses() -> None:
    event = parse_event(
        object_event(
            epcList=...,
            bizStep="sensor_reporting",
            sensorElementList=[{"sensorReport": [{"type": "Temperature", "value": 4}]}],
        ),
        now=NOW,
    )
    assert event.epcs() == []
    assert event.stage is None


def test_time_fractions_offsets_and_lowercase_separators_are_read() -> None:
    event = parse_event(
        object_event(eventTime="2025-12-31t23:30:00.123456789-05:30", eventTimeZoneOffset="-05:30"),
        now=datetime(2026, 1, 1, 5, 0, 1, tzinfo=UTC),
    )
    assert event.event_time_utc == datetime(2026, 1, 1, 5, 0, 0, 123456, tzinfo=UTC)


# --- extensions -----------------------------------------------------------------------------


def test_extension_fields_are_kept_at_every_level() -> None:
    raw = object_event(
        **{
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "example:myField": {"example:sub": ["3", "1"]},
            "rdfs:comment": "a note",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234", "example:dock": "B-12"},
            "errorDeclaration": {
                "declarationTime": "2025-12-31T11:00:00Z",
                "reason": "incorrect_data",
                "example:ticket": 42,
            },
        }
    )
    event = parse_event(raw, now=NOW)

    assert event.model_extra == {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "example:myField": {"example:sub": ["3", "1"]},
        "rdfs:comment": "a note",
    }
    assert event.read_point is not None
    assert event.read_point.model_extra == {"example:dock": "B-12"}
    dumped = event.model_dump(mode="json", exclude_unset=True)
    assert dumped["example:myField"] == {"example:sub": ["3", "1"]}
    assert dumped["errorDeclaration"]["example:ticket"] == 42
    assert dumped["readPoint"]["example:dock"] == "B-12"
    assert "eventTime" in dumped
    assert "event_time" not in dumped


# --- reject codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("obj", [None, 5, "ObjectEvent", [object_event()], {"action": "ADD"}])
def test_not_an_event(obj: object) -> None:
    assert rejected(obj).code is RejectCode.NOT_AN_EVENT


@pytest.mark.parametrize("event_type", ["FooEvent", "objectevent", "EPCISDocument", ""])
def test_unknown_event_type(event_type: str) -> None:
    error = rejected(object_event(type=event_type))
    assert error.code is RejectCode.UNKNOWN_EVENT_TYPE
    assert error.detail.startswith("type:")


def test_a_type_that_is_not_a_string_is_a_wrong_type() -> None:
    assert rejected(object_event(type=["ObjectEvent"])).code is RejectCode.WRONG_TYPE


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (object_event(eventTime=...), "eventTime"),
        (object_event(eventTimeZoneOffset=...), "eventTimeZoneOffset"),
        (object_event(action=...), "action"),
        (object_event(epcList=...), "epcList"),
        (object_event(readPoint={"name": "dock 4"}), "readPoint.id"),
        (
            object_event(sourceList=[{"source": "urn:epc:id:pgln:0614141.00000"}]),
            "sourceList[0].type",
        ),
        (object_event(bizTransactionList=[{"type": "po"}]), "bizTransactionList[0].bizTransaction"),
        (
            object_event(sensorElementList=[{"sensorReport": []}]),
            "sensorElementList[0].sensorReport",
        ),
        (object_event(type="TransactionEvent", bizTransactionList=...), "bizTransactionList"),
        (object_event(type="TransactionEvent", bizTransactionList=[]), "bizTransactionList"),
        (
            object_event(type="AggregationEvent", action="ADD", epcList=..., childEPCs=[SGTIN]),
            "parentID",
        ),
        (object_event(type="AggregationEvent", epcList=..., parentID=SSCC), "childEPCs"),
        (object_event(type="AssociationEvent", epcList=..., childEPCs=[SGTIN]), "parentID"),
        (object_event(type="TransformationEvent", action=..., epcList=...), "inputEPCList"),
        (
            object_event(errorDeclaration={"reason": "did_not_occur"}),
            "errorDeclaration.declarationTime",
        ),
    ],
)
def test_missing_field(obj: dict[str, Any], field: str) -> None:
    error = rejected(obj)
    assert error.code is RejectCode.MISSING_FIELD
    assert error.detail.startswith(f"{field}:")


def test_aggregation_observe_without_parent_and_delete_without_children_are_fine() -> None:
    observe = object_event(type="AggregationEvent", epcList=..., childEPCs=[SGTIN])
    delete = object_event(type="AggregationEvent", epcList=..., parentID=SSCC, action="DELETE")
    assert isinstance(parse_event(observe, now=NOW), AggregationEvent)
    assert isinstance(parse_event(delete, now=NOW), AggregationEvent)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (object_event(epcList=SGTIN), "epcList"),
        (object_event(epcList=[SGTIN, 7]), "epcList[1]"),
        (object_event(eventTime=1767171600), "eventTime"),
        (object_event(eventTime="31/12/2025 10:00"), "eventTime"),
        (object_event(eventTime="2025-02-30T10:00:00Z"), "eventTime"),
        (object_event(eventTime="0001-01-01T00:00:00+01:00"), "eventTime"),
        (object_event(eventTimeZoneOffset="+1:00"), "eventTimeZoneOffset"),
        (object_event(eventTimeZoneOffset="+15:00"), "eventTimeZoneOffset"),
        (object_event(eventTimeZoneOffset=60), "eventTimeZoneOffset"),
        (object_event(readPoint="urn:epc:id:sgln:0614141.07346.1234"), "readPoint"),
        (
            object_event(quantityList=[{"epcClass": LGTIN, "quantity": "5"}]),
            "quantityList[0].quantity",
        ),
        (
            object_event(quantityList=[{"epcClass": LGTIN, "quantity": True}]),
            "quantityList[0].quantity",
        ),
        (
            object_event(quantityList=[{"epcClass": LGTIN, "quantity": 5, "uom": "kg"}]),
            "quantityList[0].uom",
        ),
        (object_event(action="ADD", ilmd=["lot 7"]), "ilmd"),
        (object_event(certificationInfo=5), "certificationInfo"),
        (
            object_event(
                sensorElementList=[
                    {"sensorReport": [{"type": "Temperature", "value": float("nan")}]}
                ]
            ),
            "sensorElementList[0].sensorReport[0].value",
        ),
    ],
)
def test_wrong_type(obj: dict[str, Any], field: str) -> None:
    error = rejected(obj)
    assert error.code is RejectCode.WRONG_TYPE
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize("action", ["OBSERVE", "DELETE"])
def test_ilmd_goes_only_with_add_as_the_json_schema_says(action: str) -> None:
    error = rejected(object_event(action=action, ilmd={"example:bestBefore": "2026-06-01"}))
    assert error.code is RejectCode.SCHEMA_VIOLATION
    assert error.detail.startswith("ilmd:")
    assert "only with action ADD" in error.detail


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (object_event(bizStep="Shipping"), "bizStep"),
        (object_event(bizStep="transforming"), "bizStep"),
        (object_event(bizStep="https://ref.gs1.org/cbv/BizStep-teleporting"), "bizStep"),
        (object_event(bizStep="urn:epcglobal:cbv:disp:in_transit"), "bizStep"),
        (object_event(disposition="broken"), "disposition"),
        (object_event(action="MOVE"), "action"),
        (
            object_event(
                bizTransactionList=[{"type": "purchase_order", "bizTransaction": "urn:x:1"}]
            ),
            "bizTransactionList[0].type",
        ),
        (
            object_event(sourceList=[{"type": "owner", "source": "urn:epc:id:pgln:0614141.00000"}]),
            "sourceList[0].type",
        ),
        (
            object_event(persistentDisposition={"set": ["recalled", "lost"]}),
            "persistentDisposition.set[1]",
        ),
        (
            object_event(
                errorDeclaration={"declarationTime": "2025-12-31T11:00:00Z", "reason": "oops"}
            ),
            "errorDeclaration.reason",
        ),
        (
            object_event(
                sensorElementList=[{"sensorReport": [{"type": "temperature", "value": 4}]}]
            ),
            "sensorElementList[0].sensorReport[0].type",
        ),
    ],
)
def test_invalid_vocabulary(obj: dict[str, Any], field: str) -> None:
    error = rejected(obj)
    assert error.code is RejectCode.INVALID_VOCABULARY
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (object_event(epcList=["urn:epc:id:sgtin:0614141.107346"]), "epcList[0]"),
        (object_event(epcList=["not an epc"]), "epcList[0]"),
        (object_event(epcList=[""]), "epcList[0]"),
        (
            object_event(
                type="AggregationEvent",
                epcList=...,
                parentID="urn:epc:id:sscc:12",
                childEPCs=[SGTIN],
            ),
            "parentID",
        ),
        (
            object_event(quantityList=[{"epcClass": "urn:epc:class:lgtin:1.2", "quantity": 1}]),
            "quantityList[0].epcClass",
        ),
        (object_event(readPoint={"id": "dock 4"}), "readPoint.id"),
    ],
)
def test_invalid_identifier(obj: dict[str, Any], field: str) -> None:
    error = rejected(obj)
    assert error.code is RejectCode.INVALID_IDENTIFIER
    assert error.detail.startswith(f"{field}:")


@pytest.mark.parametrize("field", ["eventTime", "recordTime"])
def test_naive_event_time(field: str) -> None:
    error = rejected(object_event(**{field: "2025-12-31T10:00:00"}))
    assert error.code is RejectCode.NAIVE_EVENT_TIME
    assert error.detail.startswith(f"{field}:")


def test_event_time_in_future_allows_ten_minutes_of_clock_skew() -> None:
    nine_ahead = object_event(eventTime="2026-01-01T20:09:00+08:00", eventTimeZoneOffset="+08:00")
    eleven_ahead = object_event(eventTime="2026-01-01T12:11:00Z")

    assert parse_event(nine_ahead, now=NOW).event_time_utc == NOW + timedelta(minutes=9)
    error = rejected(eleven_ahead)
    assert error.code is RejectCode.EVENT_TIME_IN_FUTURE
    assert error.detail.startswith("eventTime:")


def test_the_allowed_skew_is_a_parameter() -> None:
    two_ahead = object_event(eventTime="2026-01-01T12:02:00Z")
    error = rejected(two_ahead, max_future_skew=timedelta(minutes=1))
    assert error.code is RejectCode.EVENT_TIME_IN_FUTURE
    assert parse_event(two_ahead, now=NOW, max_future_skew=timedelta(minutes=5))


def test_the_most_specific_fault_names_the_rejection() -> None:
    error = rejected(object_event(eventTime="2025-12-31T10:00:00", action=..., epcList="x"))
    assert error.code is RejectCode.NAIVE_EVENT_TIME
    assert "(and 2 more problems)" in error.detail


def test_details_stay_short_whatever_the_input() -> None:
    error = rejected(object_event(bizStep="x" * 100_000))
    assert error.code is RejectCode.INVALID_VOCABULARY
    assert len(error.detail) < 400


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_event(object_event(), now=datetime(2026, 1, 1))


# --- vocabulary -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (CBVKind.BIZ_STEP, "receiving", "receiving"),
        (CBVKind.BIZ_STEP, "https://ref.gs1.org/cbv/BizStep-receiving", "receiving"),
        (CBVKind.BIZ_STEP, "urn:epcglobal:cbv:bizstep:receiving", "receiving"),
        (CBVKind.BIZ_STEP, "cbv:BizStep-receiving", "receiving"),
        (
            CBVKind.BIZ_STEP,
            "https://example.com/vocab/bizstep/blending",
            "https://example.com/vocab/bizstep/blending",
        ),
        (CBVKind.BIZ_STEP, "urn:acme:step:blending", "urn:acme:step:blending"),
        (CBVKind.DISPOSITION, "https://ref.gs1.org/cbv/Disp-non_conformant", "non_conformant"),
        (
            CBVKind.DISPOSITION,
            "urn:epcglobal:cbv:disp:sellable_not_accessible",
            "sellable_not_accessible",
        ),
        (CBVKind.BIZ_TRANSACTION_TYPE, "urn:epcglobal:cbv:btt:po", "po"),
        (CBVKind.BIZ_TRANSACTION_TYPE, "https://ref.gs1.org/cbv/BTT-desadv", "desadv"),
        (CBVKind.SOURCE_DEST_TYPE, "urn:epcglobal:cbv:sdt:owning_party", "owning_party"),
        (CBVKind.ERROR_REASON, "https://ref.gs1.org/cbv/ER-did_not_occur", "did_not_occur"),
        (CBVKind.SENSOR_MEASUREMENT_TYPE, "gs1:Temperature", "Temperature"),
        (
            CBVKind.SENSOR_MEASUREMENT_TYPE,
            "https://gs1.org/voc/AbsoluteHumidity",
            "AbsoluteHumidity",
        ),
        (CBVKind.SENSOR_MEASUREMENT_TYPE, "gs1:MT-Temperature", "gs1:MT-Temperature"),
    ],
)
def test_canonical_cbv_forms(kind: CBVKind, value: str, stored: str) -> None:
    assert canonical_cbv(kind, value) == stored


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (CBVKind.BIZ_STEP, "transforming"),
        (CBVKind.BIZ_STEP, "Receiving"),
        (CBVKind.BIZ_STEP, ""),
        (CBVKind.BIZ_STEP, "urn:epcglobal:cbv:bizstep:teleporting"),
        (CBVKind.BIZ_STEP, "cbv:BizStep-teleporting"),
        (CBVKind.DISPOSITION, "https://ref.gs1.org/cbv/BizStep-shipping"),
        (CBVKind.DISPOSITION, "in transit"),
        (CBVKind.DISPOSITION, "bad uri: with spaces"),
        (CBVKind.SOURCE_DEST_TYPE, "po"),
        (CBVKind.SENSOR_MEASUREMENT_TYPE, "temperature"),
    ],
)
def test_canonical_cbv_refuses_non_standard_words(kind: CBVKind, value: str) -> None:
    with pytest.raises(EventRejected) as info:
        canonical_cbv(kind, value)
    assert info.value.code is RejectCode.INVALID_VOCABULARY


def test_vocabularies_are_the_cbv_2_0_lists() -> None:
    assert len(BIZ_STEPS) == 41
    assert len(DISPOSITIONS) == 33
    assert len(BIZ_TRANSACTION_TYPES) == 13
    assert {"sensor_reporting", "sampling", "void_shipping"} <= BIZ_STEPS
    assert {"conformant", "non_conformant", "needs_replacement", "unavailable"} <= DISPOSITIONS


@pytest.mark.parametrize(
    "biz_step",
    [
        "shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
    ],
)
def test_events_store_the_bare_word_for_any_standard_form(biz_step: str) -> None:
    event = parse_event(object_event(bizStep=biz_step), now=NOW)
    assert event.biz_step == "shipping"
    assert event.stage is Stage.LOGISTICS


def test_events_keep_a_custom_bizstep_uri_without_a_stage() -> None:
    event = parse_event(object_event(bizStep="urn:acme:bizstep:blending"), now=NOW)
    assert event.biz_step == "urn:acme:bizstep:blending"
    assert event.stage is None


def test_vocabulary_lists_inside_an_event_are_canonicalised() -> None:
    event = parse_event(
        object_event(
            persistentDisposition={"set": ["urn:epcglobal:cbv:disp:recalled"], "unset": ["active"]},
            destinationList=[
                {
                    "type": "https://ref.gs1.org/cbv/SDT-location",
                    "destination": "urn:epc:id:sgln:0614141.00001.0",
                }
            ],
        ),
        now=NOW,
    )
    assert event.persistent_disposition is not None
    assert event.persistent_disposition.to_set == ["recalled"]
    assert event.persistent_disposition.to_unset == ["active"]
    assert event.destination_list[0].type == "location"


@pytest.mark.parametrize(
    ("biz_step", "stage"),
    [
        ("commissioning", Stage.MANUFACTURING),
        ("packing", Stage.MANUFACTURING),
        ("inspecting", Stage.QUALITY_INSPECTION),
        ("receiving", Stage.INVENTORY),
        ("storing", Stage.INVENTORY),
        ("stocking", Stage.INVENTORY),
        ("holding", Stage.INVENTORY),
        ("loading", Stage.LOGISTICS),
        ("shipping", Stage.LOGISTICS),
        ("departing", Stage.LOGISTICS),
        ("arriving", Stage.LOGISTICS),
        ("unloading", Stage.LOGISTICS),
        ("retail_selling", Stage.SALES),
        ("accepting", Stage.SALES),
        ("other", None),
        ("decommissioning", None),
        ("https://example.com/steps/blending", None),
        (None, None),
    ],
)
def test_stage_of_follows_the_design_table(biz_step: str | None, stage: Stage | None) -> None:
    assert stage_of(biz_step) is stage


def test_every_mapped_step_is_a_cbv_word() -> None:
    from epcis.vocabulary import STAGE_BY_BIZ_STEP

    assert set(STAGE_BY_BIZ_STEP) <= BIZ_STEPS


# --- documents ------------------------------------------------------------------------------


def test_events_from_document_returns_raw_events_and_context_unvalidated() -> None:
    bad = {"type": "ObjectEvent", "eventTime": "yesterday"}
    document = {
        "@context": [
            "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
            {"ex": "urn:ex:"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-12-31T10:00:00Z",
        "epcisBody": {"eventList": [object_event(), bad, 7]},
    }
    events, context = events_from_document(document)
    assert events == [object_event(), bad, 7]
    assert context == document["@context"]


def test_events_from_query_document() -> None:
    document = {
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-12-31T10:00:00Z",
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": [object_event()]},
            }
        },
    }
    assert events_from_document(document) == ([object_event()], None)


@pytest.mark.parametrize(
    "document",
    [
        [object_event()],
        "EPCISDocument",
        object_event(),
        {"type": "EPCISDocument"},
        {"type": "EPCISDocument", "epcisBody": []},
        {"type": "EPCISDocument", "epcisBody": {}},
        {"type": "EPCISDocument", "epcisBody": {"eventList": object_event()}},
        {"type": "EPCISQueryDocument", "epcisBody": {"eventList": [object_event()]}},
        {"type": "EPCISQueryDocument", "epcisBody": {"queryResults": {"resultsBody": []}}},
        {"type": "EPCISMasterDataDocument", "epcisBody": {"eventList": []}},
    ],
)
def test_events_from_a_malformed_document(document: object) -> None:
    with pytest.raises(EventRejected) as info:
        events_from_document(document)
    assert info.value.code is RejectCode.NOT_AN_EVENT


# --- robustness -----------------------------------------------------------------------------

_FIELD_NAMES = [
    "type", "eventID", "eventTime", "eventTimeZoneOffset", "recordTime", "certificationInfo",
    "errorDeclaration", "declarationTime", "reason", "correctiveEventIDs", "epcList",
    "quantityList", "epcClass", "quantity", "uom", "parentID", "childEPCs", "childQuantityList",
    "inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList",
    "transformationID", "action", "bizStep", "disposition", "persistentDisposition", "set",
    "unset", "readPoint", "bizLocation", "id", "bizTransactionList", "bizTransaction",
    "sourceList", "source", "destinationList", "destination", "sensorElementList",
    "sensorMetadata", "sensorReport", "time", "value", "exception", "ilmd", "@context",
]  # fmt: skip
_EVENT_TYPES = [
    "ObjectEvent", "AggregationEvent", "TransformationEvent", "TransactionEvent",
    "AssociationEvent", "EPCISDocument", "FooEvent",
]  # fmt: skip
_STRINGS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            SGTIN, LGTIN, "ADD", "OBSERVE", "DELETE", "shipping", "in_transit", "po",
            "owning_party", "+01:00", "KGM", "Temperature", "2025-12-31T10:00:00Z",
            "2025-12-31T10:00:00", "9999-12-31T23:59:59-14:00", "urn:epc:id:sgtin:1.2.3",
            *_EVENT_TYPES,
        ]
    ),
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


def _parses_or_is_rejected(obj: object) -> None:
    """Anything but an event or an EventRejected (with a code and a detail) fails the test."""
    refusal: EventRejected | None = None
    try:
        parse_event(obj, now=NOW)
    except EventRejected as exc:
        refusal = exc
    if refusal is not None:
        assert isinstance(refusal.code, RejectCode)
        assert refusal.detail


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_arbitrary_json_is_parsed_or_rejected_never_crashes(obj: object) -> None:
    _parses_or_is_rejected(obj)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_EVENT_TYPES),
    st.dictionaries(st.sampled_from(_FIELD_NAMES), _JSON, max_size=10),
)
def test_events_with_arbitrary_field_values_never_crash(
    event_type: str, fields: dict[str, Any]
) -> None:
    _parses_or_is_rejected({**fields, "type": event_type})


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


_VALID_EVENTS = [
    raw for p in DOCUMENTS for raw in events_from_document(json.loads(p.read_text()))[0]
] + [object_event()]


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_VALID_EVENTS), st.data())
def test_mutating_any_part_of_a_valid_event_never_crashes(
    event: dict[str, Any], data: st.DataObject
) -> None:
    mutated = copy.deepcopy(event)
    path = data.draw(st.sampled_from(_paths(mutated)))
    parent: Any = mutated
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_JSON)
    _parses_or_is_rejected(mutated)


def test_non_string_keys_are_rejected_not_crashed() -> None:
    assert rejected({1: 2, "type": "ObjectEvent"}).code is RejectCode.MISSING_FIELD

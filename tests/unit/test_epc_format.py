"""GS1-EPC-Format (issue 16 items 1 and 3): only identifiers of EPC fields are translated, into
the format asked for; every other value, URLs that look like GS1 keys included, comes back
exactly as captured. Digital Link -> EPC URN is checked against the URN -> DL conversion."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from epcis.capture import DeviceKey, capture
from epcis.epc_format import (
    DEFAULT_EPC_FORMAT,
    EPCFormat,
    answered_format,
    epc_format,
    translate_event,
)
from epcis.event_hash import event_hash_id, normalise_event
from epcis.identifiers import canonical_gs1_uri, epc_urn
from epcis.query import as_recorded
from tests.unit.test_event_hash import ALL_EVENTS
from tests.unit.test_identifiers import EPC_URNS

PREFIXES = frozenset({"4012345", "0614141"})

# Non-EPC URLs, several shaped like GS1 Digital Links or EPC URNs: never translated.
UNTOUCHABLE = {
    "deviceID": "urn:epc:id:giai:4000001.111",
    "deviceMetadata": "https://id.example.org/01/04012345111118/21/7",
    "rawData": "https://example.org/8004/4012345999/data?x=1",
    "dataProcessingMethod": "https://example.com/gtin/4012345111118/ser/3",
    "bizRules": "https://id.gs1.org/01/4012345111118",
}


def event() -> dict[str, Any]:
    """An event with a GS1 key in every EPC field, each in a non-canonical form."""
    return {
        "type": "AggregationEvent",
        "eventTime": "2024-05-01T10:00:00+02:00",
        "eventTimeZoneOffset": "+02:00",
        "parentID": "urn:epc:id:sscc:4012345.0000000333",
        "childEPCs": [
            "urn:epc:id:sgtin:4012345.011111.1",
            "https://brand.example.com/01/4012345111118/21/2",
        ],
        "childQuantityList": [
            {"epcClass": "urn:epc:class:lgtin:4012345.012345.L1", "quantity": 5},
            {"epcClass": "https://example.com/01/04012345123456", "quantity": 2},
        ],
        "action": "ADD",
        "bizStep": "packing",
        "readPoint": {"id": "https://example.net/414/4012345000054/254/122"},
        "bizLocation": {"id": "urn:epc:id:sgln:4012345.00005.0"},
        "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}],
        "destinationList": [
            {"type": "location", "destination": "https://id.gs1.org/414/4012345000054"}
        ],
        "bizTransactionList": [
            {"type": "po", "bizTransaction": "https://example.com/01/4012345111118/21/9"},
            {"type": "desadv", "bizTransaction": "urn:epc:id:gdti:4012345.00009.PO-4711"},
        ],
        "sensorElementList": [
            {
                "sensorMetadata": dict(UNTOUCHABLE),
                "sensorReport": [
                    {"type": "Temperature", "value": 4.5, "uom": "CEL", **UNTOUCHABLE}
                ],
            }
        ],
        "example:link": "https://example.com/01/4012345111118/21/1",
    }


def epc_values(answered: dict[str, Any]) -> dict[str, Any]:
    return {
        "parentID": answered["parentID"],
        "childEPCs": answered["childEPCs"],
        "classes": [q["epcClass"] for q in answered["childQuantityList"]],
        "readPoint": answered["readPoint"]["id"],
        "bizLocation": answered["bizLocation"]["id"],
        "source": answered["sourceList"][0]["source"],
        "destination": answered["destinationList"][0]["destination"],
    }


def not_epc(answered: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in answered.items()
        if k
        not in (
            "parentID",
            "childEPCs",
            "childQuantityList",
            "readPoint",
            "bizLocation",
            "sourceList",
            "destinationList",
        )
    }


@pytest.mark.parametrize("answered", list(EPCFormat))
def test_values_outside_the_epc_fields_come_back_byte_for_byte(answered: EPCFormat) -> None:
    captured = event()
    before = copy.deepcopy(captured)
    result = translate_event(captured, answered, PREFIXES)
    assert captured == before, "translation must not modify the event it is given"
    assert orjson.dumps(not_epc(result)) == orjson.dumps(not_epc(captured))
    # The quantities and types beside the identifiers are kept too.
    assert [q["quantity"] for q in result["childQuantityList"]] == [5, 2]
    assert result["sourceList"][0]["type"] == "owning_party"


def test_never_translates_is_the_event_as_captured() -> None:
    captured = event()
    assert translate_event(captured, EPCFormat.NEVER_TRANSLATES) == captured
    assert answered_format(EPCFormat.NO_PREFERENCE) is EPCFormat.NEVER_TRANSLATES


def test_always_gs1_digital_link_gives_every_epc_field_its_canonical_link() -> None:
    result = translate_event(event(), EPCFormat.ALWAYS_GS1_DIGITAL_LINK)
    assert epc_values(result) == {
        "parentID": "https://id.gs1.org/00/040123450000003338",
        "childEPCs": [
            "https://id.gs1.org/01/04012345111118/21/1",
            "https://id.gs1.org/01/04012345111118/21/2",
        ],
        "classes": [
            "https://id.gs1.org/01/04012345123456/10/L1",
            "https://id.gs1.org/01/04012345123456",
        ],
        "readPoint": "https://id.gs1.org/414/4012345000054/254/122",
        "bizLocation": "https://id.gs1.org/414/4012345000054",
        "source": "https://id.gs1.org/417/4012345000009",
        "destination": "https://id.gs1.org/414/4012345000054",
    }


def test_always_epc_urn_gives_every_epc_field_its_urn() -> None:
    result = translate_event(event(), EPCFormat.ALWAYS_EPC_URN, PREFIXES)
    assert epc_values(result) == {
        "parentID": "urn:epc:id:sscc:4012345.0000000333",
        "childEPCs": ["urn:epc:id:sgtin:4012345.011111.1", "urn:epc:id:sgtin:4012345.011111.2"],
        "classes": [
            "urn:epc:class:lgtin:4012345.012345.L1",
            "urn:epc:idpat:sgtin:4012345.012345.*",
        ],
        "readPoint": "urn:epc:id:sgln:4012345.00005.122",
        "bizLocation": "urn:epc:id:sgln:4012345.00005.0",
        "source": "urn:epc:id:pgln:4012345.00000",
        "destination": "urn:epc:id:sgln:4012345.00005.0",
    }
    # Without a known company prefix a Digital Link has no URN here: it is left as captured.
    unknown = translate_event(event(), EPCFormat.ALWAYS_EPC_URN, frozenset({"9999999"}))
    assert unknown["childEPCs"][1] == "https://brand.example.com/01/4012345111118/21/2"
    assert unknown["childEPCs"][0] == "urn:epc:id:sgtin:4012345.011111.1"


@pytest.mark.parametrize(("urn", "link"), EPC_URNS)
def test_a_digital_link_converts_back_to_its_urn(urn: str, link: str) -> None:
    match = re.match(r"urn:epc:(?:id|class|idpat):[a-z]+:(\d+)\.", urn)
    assert match is not None
    found = epc_urn(link, frozenset({match.group(1), "999"}))
    assert found is not None, urn
    # The same identifier (an upui pattern and an sgtin pattern have one Digital Link).
    assert canonical_gs1_uri(found) == canonical_gs1_uri(urn)
    if not urn.startswith("urn:epc:idpat:upui:"):
        assert found == urn


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com/not/a/key",
        "urn:epc:id:gid:95100000.12345.400",  # an EPC without a Digital Link
        "urn:uuid:9f3a0b1e-0000-4000-8000-000000000000",
        "https://id.gs1.org/01/04012345111118/21/1",  # no prefix given at all (below)
    ],
)
def test_values_without_a_urn_form_have_none(value: str) -> None:
    assert epc_urn(value, frozenset() if "id.gs1.org" in value else PREFIXES) is None


def test_the_header_values() -> None:
    assert epc_format(None) is DEFAULT_EPC_FORMAT is EPCFormat.ALWAYS_GS1_DIGITAL_LINK
    for member in EPCFormat:
        assert epc_format(member.value) is member
    for bad in ("always_epc_urn", "URN", "", "Never_Translates,Always_EPC_URN"):
        with pytest.raises(ValueError, match="GS1-EPC-Format"):
            epc_format(bad)


def test_the_hash_of_every_format_is_the_hash_of_the_captured_event() -> None:
    captured = event()
    expected = event_hash_id(captured)
    for answered in EPCFormat:
        assert event_hash_id(translate_event(captured, answered, PREFIXES)) == expected


@pytest.mark.parametrize(
    ("name", "index", "raw", "context", "ignore"),
    ALL_EVENTS,
    ids=[f"{name}-{index}" for name, index, *_ in ALL_EVENTS],
)
def test_the_stored_form_is_the_digital_link_answer(
    name: str, index: int, raw: dict[str, Any], context: Any, ignore: frozenset[str]
) -> None:
    """Answers in the default format are the stored events themselves (epcis.query
    .as_recorded): for that, capture's normalisation must be exactly that translation."""
    assert normalise_event(raw) == translate_event(raw, EPCFormat.ALWAYS_GS1_DIGITAL_LINK)


def test_normalisation_rewrites_only_epc_fields() -> None:
    captured = event()
    normalised = normalise_event(captured)
    assert normalised == translate_event(captured, EPCFormat.ALWAYS_GS1_DIGITAL_LINK)
    assert not_epc(normalised) == not_epc(captured)


def test_capture_keeps_the_captured_form_only_where_normalisation_changed_it() -> None:
    device = DeviceKey(org_id=1, org_slug="acme", device_id="http", address=None)
    now = datetime(2024, 5, 2, tzinfo=UTC)
    rewritten = {**event(), "errorDeclaration": {"declarationTime": "2024-05-01T11:00:00Z"}}
    canonical = translate_event(event(), EPCFormat.ALWAYS_GS1_DIGITAL_LINK)
    canonical["eventTime"] = "2024-05-01T10:00:01+02:00"
    payload = orjson.dumps([rewritten, canonical])
    result = capture(
        payload,
        device,
        now=now,
        max_payload_bytes=1 << 20,
        max_future_skew=datetime.max.replace(tzinfo=UTC) - now,
    )
    assert result.refused == []
    first, second = result.accepted
    assert first.captured_json is not None
    # The captured form is the event as sent, without the declaration (recorded apart).
    assert orjson.loads(first.captured_json) == event()
    assert orjson.loads(first.stored_json) == normalise_event(event())
    # An event sent in the canonical forms already is stored once, with no captured copy.
    assert second.captured_json is None
    # And the answer of the first is what was captured, in every non-EPC value.
    answered = as_recorded(
        orjson.loads(first.stored_json),
        now,
        first.hash_id,
        captured=orjson.loads(first.captured_json),
        epc_format=EPCFormat.NEVER_TRANSLATES,
    )
    assert {k: v for k, v in answered.items() if k not in ("recordTime", "eventID")} == event()
    assert event_hash_id(answered) == first.hash_id

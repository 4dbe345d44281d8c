"""Check digits wherever a GS1 key enters: identifiers' checked forms and capture's refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcis.capture import CaptureResult, DeviceKey, capture
from epcis.identifiers import (
    check_digit,
    check_digit_problem,
    checked_epc,
    gln13,
    gln_uri,
    gs1_prefix,
    gtin14,
    normalise_epc,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DEVICE = DeviceKey(1, "acme", "plc-1", None)
GTIN = "00614141000029"  # 0614141 00002, check digit 9
GLN = "0614141000012"  # 0614141 00001, check digit 2


def wrong(key: str) -> str:
    """The same key with its check digit off by one."""
    return key[:-1] + str((int(key[-1]) + 1) % 10)


def test_a_right_check_digit_passes_and_a_wrong_one_is_named() -> None:
    assert check_digit_problem(f"https://id.gs1.org/01/{GTIN}/21/7") is None
    problem = check_digit_problem(f"https://id.gs1.org/01/{wrong(GTIN)}/21/7")
    assert problem == f"GTIN {wrong(GTIN)} has a wrong check digit: 0, expected 9"


@pytest.mark.parametrize(
    "uri",
    [
        "https://id.gs1.org/00/106141412345678908",  # SSCC
        "https://id.gs1.org/414/0614141000012",  # GLN
        "https://id.gs1.org/414/0614141000012/254/5",  # GLN with an extension
        "https://id.gs1.org/417/0614141000012",  # party GLN
        "https://id.gs1.org/8003/04012345000221334455",  # GRAI
        "https://id.gs1.org/8018/401234500000067657",  # GSRN
        "https://id.gs1.org/253/4012345000092PO-4711",  # GDTI
        "https://id.gs1.org/402/40123452223334442",  # GSIN
        "https://id.gs1.org/8006/040123451111180102/21/987",  # ITIP (its GTIN)
    ],
)
def test_every_kind_of_key_with_a_check_digit_is_checked(uri: str) -> None:
    assert check_digit_problem(uri) is None
    key = uri.split("/")[4]
    digits = {"00": 18, "414": 13, "417": 13, "8003": 14, "8018": 18, "253": 13, "402": 17}
    length = digits.get(uri.split("/")[3], 14)
    broken = uri.replace(key, wrong(key[:length]) + key[length:], 1)
    assert check_digit_problem(broken) is not None


def test_keys_without_a_check_digit_are_not_checked() -> None:
    assert check_digit_problem("https://id.gs1.org/8004/4012345ABC345") is None  # GIAI
    assert check_digit_problem("https://id.gs1.org/401/0614141xyz47%2F11") is None  # GINC
    assert check_digit_problem("urn:example:not-gs1") is None


@given(st.integers(min_value=0, max_value=10**12 - 1), st.integers(min_value=0, max_value=9))
def test_exactly_one_check_digit_is_right(body: int, digit: int) -> None:
    raw = f"0{body:012d}"
    gtin = raw + str(digit)
    ok = str(digit) == check_digit(raw)
    assert (check_digit_problem(f"https://id.gs1.org/01/{gtin}") is None) is ok


def test_urns_carry_no_check_digit_so_they_always_convert_to_a_right_one() -> None:
    assert checked_epc("urn:epc:id:sgtin:0614141.000002.7") == f"https://id.gs1.org/01/{GTIN}/21/7"
    assert checked_epc(f"https://id.gs1.org/01/{GTIN}/21/7") == normalise_epc(
        f"https://example.com/01/{GTIN}/21/7"
    )
    with pytest.raises(ValueError, match="wrong check digit"):
        checked_epc(f"https://example.com/01/{wrong(GTIN)}/21/7")
    with pytest.raises(ValueError, match="malformed EPC URN"):
        checked_epc("urn:epc:id:sgtin:nope")


def test_normalise_epc_stays_lenient_for_records_stored_before_the_check() -> None:
    assert normalise_epc(f"https://id.gs1.org/01/{wrong(GTIN)}") == (
        f"https://id.gs1.org/01/{wrong(GTIN)}"
    )


def test_gtin_forms() -> None:
    assert gtin14(GTIN) == GTIN
    assert gtin14(GTIN[1:]) == GTIN  # GTIN-13
    assert gtin14(f"https://id.gs1.org/01/{GTIN}") == GTIN
    assert gtin14("96385074") == "00000096385074"  # GTIN-8
    for bad, message in (
        (wrong(GTIN), "wrong check digit"),
        ("123", "8, 12, 13 or 14 digits"),
        (f"https://id.gs1.org/01/{GTIN}/10/L1", "not a GTIN"),
        ("urn:epc:id:sgtin:0614141.000002.7", "not a GTIN"),
    ):
        with pytest.raises(ValueError, match=message):
            gtin14(bad)


def test_a_gln_is_accepted_as_13_digits_a_digital_link_or_an_sgln_urn() -> None:
    forms = (
        GLN,
        f"https://id.gs1.org/414/{GLN}",
        f"https://example.com/gln/{GLN}",
        "urn:epc:id:sgln:0614141.00001.0",
    )
    assert {gln13(form) for form in forms} == {GLN}
    assert gln_uri(GLN) == f"https://id.gs1.org/414/{GLN}"
    for bad, message in (
        (wrong(GLN), "wrong check digit"),
        (f"https://id.gs1.org/414/{wrong(GLN)}", "wrong check digit"),
        ("061414100001", "13 digits"),
        ("urn:epc:id:sgln:0614141.00001.12", "extension"),
        (f"https://id.gs1.org/01/{GTIN}", "not a GLN"),
    ):
        with pytest.raises(ValueError, match=message):
            gln13(bad)


def test_a_gs1_company_prefix_has_4_to_12_digits() -> None:
    assert gs1_prefix(" 0614141 ") == "0614141"
    for bad in ("123", "1234567890123", "06a4141", ""):
        with pytest.raises(ValueError, match="4 to 12 digits"):
            gs1_prefix(bad)


def run(event: dict[str, object]) -> CaptureResult:
    return capture(
        orjson.dumps(event),
        DEVICE,
        now=NOW,
        max_payload_bytes=16 * 1024,
        max_future_skew=timedelta(minutes=10),
    )


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "ObjectEvent",
        "eventTime": "2026-12-03T11:00:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "epcList": [f"https://id.gs1.org/01/{GTIN}/21/1"],
        "bizStep": "storing",
        "readPoint": {"id": f"https://id.gs1.org/414/{GLN}"},
        "bizLocation": {"id": f"https://id.gs1.org/414/{GLN}"},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "overrides",
    [
        {"epcList": [f"https://id.gs1.org/01/{wrong(GTIN)}/21/1"]},
        {
            "epcList": [],
            "quantityList": [{"epcClass": f"https://id.gs1.org/01/{wrong(GTIN)}/10/L"}],
        },
        {"readPoint": {"id": f"https://id.gs1.org/414/{wrong(GLN)}"}},
        {"bizLocation": {"id": f"https://id.gs1.org/414/{wrong(GLN)}"}},
        {
            "destinationList": [
                {"type": "owning_party", "destination": f"https://id.gs1.org/417/{wrong(GLN)}"}
            ]
        },
        {"sourceList": [{"type": "location", "source": f"https://id.gs1.org/414/{wrong(GLN)}"}]},
        {
            "type": "AggregationEvent",
            "action": "ADD",
            "epcList": None,
            "parentID": "https://id.gs1.org/00/106141412345678909",
            "childEPCs": [f"https://id.gs1.org/01/{GTIN}/21/1"],
        },
    ],
)
def test_capture_refuses_a_key_with_a_wrong_check_digit(overrides: dict[str, object]) -> None:
    body = {k: v for k, v in event(**overrides).items() if v is not None}
    result = run(body)
    assert result.accepted == []
    assert [(r.index, r.code.value) for r in result.refused] == [(0, "invalid_identifier")]
    assert "wrong check digit" in result.refused[0].detail


def test_capture_accepts_the_same_event_with_right_digits_and_urns() -> None:
    assert run(event()).refused == []
    urns = event(
        epcList=["urn:epc:id:sgtin:0614141.000002.1"],
        readPoint={"id": "urn:epc:id:sgln:0614141.00001.0"},
    )
    assert run(urns).refused == []

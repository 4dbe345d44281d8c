"""Parsing the remaining SimpleEventQuery families (issue 16): each valid form understood, each
malformed value a QueryParameterError naming its parameter; EPC patterns as regexes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from epcis.epc_patterns import pattern_regex
from epcis.identifiers import normalise_epc
from epcis.query import (
    FieldMatch,
    PartyMatch,
    QueryParameterError,
    SensorMatch,
    page_token,
    parse_event_query,
)

DL = "https://id.gs1.org/"


def refused(*pairs: tuple[str, str]) -> QueryParameterError:
    with pytest.raises(QueryParameterError) as raised:
        parse_event_query(pairs)
    return raised.value


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        (
            "urn:epc:idpat:sgtin:0614141.107346.*",
            [DL + "01/10614141073464/21/2017", DL + "01/10614141073464/21/a%2Fb"],
            [
                DL + "01/10614141073464",
                DL + "01/10614141073464/10/L1",
                DL + "01/20614141073464/21/1",
            ],
        ),
        (
            "urn:epc:idpat:sgtin:0614141.*.*",
            [DL + "01/10614141073464/21/2017", DL + "01/00614141999999/21/x"],
            [DL + "01/10614142073464/21/2017", DL + "00/106141410734640001"],
        ),
        ("urn:epc:idpat:sgtin:*.*.*", [DL + "01/12345678901234/21/1"], [DL + "01/1234/21/1"]),
        (
            "urn:epc:idpat:sgln:0614141.07346.*",
            [DL + "414/0614141073467", DL + "414/0614141073467/254/1234"],
            [DL + "414/0614141073468"],
        ),
        ("urn:epc:idpat:sscc:0614141.*", [DL + "00/106141411234567897"], [DL + "00/1"]),
        ("urn:epc:idpat:grai:0614141.12345.*", [DL + "8003/00614141123452400"], []),
        ("urn:epc:idpat:giai:4000001.*", [DL + "8004/4000001111"], [DL + "8004/4000002111"]),
        ("urn:epc:idpat:pgln:4012345.*", [DL + "417/4012345002254"], [DL + "414/4012345002254"]),
    ],
)
def test_instance_patterns_match_the_stored_digital_links(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    regex = re.compile(pattern_regex(pattern))
    assert all(regex.search(value) for value in matches), pattern
    assert not any(regex.search(value) for value in misses), pattern


def test_class_patterns_match_the_class_and_its_lots() -> None:
    regex = re.compile(pattern_regex("urn:epc:idpat:sgtin:4012345.011111.*", classes=True))
    assert regex.search(DL + "01/04012345111118")
    assert regex.search(DL + "01/04012345111118/10/4444")
    assert not regex.search(DL + "01/04012345111118/21/4444")
    assert not regex.search(DL + "01/04012345111125")


def test_match_parameters_split_identifiers_and_patterns() -> None:
    query = parse_event_query(
        [
            ("MATCH_epc", "urn:epc:idpat:sgtin:0614141.107346.*|urn:epc:id:sgtin:0614141.107346.1"),
            ("MATCH_parentID", "urn:epc:id:sscc:0614141.1234567890"),
        ]
    )
    [match] = query.match_epc_patterns
    assert match.fields == ("epcList", "childEPCs")
    assert match.exact == {DL + "01/10614141073464/21/1"}
    assert len(match.regexes) == 1
    # Without a pattern, the parameter stays on the indexed path.
    assert query.match_epcs == ((("parentID",), frozenset({DL + "00/106141412345678908"})),)


@pytest.mark.parametrize(
    "value",
    [
        "urn:epc:idpat:sgtin:0614141.*.2017",
        "urn:epc:idpat:sgtin:0614141.107346",
        "urn:epc:idpat:sgtin:061414.107346.*",
        "urn:epc:idpat:sgtin:0614141.10734.*",
        "urn:epc:idpat:cpi:0614141.*.*",
        "urn:epc:idpat:sgtin:0614141.107346.*;DROP",
        "urn:epc:idpat:",
    ],
)
def test_malformed_patterns_name_the_parameter(value: str) -> None:
    assert refused(("MATCH_anyEPC", value)).name == "MATCH_anyEPC"


def test_ordering_and_limits() -> None:
    query = parse_event_query(
        [("orderBy", "recordTime"), ("orderDirection", "ASC"), ("eventCountLimit", "3")]
    )
    assert (query.order_by, query.order_descending, query.event_count_limit) == (
        "received_at",
        False,
        3,
    )
    assert parse_event_query([("orderBy", "eventTime")]).order_descending  # DESC by default
    assert parse_event_query([("maxEventCount", "0")]).max_event_count == 0
    at = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    token = page_token("event_time", True, at, 42)
    assert parse_event_query([("orderBy", "eventTime"), ("nextPageToken", token)]).after_key == (
        at,
        42,
    )
    for pairs, name in (
        ((("orderBy", "eventtime"),), "orderBy"),
        ((("orderBy", "urn:x#f"),), "orderBy"),
        ((("orderDirection", "ASC"),), "orderDirection"),
        ((("orderBy", "eventTime"), ("orderDirection", "up")), "orderDirection"),
        ((("eventCountLimit", "1"),), "eventCountLimit"),
        ((("maxEventCount", "many"),), "maxEventCount"),
        ((("orderBy", "recordTime"), ("nextPageToken", token)), "nextPageToken"),
        ((("orderBy", "eventTime"), ("nextPageToken", "7")), "nextPageToken"),
        ((("nextPageToken", token),), "nextPageToken"),
        ((("orderBy", "eventTime"), ("nextPageToken", token + "x")), "nextPageToken"),
    ):
        assert refused(*pairs).name == name, pairs


def test_quantities() -> None:
    query = parse_event_query(
        [("GE_quantity", "1.5"), ("LT_quantity", "2E2"), ("EQ_quantity", "-3")]
    )
    assert dict((op, v) for op, v in query.quantity) == {
        ">=": Decimal("1.5"),
        "<": Decimal("200"),
        "==": Decimal("-3"),
    }
    for value in ("1.2.3", "NaN", "1e99999", "", "0x1"):
        assert refused(("LE_quantity", value)).name == "LE_quantity", value


def test_persistent_dispositions_business_transactions_sources_destinations_and_locations() -> None:
    query = parse_event_query(
        [
            ("EQ_persistentDisposition_unset", "urn:epcglobal:cbv:disp:completeness_inferred"),
            ("EQ_bizTransaction_https://ref.gs1.org/cbv/BTT-po", "urn:epc:id:gdti:0614141.00001.1"),
            ("EQ_destination_location", "urn:epc:id:sgln:0614141.00777.0"),
            ("WD_bizLocation", "urn:epc:id:sgln:0614141.00777.0"),
        ]
    )
    assert query.persistent_unset is not None
    assert {"completeness_inferred", "cbv:Disp-completeness_inferred"} <= query.persistent_unset
    assert query.parties[0] == PartyMatch(
        "bizTransactionList",
        "bizTransaction",
        frozenset(
            {"po", "cbv:BTT-po", "https://ref.gs1.org/cbv/BTT-po", "urn:epcglobal:cbv:btt:po"}
        ),
        # as given (a bizTransaction is kept as captured) and as its Digital Link
        frozenset(
            {"urn:epc:id:gdti:0614141.00001.1", normalise_epc("urn:epc:id:gdti:0614141.00001.1")}
        ),
    )
    assert query.parties[1].list_field == "destinationList"
    assert query.wd_biz_locations == {normalise_epc("urn:epc:id:sgln:0614141.00777.0")}
    for pairs, name in (
        ((("EQ_persistentDisposition_set", "broken"),), "EQ_persistentDisposition_set"),
        ((("EQ_persistentDisposition", "damaged"),), "EQ_persistentDisposition"),
        ((("EQ_bizTransaction_", "urn:x:1"),), "EQ_bizTransaction_"),
        ((("EQ_source_owner", "urn:x:1"),), "EQ_source_owner"),
        ((("EQ_destination_location", "here"),), "EQ_destination_location"),
        ((("WD_readPoint", "urn:epc:id:sgln:0614141.00777"),), "WD_readPoint"),
    ):
        assert refused(*pairs).name == name, pairs


def test_extension_fields() -> None:
    query = parse_event_query(
        [
            ("EQ_https://ns.example.com/epcis/#temp", "5|6"),
            ("EXISTS_INNER_ILMD_example:batch", "true"),
        ]
    )
    by_local = {match.local: match for match in query.fields}
    assert by_local["temp"] == FieldMatch(
        ilmd=False,
        inner=False,
        local="temp",
        namespaces=frozenset(
            {
                "https://ns.example.com/epcis/",
                "https://ns.example.com/epcis",
                "https://ns.example.com/epcis#",
            }
        ),
        prefix=None,
        values=frozenset({"5", "6"}),
    )
    assert by_local["batch"] == FieldMatch(True, True, "batch", frozenset(), "example", None)
    for name, value in (
        ("EXISTS_example:batch", "false"),
        ("EQ_example:bat ch", "1"),
        ("EQ_example:batch'--", "1"),
        ("EQ_https://x.example/#", "1"),
        ('EQ_https://x.example/"a#b', "1"),
        ("EQ_INNER_$.a ? (@ == 1)#b", "1"),
        ("EQ_ILMD_a:b) || (true", "1"),
        ("GT_example:weight", "heavy"),  # neither a number nor a time
        ("GT_example:weight", "1|2"),  # one bound, not a choice
        ("LE_example:when", "2026-01-01T00:00:00"),  # a time without its zone
        ("GE_INNER_ILMD_example:a b", "1"),
    ):
        assert refused((name, value)).name == name, name


def test_comparisons_on_extension_fields() -> None:
    query = parse_event_query(
        [
            ("GT_example:weight", "2.5"),
            ("LE_INNER_ILMD_http://ns.example.com/epcis/#when", "2026-01-01T00:00:00Z"),
        ]
    )
    by_local = {match.local: match for match in query.fields}
    weight, when = by_local["weight"], by_local["when"]
    assert (weight.op, weight.bound, weight.prefix, weight.ilmd, weight.inner) == (
        ">",
        Decimal("2.5"),
        "example",
        False,
        False,
    )
    assert (when.op, when.bound, when.ilmd, when.inner) == (
        "<=",
        datetime(2026, 1, 1, tzinfo=UTC),
        True,
        True,
    )
    assert weight.values is None
    assert when.values is None
    # A standard parameter of the same prefix is still itself, not an extension field.
    assert parse_event_query([("GE_eventTime", "2026-01-01T00:00:00Z")]).fields == ()


def test_sensor_parameters() -> None:
    query = parse_event_query(
        [
            ("EQ_type", "https://gs1.org/voc/Temperature"),
            ("GE_meanValue_CEL", "3"),
            ("GE_percRank", "10"),
            ("LT_time", "2026-01-01T00:00:00+08:00"),
            ("EQ_deviceID", "urn:epc:id:giai:4000001.111"),
        ]
    )
    by_field = {match.field: match for match in query.sensors}
    assert "Temperature" in by_field["type"].values
    assert by_field["meanValue"] == SensorMatch("meanValue", ">=", number=Decimal(3), uom="CEL")
    assert by_field["percRank"].uom is None
    assert by_field["time"].when == datetime(2025, 12, 31, 16, tzinfo=UTC)
    # As given (capture keeps deviceID as captured) and as the Digital Link older rows hold.
    assert by_field["deviceID"].values == ("urn:epc:id:giai:4000001.111", DL + "8004/4000001111")
    assert by_field["deviceID"].metadata_too
    for name, value in (
        ("EQ_booleanValue", "1"),
        ("EQ_hexBinaryValue", "0g"),
        ("GE_value_CEL", "hot"),
        ("GE_value_Celsius", "1"),
        ("EQ_uriValue", "plain"),
        ("GE_time", "2026-01-01"),
    ):
        assert refused((name, value)).name == name, name


def test_master_data_parameters_are_refused_saying_why() -> None:
    error = refused(("HASATTR_bizLocation", "urn:x:attr"))
    assert "master" in error.detail

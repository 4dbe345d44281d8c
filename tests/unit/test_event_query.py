"""The strict SimpleEventQuery parser: every parameter understood or refused by name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from epcis.query import QueryParameterError, parse_event_query

ITEM_URN = "urn:epc:id:sgtin:0614141.107346.2017"
ITEM_LINK = "https://id.gs1.org/01/10614141073464/21/2017"
HASH_ID = "ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0"


def refused(*pairs: tuple[str, str]) -> QueryParameterError:
    with pytest.raises(QueryParameterError) as raised:
        parse_event_query(pairs)
    return raised.value


def test_values_in_any_form_are_normalised_and_any_of() -> None:
    query = parse_event_query(
        [
            ("EQ_bizStep", "shipping|https://ref.gs1.org/cbv/BizStep-receiving"),
            ("EQ_disposition", "urn:epcglobal:cbv:disp:in_transit"),
            ("MATCH_epc", ITEM_URN),
            ("eventType", "ObjectEvent|AggregationEvent"),
            ("GE_eventTime", "2026-01-01T00:00:00Z"),
            ("EQ_eventID", f"{HASH_ID}|my-id-1"),
            ("perPage", "5"),
            ("nextPageToken", "42"),
        ]
    )
    assert query.biz_steps == {"shipping", "receiving"}
    assert query.dispositions == {"in_transit"}
    assert query.match_epcs == ((("epcList", "childEPCs"), frozenset({ITEM_LINK})),)
    assert query.event_types == {"ObjectEvent", "AggregationEvent"}
    assert query.ge_event_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert (query.event_ids, query.event_digests) == ({"my-id-1"}, {bytes.fromhex("ab" * 32)})
    assert (query.per_page, query.after) == (5, 42)


@pytest.mark.parametrize(
    ("pairs", "name", "words"),
    [
        ((("perpage", "2"),), "perpage", "not a query parameter"),
        (
            (("orderBy", "eventTime"), ("eventCountLimit", "2"), ("maxEventCount", "3")),
            "eventCountLimit",
            "not with maxEventCount",
        ),
        ((("EQ_quantity", "three"),), "EQ_quantity", "not a decimal"),
        ((("GT_temperature", "1"),), "GT_temperature", "not supported"),
        ((("HASATTR_readPoint", "urn:x:a"),), "HASATTR_readPoint", "master-data"),
        ((("EQATTR_bizLocation_x", "1"),), "EQATTR_bizLocation_x", "master-data"),
        ((("EQ_bizStep", "a"), ("EQ_bizStep", "b")), "EQ_bizStep", "more than once"),
        ((("EQ_bizStep", "shiping"),), "EQ_bizStep", "not a CBV 2.0 bizStep"),
        ((("EQ_bizStep", "shipping|"),), "EQ_bizStep", "empty value"),
        ((("eventType", "PhotoEvent"),), "eventType", "not one of"),
        ((("EQ_action", "add"),), "EQ_action", "not one of"),
        ((("GE_eventTime", "2026-01-01T00:00:00"),), "GE_eventTime", "time zone"),
        ((("LT_recordTime", "yesterday"),), "LT_recordTime", "RFC 3339"),
        ((("perPage", "0"),), "perPage", "between 1 and 500"),
        ((("perPage", "501"),), "perPage", "between 1 and 500"),
        ((("nextPageToken", "-1"),), "nextPageToken", "non-negative integer"),
        ((("EQ_readPoint", "urn:epc:idpat:sgln:0614141.*.*"),), "EQ_readPoint", "patterns"),
        ((("MATCH_epc", "urn:epc:idpat:sgtin:0614141.*.2017"),), "MATCH_epc", "after a *"),
        ((("MATCH_epc", "https://id.gs1.org/01/10614141073465/21/1"),), "MATCH_epc", "check digit"),
        ((("EQ_eventID", "ni:///sha-256;XYZ"),), "EQ_eventID", "hash id"),
        ((("perPage", "5"), ("limit", "5")), "perPage", "or limit"),
    ],
)
def test_anything_else_is_refused_by_name(
    pairs: tuple[tuple[str, str], ...], name: str, words: str
) -> None:
    error = refused(*pairs)
    assert error.name == name
    assert words in error.detail


def test_no_parameter_is_every_event_a_page_at_a_time() -> None:
    query = parse_event_query([])
    assert (query.per_page, query.after, query.biz_steps, query.match_epcs) == (100, None, None, ())


def test_error_declaration_parameters() -> None:
    query = parse_event_query(
        [
            ("EXISTS_errorDeclaration", "true"),
            ("EQ_errorReason", "did_not_occur|https://ref.gs1.org/cbv/ER-incorrect_data"),
            ("EQ_correctiveEventID", "urn:uuid:1|urn:uuid:2"),
            ("GE_errorDeclarationTime", "2026-01-01T00:00:00Z"),
            ("LT_errorDeclarationTime", "2026-02-01T08:00:00+08:00"),
        ]
    )
    assert query.declared
    assert query.error_reasons == {"did_not_occur", "incorrect_data"}
    assert query.corrective_event_ids == {"urn:uuid:1", "urn:uuid:2"}
    assert query.ge_declaration_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert query.lt_declaration_time == datetime(2026, 2, 1, tzinfo=UTC)
    assert not parse_event_query([("EXISTS_errorDeclaration", "false")]).declared
    assert refused(("EXISTS_errorDeclaration", "")).name == "EXISTS_errorDeclaration"
    assert refused(("EQ_errorReason", "mistake")).name == "EQ_errorReason"
    assert refused(("GE_errorDeclarationTime", "2026-01-01")).name == "GE_errorDeclarationTime"

"""The remaining SimpleEventQuery parameter families (issue 16) through `GET /epcis/events` on
real PostgreSQL: GS1's own JSON examples are captured once (with the seeded world's events),
and each filter's answer is compared with the events a plain Python reading of the stored JSON
selects, so a filter that selects too much or too little fails."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from epcis.identifiers import normalise_epc
from tests.support.api import Api, SeededWorld, copy_of, serve
from tests.support.gs1_examples import own_the_examples

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[1] / "fixtures" / "epcis-2.0" / "JSON"
DL = "https://id.gs1.org/"
Event = dict[str, Any]


@pytest.fixture(scope="module")
def gs1(seeded_world: SeededWorld) -> Iterator[Api]:
    """The seeded world with every GS1 JSON example captured by `maker` (as /v1/capture does)."""
    with copy_of(seeded_world) as mine:
        own_the_examples(mine.database_url)
        with serve(mine, public_rate_per_minute=100_000) as api:
            for example in sorted(EXAMPLES.rglob("*.jsonld")):
                answer = api.call(
                    "POST",
                    "/v1/capture",
                    "maker",
                    content=example.read_bytes(),
                    headers={"Content-Type": "application/json"},
                )
                # Some examples repeat another's events (duplicates, nothing new): 422 then.
                assert answer.status_code in (201, 422), (example.name, answer.text)
            yield api


def listed(api: Api, params: dict[str, str], who: str = "maker") -> list[Event]:
    """Every event the query answers, page after page (following the Link header)."""
    found: list[Event] = []
    url: str | None = "/epcis/events"
    query: dict[str, str] | None = params
    for _ in range(200):
        if url is None:
            return found
        answer = api.get(url, who, params=query)
        assert answer.status_code == 200, answer.text
        found += answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        link = answer.headers.get("link")
        url = None if link is None else re.fullmatch(r"<(.*)>; rel=\"next\"", link).group(1)  # type: ignore[union-attr]
        query = None
    raise AssertionError("more than 200 pages")


@pytest.fixture(scope="module")
def everything(gs1: Api) -> list[Event]:
    events = listed(gs1, {"perPage": "500"})
    assert len(events) == 60  # the world's 14 and the 46 distinct events of GS1's examples
    return events


def ids(events: list[Event]) -> list[str]:
    return [event["eventID"] for event in events]


def check(
    api: Api, everything: list[Event], params: dict[str, str], selects: Callable[[Event], bool]
) -> list[Event]:
    """The query answers exactly the events `selects` picks, in ingest order; some, not all."""
    expected = [event for event in everything if selects(event)]
    assert 0 < len(expected) < len(everything), params
    assert ids(listed(api, {**params, "perPage": "7"})) == ids(expected), params
    return expected


def identifiers(event: Event, *fields: str) -> list[str]:
    found: list[str] = []
    for name in fields:
        value = event.get(name)
        found += [value] if isinstance(value, str) else list(value or [])
    return found


def classes(event: Event, *fields: str) -> list[str]:
    return [element["epcClass"] for name in fields for element in event.get(name, [])]


QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def quantities(event: Event) -> list[Decimal]:
    return [Decimal(str(e["quantity"])) for n in QUANTITY_LISTS for e in event.get(n, [])]


# -- 1. MATCH_ with EPC patterns --------------------------------------------------------------


def test_match_epc_with_an_item_pattern(gs1: Api, everything: list[Event]) -> None:
    prefix = DL + "01/10614141073464/21/"
    check(
        gs1,
        everything,
        {"MATCH_epc": "urn:epc:idpat:sgtin:0614141.107346.*"},
        lambda e: any(i.startswith(prefix) for i in identifiers(e, "epcList", "childEPCs")),
    )


def test_match_any_epc_with_a_company_pattern_or_an_identifier(
    gs1: Api, everything: list[Event]
) -> None:
    company = re.compile(r"https://id\.gs1\.org/01/\d0614141\d{6}/21/.+")
    one_giai = next(
        i for e in everything for i in identifiers(e, "epcList") if i.startswith(DL + "8004/")
    )
    fields = ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList")
    check(
        gs1,
        everything,
        {"MATCH_anyEPC": f"urn:epc:idpat:sgtin:0614141.*.*|{one_giai}"},
        lambda e: any(company.fullmatch(i) or i == one_giai for i in identifiers(e, *fields)),
    )
    # Every SGTIN: the pattern with every component a wildcard.
    anything = re.compile(r"https://id\.gs1\.org/01/\d{14}/21/.+")
    check(
        gs1,
        everything,
        {"MATCH_epc": "urn:epc:idpat:sgtin:*.*.*"},
        lambda e: any(anything.fullmatch(i) for i in identifiers(e, "epcList", "childEPCs")),
    )


def test_match_epc_class_with_a_class_pattern(gs1: Api, everything: list[Event]) -> None:
    gtin = DL + "01/04012345111118"  # urn:epc:idpat:sgtin:4012345.011111.*
    check(
        gs1,
        everything,
        {"MATCH_anyEPCClass": "urn:epc:idpat:sgtin:4012345.011111.*"},
        lambda e: any(
            c == gtin or c.startswith(gtin + "/10/") for c in classes(e, *QUANTITY_LISTS)
        ),
    )
    check(
        gs1,
        everything,
        {"MATCH_inputEPCClass": "urn:epc:idpat:sgtin:4012345.*.*"},
        lambda e: any(
            re.fullmatch(r"https://id\.gs1\.org/01/\d4012345\d{6}(/10/.+)?", c)
            for c in classes(e, "inputQuantityList")
        ),
    )


def test_malformed_patterns_are_refused_by_name(gs1: Api) -> None:
    for name, value in (
        ("MATCH_epc", "urn:epc:idpat:sgtin:0614141.*.2017"),
        ("MATCH_epc", "urn:epc:idpat:sgtin:0614141.10734.*"),
        ("MATCH_epc", "urn:epc:idpat:cpi:0614141.*.*"),
        ("MATCH_epcClass", "urn:epc:idpat:sscc:0614141.*"),
        ("EQ_readPoint", "urn:epc:idpat:sgln:0614141.*.*"),
    ):
        answer = gs1.get("/epcis/events", "maker", params={name: value})
        assert answer.status_code == 400, (name, value)
        body = answer.json()
        assert (body["type"], body["parameter"]) == ("epcisException:QueryParameterException", name)


# -- 2. orderBy, orderDirection, eventCountLimit, maxEventCount -------------------------------


def when(event: Event, field: str) -> datetime:
    return datetime.fromisoformat(event[field].replace("Z", "+00:00"))


@pytest.mark.parametrize("field", ["eventTime", "recordTime"])
@pytest.mark.parametrize("direction", ["ASC", "DESC", None])
def test_ordered_pages_walk_every_event_once_in_order(
    gs1: Api, everything: list[Event], field: str, direction: str | None
) -> None:
    position = {event["eventID"]: index for index, event in enumerate(everything)}
    params = {"orderBy": field, "perPage": "4"}
    if direction is not None:
        params["orderDirection"] = direction
    answered = listed(gs1, params)
    # Ties (equal times) in ingest order: the page token carries the position as well.
    expected = sorted(everything, key=lambda e: (when(e, field), position[e["eventID"]]))
    if direction != "ASC":  # DESC is the standard's default
        expected.reverse()
    assert ids(answered) == ids(expected)


def test_event_count_limit_is_the_first_n_in_order(gs1: Api, everything: list[Event]) -> None:
    position = {event["eventID"]: index for index, event in enumerate(everything)}
    latest = sorted(everything, key=lambda e: (when(e, "eventTime"), position[e["eventID"]]))
    latest.reverse()
    params = {"orderBy": "eventTime", "eventCountLimit": "5", "perPage": "2"}
    assert ids(listed(gs1, params)) == ids(latest[:5])
    shipping = [e for e in latest if e.get("bizStep") == "shipping"][:1]
    assert ids(listed(gs1, {**params, "eventCountLimit": "1", "EQ_bizStep": "shipping"})) == ids(
        shipping
    )


def test_max_event_count_refuses_a_query_too_large(gs1: Api, everything: list[Event]) -> None:
    shipping = [e for e in everything if e.get("bizStep") == "shipping"]
    fits = listed(gs1, {"EQ_bizStep": "shipping", "maxEventCount": str(len(shipping))})
    assert ids(fits) == ids(shipping)
    answer = gs1.get(
        "/epcis/events",
        "maker",
        params={"EQ_bizStep": "shipping", "maxEventCount": str(len(shipping) - 1)},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["type"] == "epcisException:QueryTooLargeException"
    # The whole query counts, not the page: a small page of a large result is still too large.
    ordered = gs1.get(
        "/epcis/events",
        "maker",
        params={"orderBy": "eventTime", "maxEventCount": "3", "perPage": "1"},
    )
    assert ordered.status_code == 413


def test_ordering_parameters_and_tokens_are_checked(gs1: Api) -> None:
    first = gs1.get("/epcis/events", "maker", params={"orderBy": "eventTime", "perPage": "2"})
    link = first.headers["link"]
    token = re.search(r"nextPageToken=([^&>]+)", link).group(1)  # type: ignore[union-attr]
    assert not token.isdigit()  # opaque, not an ingest position
    for params, name in (
        ({"orderBy": "quantity"}, "orderBy"),
        ({"orderBy": "https://ns.example.com/epcis#temp"}, "orderBy"),
        ({"orderBy": "eventTime", "orderDirection": "desc"}, "orderDirection"),
        ({"orderDirection": "ASC"}, "orderDirection"),
        ({"eventCountLimit": "3"}, "eventCountLimit"),
        ({"orderBy": "eventTime", "eventCountLimit": "3", "maxEventCount": "3"}, "eventCountLimit"),
        ({"orderBy": "eventTime", "eventCountLimit": "0"}, "eventCountLimit"),
        ({"maxEventCount": "-1"}, "maxEventCount"),
        ({"orderBy": "eventTime", "nextPageToken": "42"}, "nextPageToken"),
        ({"orderBy": "eventTime", "nextPageToken": "k1.!!"}, "nextPageToken"),
        ({"orderBy": "eventTime", "nextPageToken": token[:-3]}, "nextPageToken"),
        # A token of another ordering is not silently reinterpreted.
        ({"orderBy": "recordTime", "nextPageToken": token}, "nextPageToken"),
        (
            {"orderBy": "eventTime", "orderDirection": "ASC", "nextPageToken": token},
            "nextPageToken",
        ),
        ({"nextPageToken": token}, "nextPageToken"),
    ):
        answer = gs1.get("/epcis/events", "maker", params=params)
        assert answer.status_code == 400, (params, answer.text)
        body = answer.json()
        assert (body["type"], body["parameter"]) == (
            "epcisException:QueryParameterException",
            name,
        ), params


# -- 3. quantities ----------------------------------------------------------------------------


def test_quantity_bounds(gs1: Api, everything: list[Event]) -> None:
    check(gs1, everything, {"EQ_quantity": "200.5"}, lambda e: Decimal("200.5") in quantities(e))
    check(gs1, everything, {"GT_quantity": "450"}, lambda e: any(q > 450 for q in quantities(e)))
    check(gs1, everything, {"LE_quantity": "10"}, lambda e: any(q <= 10 for q in quantities(e)))
    # Several bounds: one quantity element within all of them.
    check(
        gs1,
        everything,
        {"GE_quantity": "30", "LT_quantity": "2.2e2"},
        lambda e: any(30 <= q < 220 for q in quantities(e)),
    )
    for value in ("ten", "1,5", "0x10", "1e", "NaN", "Infinity"):
        answer = gs1.get("/epcis/events", "maker", params={"GE_quantity": value})
        assert (answer.status_code, answer.json()["parameter"]) == (400, "GE_quantity"), value


# -- 4. persistent dispositions, business transactions, sources and destinations -------------


def persistent(event: Event, key: str) -> list[str]:
    return list((event.get("persistentDisposition") or {}).get(key, []))


def test_persistent_disposition_in_any_form(gs1: Api, everything: list[Event]) -> None:
    def verified(e: Event) -> bool:
        return any(v.endswith("completeness_verified") for v in persistent(e, "set"))

    for form in (
        "completeness_verified",
        "https://ref.gs1.org/cbv/Disp-completeness_verified",
        "urn:epcglobal:cbv:disp:completeness_verified",
    ):
        check(gs1, everything, {"EQ_persistentDisposition_set": form}, verified)
    check(
        gs1,
        everything,
        {"EQ_persistentDisposition_unset": "completeness_inferred|damaged"},
        lambda e: any(v.endswith("completeness_inferred") for v in persistent(e, "unset")),
    )
    bad = gs1.get("/epcis/events", "maker", params={"EQ_persistentDisposition_set": "fine"})
    assert (bad.status_code, bad.json()["parameter"]) == (400, "EQ_persistentDisposition_set")


def of_type(event: Event, list_field: str, id_field: str, kind: str) -> list[str]:
    return [
        element[id_field]
        for element in event.get(list_field, [])
        if str(element.get("type", "")).rsplit("-", 1)[-1].rsplit(":", 1)[-1] == kind
    ]


def test_business_transactions_sources_and_destinations(gs1: Api, everything: list[Event]) -> None:
    po = "http://transaction.acme.com/po/12345678"
    for name in (
        "EQ_bizTransaction_po",
        "EQ_bizTransaction_urn:epcglobal:cbv:btt:po",
        "EQ_bizTransaction_https://ref.gs1.org/cbv/BTT-po",
    ):
        check(
            gs1,
            everything,
            {name: po},
            lambda e: po in of_type(e, "bizTransactionList", "bizTransaction", "po"),
        )
    # An identifier given as an EPC URN is found as given (a bizTransaction is kept as
    # captured) and as its Digital Link (the form rows stored before that hold).
    gdti = "urn:epc:id:gdti:0614141.00001.1618034"
    forms = {gdti, DL + "253/0614141000012" + "1618034"}
    check(
        gs1,
        everything,
        {"EQ_bizTransaction_po": gdti},
        lambda e: bool(forms & set(of_type(e, "bizTransactionList", "bizTransaction", "po"))),
    )
    # The same value under another type is not a match.
    assert listed(gs1, {"EQ_bizTransaction_inv": po}) == []
    owner = normalise_epc("urn:epc:id:pgln:4012345.00225")
    check(
        gs1,
        everything,
        {"EQ_source_owning_party": "urn:epc:id:pgln:4012345.00225"},
        lambda e: owner in of_type(e, "sourceList", "source", "owning_party"),
    )
    receiver = normalise_epc("urn:epc:id:pgln:0614141.00777")
    check(
        gs1,
        everything,
        {"EQ_destination_owning_party": f"{receiver}|{owner}"},
        lambda e: receiver in of_type(e, "destinationList", "destination", "owning_party"),
    )
    for name, value in (
        ("EQ_bizTransaction_", po),
        ("EQ_bizTransaction_purchase", po),
        ("EQ_source_urn:epcglobal:cbv:sdt:owner", owner),
        ("EQ_source_location", "not a uri"),
    ):
        answer = gs1.get("/epcis/events", "maker", params={name: value})
        assert (answer.status_code, answer.json()["parameter"]) == (400, name), name


# -- 5. WD_readPoint, WD_bizLocation ----------------------------------------------------------


def place(event: Event, field: str) -> str | None:
    value = event.get(field)
    return value.get("id") if isinstance(value, dict) else None


def test_locations_with_descendants_are_the_gln_and_its_extensions(
    gs1: Api, everything: list[Event]
) -> None:
    gln = DL + "414/0614141073467"  # urn:epc:id:sgln:0614141.07346.0
    for form in ("urn:epc:id:sgln:0614141.07346.0", gln):
        expected = check(
            gs1,
            everything,
            {"WD_readPoint": form},
            lambda e: (
                place(e, "readPoint") == gln or str(place(e, "readPoint")).startswith(gln + "/254/")
            ),
        )
        assert {place(e, "readPoint") for e in expected} == {gln + "/254/1234"}
        # EQ_ is the location alone: the GLN itself has no events here.
        assert listed(gs1, {"EQ_readPoint": form}) == []
    # A location with an extension has no descendants: WD_ is EQ_ for it.
    sub = "urn:epc:id:sgln:0614141.07346.1234"
    assert ids(listed(gs1, {"WD_readPoint": sub})) == ids(listed(gs1, {"EQ_readPoint": sub}))
    business = normalise_epc("urn:epc:id:sgln:0012345.11111.0")
    other = normalise_epc("urn:epc:id:sgln:0037000.00729.0")
    check(
        gs1,
        everything,
        {"WD_bizLocation": f"{business}|urn:epc:id:sgln:0037000.00729.0"},
        lambda e: str(place(e, "bizLocation")).startswith((business, other)),
    )


# -- security ---------------------------------------------------------------------------------


def test_injection_attempts_are_400_or_inert_never_500(gs1: Api, everything: list[Event]) -> None:
    """Values are bind parameters and names pass fixed tables or allow-lists: an attempt is a
    QueryParameterException, or (a name that is a well-formed user URI) simply matches nothing."""
    for name, value in (
        ("EQ_bizTransaction_po'); DROP TABLE events; --", "urn:x:1"),
        ("EQ_source_$.x ? (@ == 1)", "urn:x:1"),
        ("orderBy", "event_time; DROP TABLE events"),
        ("MATCH_epc", "urn:epc:idpat:sgtin:0614141.107346.*' OR '1'='1"),
        ("EQ_quantity", "1) || (1 == 1"),
        ("EQ_persistentDisposition_set", "x' OR 1=1 --"),
        # Extension field names: they become JSON keys compared as bind parameters, and only
        # after a strict allow-list.
        ("EQ_example:x') OR ('1'='1", "1"),
        ("EQ_INNER_$.** ? (@ == 1)#x", "1"),
        ('EXISTS_ILMD_a:b" || true', "true"),
        ("EQ_http://x.example/'; DROP TABLE events; --#f", "1"),
        ("GE_value_C'L", "1"),
        ("EQ_type", "x y') || true"),
    ):
        answer = gs1.get("/epcis/events", "maker", params={name: value})
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["type"] == "epcisException:QueryParameterException"
    inert = {
        "EQ_bizTransaction_x:'||(SELECT)--": "urn:x:' OR 1=1 --",
        "EQ_persistentDisposition_set": "x:')OR(true",
        "WD_readPoint": "x:%'--",
    }
    for name, value in inert.items():
        assert listed(gs1, {name: value}) == [], name
    assert len(listed(gs1, {"perPage": "500"})) == len(everything)


# -- 6. EQ_/EXISTS_ on extension fields and ILMD ----------------------------------------------


@pytest.fixture(scope="module")
def contexts(gs1: Api, everything: list[Event]) -> list[Any]:
    """Each event's stored context, in the order of `everything` (ingest order)."""
    rows = gs1.conn.execute("SELECT context FROM events ORDER BY ingest_seq").fetchall()
    assert len(rows) == len(everything)  # every event is maker's
    return [row[0] for row in rows]


def bound_keys(
    context: Any, namespaces: set[str] | None, prefix: str | None, local: str
) -> set[str]:
    entries = context if isinstance(context, list) else [context]
    terms = [(k, v) for entry in entries if isinstance(entry, dict) for k, v in entry.items()]
    if prefix is not None:
        return {f"{k}:{local}" for k, _ in terms if k == prefix}
    assert namespaces is not None
    bound = {f"{k}:{local}" for k, v in terms if isinstance(v, str) and v in namespaces}
    return bound | {n + local for n in namespaces}


def nested_objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for member in value.values():
            yield from nested_objects(member)
    elif isinstance(value, list):
        for member in value:
            yield from nested_objects(member)


def scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def field_check(
    gs1: Api,
    everything: list[Event],
    contexts: list[Any],
    name: str,
    value: str,
    *,
    local: str,
    namespaces: set[str] | None = None,
    prefix: str | None = None,
    ilmd: bool = False,
    inner: bool = False,
    compare: Callable[[Any], bool] | None = None,
) -> list[Event]:
    def selects(pair: tuple[Event, Any]) -> bool:
        event, context = pair
        keys = bound_keys(context, namespaces, prefix, local)
        base = event.get("ilmd") if ilmd else event
        if not isinstance(base, dict):
            return False
        if inner:
            holders = [o for member in base.values() for o in nested_objects(member)]
        else:
            holders = [base]
        for holder in holders:
            for key in keys & holder.keys():
                if compare is not None:
                    matched = compare(holder[key])
                elif value == "true" and name.startswith("EXISTS_"):
                    matched = True
                else:
                    matched = scalar_text(holder[key]) in value.split("|")
                if matched:
                    return True
        return False

    # By identity: some of GS1's examples give two different events the same eventID.
    chosen = {
        id(event)
        for event, context in zip(everything, contexts, strict=True)
        if selects((event, context))
    }
    return check(gs1, everything, {name: value}, lambda e: id(e) in chosen)


EXAMPLE_NS = {
    "http://ns.example.com/epcis/",
    "http://ns.example.com/epcis",
    "http://ns.example.com/epcis#",
}


def test_extension_fields_by_namespace_or_curie(
    gs1: Api, everything: list[Event], contexts: list[Any]
) -> None:
    mine = "Example of a vendor/user extension"
    found = field_check(
        gs1,
        everything,
        contexts,
        "EQ_http://ns.example.com/epcis/#myField",
        mine,
        local="myField",
        namespaces=EXAMPLE_NS,
    )
    assert len(found) > 5
    # The namespace written without its separator, and the CURIE: the same events.
    assert ids(listed(gs1, {"EQ_http://ns.example.com/epcis#myField": mine})) == ids(found)
    assert ids(listed(gs1, {"EQ_example:myField": mine})) == ids(found)
    assert ids(listed(gs1, {"EXISTS_example:myField": "true"})) == ids(found)
    # Another value, another namespace, an undeclared prefix: nothing.
    assert listed(gs1, {"EQ_example:myField": "something else"}) == []
    assert listed(gs1, {"EQ_http://ns.example.org/other#myField": mine}) == []
    assert listed(gs1, {"EQ_undeclared:myField": mine}) == []
    field_check(gs1, everything, contexts, "EQ_ext1:float", "20", local="float", prefix="ext1")


def test_ilmd_and_inner_fields(gs1: Api, everything: list[Event], contexts: list[Any]) -> None:
    field_check(
        gs1,
        everything,
        contexts,
        "EXISTS_ILMD_http://ns.example.com/epcis/#batch",
        "true",
        local="batch",
        namespaces=EXAMPLE_NS,
        ilmd=True,
    )
    field_check(
        gs1,
        everything,
        contexts,
        "EQ_ILMD_example:batch",
        "XYZ|nothing",
        local="batch",
        prefix="example",
        ilmd=True,
    )
    field_check(
        gs1,
        everything,
        contexts,
        "EQ_INNER_ILMD_example2:sizeCode",
        "B-2",
        local="sizeCode",
        prefix="example2",
        ilmd=True,
        inner=True,
    )
    # Nested, so not at the ILMD's top level.
    assert listed(gs1, {"EQ_ILMD_example2:sizeCode": "B-2"}) == []
    field_check(
        gs1,
        everything,
        contexts,
        "EXISTS_INNER_ext2:array",
        "true",
        local="array",
        prefix="ext2",
        inner=True,
    )
    field_check(
        gs1,
        everything,
        contexts,
        "EQ_INNER_example:procedure",
        "A-1",
        local="procedure",
        prefix="example",
        inner=True,
    )
    for name, value in (
        ("EXISTS_example:myField", "false"),
        ("EXISTS_example:myField", "yes"),
        ("EQ_ILMD_example:", "x"),
        ("EQ_INNER_http://ns.example.com/#", "x"),
        ("EQ_ex ample:myField", "x"),
        ("EXISTS_ilmd", "true"),
    ):
        answer = gs1.get("/epcis/events", "maker", params={name: value})
        assert (answer.status_code, answer.json()["parameter"]) == (400, name), name


def as_number(value: Any) -> Decimal | None:
    """An extension value as the comparisons read it: a JSON number or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    text = str(value)
    return (
        Decimal(text)
        if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?", text)
        else None
    )


def as_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def test_comparisons_on_extension_fields(
    gs1: Api, everything: list[Event], contexts: list[Any]
) -> None:
    """GT_/GE_/LT_/LE_ on extension fields, against GS1's examples (whose values there are
    strings, as XML gives them): numbers compare as numbers ("10" < "9" as text), times as
    times, and a value of another form never matches."""

    def number_check(
        name: str, local: str, prefix: str, test: Callable[[Decimal], bool], inner: bool = False
    ) -> int:
        bound = name.split("=")[1]
        found = field_check(
            gs1,
            everything,
            contexts,
            name.split("=")[0],
            bound,
            local=local,
            prefix=prefix,
            inner=inner,
            compare=lambda v: (n := as_number(v)) is not None and test(n),
        )
        return len(found)

    assert number_check("GT_ext1:float=19.5", "float", "ext1", lambda n: n > Decimal("19.5")) > 0
    assert number_check("GE_ext1:int=10", "int", "ext1", lambda n: n >= 10) > 0
    assert listed(gs1, {"LT_ext1:int": "9"}) == []  # 10 is not < 9, though "10" < "9" as text
    assert listed(gs1, {"LT_ext1:int": "10.5"})  # and 10 < 10.5
    assert number_check("LE_INNER_ext2:int=13.0", "int", "ext2", lambda n: n <= 13, True) > 0
    assert listed(gs1, {"LE_ext2:int": "13.0"}) == []  # nested, so not at the top level
    at = datetime.fromisoformat("2013-06-08T14:58:56.591+00:00")
    found = field_check(
        gs1,
        everything,
        contexts,
        "GE_ext1:time",
        "2013-06-08T16:58:56.591+02:00",  # the same instant in another zone
        local="time",
        prefix="ext1",
        compare=lambda v: (t := as_time(v)) is not None and t >= at,
    )
    assert found
    assert listed(gs1, {"LT_ext1:time": "2013-06-08T14:58:56.591Z"}) == []
    # A number bound against a time value, a time bound against a number: no match, no error.
    assert listed(gs1, {"GT_ext1:time": "0"}) == []
    assert listed(gs1, {"GT_ext1:int": "2000-01-01T00:00:00Z"}) == []
    # The namespace form selects what the CURIE does.
    by_curie = listed(gs1, {"GE_ext1:int": "10"})
    assert by_curie
    assert ids(listed(gs1, {"GE_http://example.com/ext1/#int": "10"})) == ids(by_curie)


# -- 7. sensor parameters ---------------------------------------------------------------------


def reports(event: Event) -> list[dict[str, Any]]:
    return [r for e in event.get("sensorElementList", []) for r in e.get("sensorReport", [])]


def metadata(event: Event) -> list[dict[str, Any]]:
    return [
        e["sensorMetadata"] for e in event.get("sensorElementList", []) if "sensorMetadata" in e
    ]


def any_report(test: Callable[[dict[str, Any]], bool]) -> Callable[[Event], bool]:
    return lambda event: any(test(report) for report in reports(event))


def test_sensor_equalities(gs1: Api, everything: list[Event]) -> None:
    temperature = {"Temperature", "gs1:Temperature", "https://gs1.org/voc/Temperature"}
    check(
        gs1,
        everything,
        {"EQ_type": "Temperature"},
        any_report(lambda r: r.get("type") in temperature),
    )
    check(
        gs1,
        everything,
        {"EQ_type": "https://gs1.org/voc/Illuminance|example:Abc"},
        any_report(lambda r: r.get("type") in ("Illuminance", "gs1:Illuminance", "example:Abc")),
    )
    # Kept as captured (a URN here); found as given or as its Digital Link.
    device = {"urn:epc:id:giai:4000001.222", normalise_epc("urn:epc:id:giai:4000001.222")}
    check(
        gs1,
        everything,
        {"EQ_deviceID": "urn:epc:id:giai:4000001.222"},
        lambda e: any(x.get("deviceID") in device for x in reports(e) + metadata(e)),
    )
    check(
        gs1,
        everything,
        {"EQ_booleanValue": "true"},
        any_report(lambda r: r.get("booleanValue") is True),
    )
    check(
        gs1,
        everything,
        {"EQ_hexBinaryValue": "F0F0F0"},
        any_report(lambda r: str(r.get("hexBinaryValue", "")).upper() == "F0F0F0"),
    )
    check(
        gs1,
        everything,
        {"EQ_stringValue": "SomeString"},
        any_report(lambda r: r.get("stringValue") == "SomeString"),
    )
    substance = "https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N"
    if any(r.get("chemicalSubstance") == substance for e in everything for r in reports(e)):
        check(
            gs1,
            everything,
            {"EQ_chemicalSubstance": substance},
            any_report(lambda r: r.get("chemicalSubstance") == substance),
        )


def test_sensor_values_times_and_ranks(gs1: Api, everything: list[Event]) -> None:
    def number(r: dict[str, Any], key: str) -> Decimal | None:
        return Decimal(str(r[key])) if key in r else None

    check(
        gs1,
        everything,
        {"GE_value_CEL": "20"},
        any_report(lambda r: r.get("uom") == "CEL" and (number(r, "value") or -999) >= 20),
    )
    check(
        gs1,
        everything,
        {"LT_maxValue_CEL": "14"},
        any_report(
            lambda r: (
                r.get("uom") == "CEL"
                and number(r, "maxValue") is not None
                and number(r, "maxValue") < 14
            )
        ),  # type: ignore[operator]
    )
    # The unit matters: no conversion, so a bound in KEL matches no CEL reading.
    assert listed(gs1, {"GE_value_KEL": "-1000"}) == []
    check(
        gs1,
        everything,
        {"LT_percRank": "60"},
        any_report(lambda r: number(r, "percRank") is not None and number(r, "percRank") < 60),  # type: ignore[operator]
    )

    def at(r: dict[str, Any]) -> datetime | None:
        return datetime.fromisoformat(r["time"].replace("Z", "+00:00")) if "time" in r else None

    since = datetime.fromisoformat("2019-04-02T13:30:00+00:00")
    check(
        gs1,
        everything,
        {"GE_time": "2019-04-02T14:30:00+01:00"},
        any_report(lambda r: at(r) is not None and at(r) >= since),  # type: ignore[operator]
    )
    for name, value in (
        ("EQ_booleanValue", "yes"),
        ("EQ_hexBinaryValue", "f0f"),
        ("EQ_type", "Temperatur"),
        ("GE_value_CEL", "warm"),
        ("GE_value_cel", "1"),
        ("LT_time", "yesterday"),
        ("EQ_deviceID", "device-1"),
    ):
        answer = gs1.get("/epcis/events", "maker", params={name: value})
        assert (answer.status_code, answer.json()["parameter"]) == (400, name), name


def test_ordered_pages_of_an_item_and_of_a_pattern(gs1: Api, everything: list[Event]) -> None:
    """The indexed path (an exact EPC) and the JSON path (a pattern) page in order too."""
    position = {id(event): index for index, event in enumerate(everything)}
    fields = ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList")
    item = DL + "01/10614141073464/21/2017"
    for value, selects in (
        (item, lambda e: item in identifiers(e, *fields)),
        (
            "urn:epc:idpat:sgtin:0614141.107346.*",
            lambda e: any(
                i.startswith(DL + "01/10614141073464/21/") for i in identifiers(e, *fields)
            ),
        ),
    ):
        chosen = [e for e in everything if selects(e)]
        assert len(chosen) > 1, value
        expected = sorted(chosen, key=lambda e: (when(e, "eventTime"), position[id(e)]))
        params = {"MATCH_anyEPC": value, "orderBy": "eventTime", "orderDirection": "ASC"}
        assert ids(listed(gs1, {**params, "perPage": "1"})) == ids(expected), value
        limited = listed(gs1, {**params, "eventCountLimit": "2", "perPage": "1"})
        assert ids(limited) == ids(expected[:2]), value


def test_sensor_metadata_start_and_end_times(gs1: Api, everything: list[Event]) -> None:
    def times(event: Event, field: str) -> list[datetime]:
        return [
            datetime.fromisoformat(m[field].replace("Z", "+00:00"))
            for m in metadata(event)
            if field in m
        ]

    since = datetime.fromisoformat("2019-04-02T00:00:00+00:00")
    check(
        gs1,
        everything,
        {"GE_startTime": "2019-04-02T00:00:00Z"},
        lambda e: any(t >= since for t in times(e, "startTime")),
    )
    check(
        gs1,
        everything,
        {"LT_endTime": "2019-04-02T13:59:00Z"},
        lambda e: any(
            t < datetime.fromisoformat("2019-04-02T13:59:00+00:00") for t in times(e, "endTime")
        ),
    )


def test_transformation_ids(gs1: Api, everything: list[Event]) -> None:
    # Kept as captured (a URN in GS1's example); found as given and as its Digital Link.
    given = "urn:epc:id:gdti:0614141.12345.400"
    forms = {given, normalise_epc(given)}
    check(
        gs1,
        everything,
        {"EQ_transformationID": f"{given}|urn:example:no-such-transformation"},
        lambda e: e.get("transformationID") in forms,
    )

"""Named queries and subscriptions, the pure part: a query's JSON as parameters, where a webhook
may point (SSRF), the GS1-Signature and the position a delivery carries."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from epcis.query import QueryParameterError, parse_event_query
from epcis.subscriptions import (
    POSITION_KEY,
    DestRefused,
    address_allowed,
    check_dest,
    named_results,
    query_params,
    signature,
)


def test_a_query_in_json_becomes_the_parameters_the_events_query_reads() -> None:
    pairs = query_params(
        {
            "EQ_bizStep": ["shipping", "receiving"],
            "eventType": ["ObjectEvent"],
            "EXISTS_errorDeclaration": True,
            "GE_eventTime": "2026-01-01T00:00:00Z",
        }
    )
    assert pairs == [
        ("EQ_bizStep", "shipping|receiving"),
        ("eventType", "ObjectEvent"),
        ("EXISTS_errorDeclaration", "true"),
        ("GE_eventTime", "2026-01-01T00:00:00Z"),
    ]
    parsed = parse_event_query(pairs)
    assert parsed.biz_steps is not None
    assert len(parsed.biz_steps) == 2


@pytest.mark.parametrize(
    "query",
    [
        [],
        "EQ_bizStep=shipping",
        {"EQ_bizStep": []},
        {"EQ_bizStep": [1]},
        {"EQ_bizStep": {"any": "shipping"}},
        {"EQ_bizStep": None},
        {"EQ_bizStep": "shipping|receiving"},  # a list says "any of"; no hidden separators
        {"perPage": 10},
        {"nextPageToken": "12"},
    ],
)
def test_a_query_that_is_not_parameters_is_refused(query: object) -> None:
    with pytest.raises(QueryParameterError):
        query_params(query)


@pytest.mark.parametrize(
    ("address", "loopback", "allowed"),
    [
        ("93.184.215.14", False, True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False, True),
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("::1", True, True),
        ("10.1.2.3", True, False),  # loopback allowed is not private allowed
        ("172.16.0.1", False, False),
        ("192.168.1.1", False, False),
        ("169.254.169.254", False, False),
        ("100.64.0.1", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("fe80::1%eth0", False, False),
        ("fd00::1", False, False),
        ("::ffff:127.0.0.1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("2002:a9fe:a9fe::1", False, False),  # 6to4 around 169.254.169.254
        ("64:ff9b::a9fe:a9fe", False, False),  # NAT64 to 169.254.169.254
        ("64:ff9b::5db8:d70e", False, True),  # NAT64 to a public address
    ],
)
def test_only_public_addresses_are_reached(address: str, loopback: bool, allowed: bool) -> None:
    assert address_allowed(address, loopback) is allowed


def test_a_dest_is_https_to_a_public_host() -> None:
    assert check_dest("https://receiver.example.com/epcis?x=1", False) == (
        "https",
        "receiver.example.com",
        443,
    )
    assert check_dest("http://127.0.0.1:8123/hook", True) == ("http", "127.0.0.1", 8123)
    assert check_dest("http://localhost:8123/hook", True)[1] == "localhost"
    for dest in (
        "http://127.0.0.1:8123/hook",  # loopback not allowed
        "http://receiver.example.com/",
        "https://user@receiver.example.com/",
        "https://169.254.169.254/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://foo.localhost/",
        "https://intranet/",
        "https:///path",
        "https://receiver.example.com:99999/",
        "https://receiver.example.com/\r\nX: y",
        "javascript:alert(1)",
        "https://" + "a" * 3000 + ".com/",
        None,
        42,
    ):
        with pytest.raises(DestRefused):
            check_dest(dest, False)
    with pytest.raises(DestRefused):
        check_dest("http://10.0.0.1/", True)


def test_the_signature_is_the_hmac_of_the_body_as_sent() -> None:
    body = b'{"type":"EPCISQueryDocument"}'
    expected = hmac.new(b"token", body, hashlib.sha256).hexdigest()
    assert signature("token", body) == f"sha256={expected}"
    assert signature("token", body + b" ") != signature("token", body)
    assert signature("other", body) != signature("token", body)


def test_a_delivery_names_the_query_and_carries_its_position() -> None:
    document = {"epcisBody": {"queryResults": {"queryName": "SimpleEventQuery"}}}
    results = named_results(document, "shipped", "id-1", 41)["epcisBody"]["queryResults"]
    assert results == {"queryName": "shipped", "subscriptionID": "id-1", POSITION_KEY: "41"}

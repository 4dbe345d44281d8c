"""GS1 identifier normalisation: EPC URNs and Digital Link URIs to one canonical DL URI."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcis import identifiers
from epcis.identifiers import check_digit, normalise_epc, parse_lot, parse_sgtin

# Expectations of the reference implementation's own tests (tests/dl_normaliser_test.py of
# RalphTro/epcis-event-hash-generator) and of the conformance vectors.
EPC_URNS = [
    ("urn:epc:id:sgtin:4012345.011111.9876", "https://id.gs1.org/01/04012345111118/21/9876"),
    ("urn:epc:id:sgtin:4012345.011111.98%22", "https://id.gs1.org/01/04012345111118/21/98%22"),
    ("urn:epc:id:sgtin:415056789012.0.987654", "https://id.gs1.org/01/04150567890128/21/987654"),
    (
        "urn:epc:id:sgtin:0614141.812345.6789%2F%26%25%22!%3F()",
        "https://id.gs1.org/01/80614141123458/21/6789%2F%26%25%22%21%3F%28%29",
    ),
    ("urn:epc:id:sscc:4012345.3111111111", "https://id.gs1.org/00/340123451111111111"),
    ("urn:epc:id:sscc:4012345.0000000333", "https://id.gs1.org/00/040123450000003338"),
    ("urn:epc:id:sgln:4012345.00005.122", "https://id.gs1.org/414/4012345000054/254/122"),
    ("urn:epc:id:sgln:4012345.00005.0", "https://id.gs1.org/414/4012345000054"),
    ("urn:epc:id:grai:4012345.00022.334455", "https://id.gs1.org/8003/04012345000221334455"),
    ("urn:epc:id:giai:4012345.ABC345", "https://id.gs1.org/8004/4012345ABC345"),
    ("urn:epc:id:gsrn:4012345.0000006765", "https://id.gs1.org/8018/401234500000067657"),
    ("urn:epc:id:gsrnp:4012345.0000000007", "https://id.gs1.org/8017/401234500000000074"),
    ("urn:epc:id:gdti:4012345.00009.PO-4711", "https://id.gs1.org/253/4012345000092PO-4711"),
    ("urn:epc:id:gdti:987659999999..9", "https://id.gs1.org/253/98765999999929"),
    (
        "urn:epc:id:cpi:0614141.11111111111111-A%23%2F.1234",
        "https://id.gs1.org/8010/061414111111111111111-A%23%2F/8011/1234",
    ),
    ("urn:epc:id:sgcn:4012345.99999.44", "https://id.gs1.org/255/401234599999044"),
    ("urn:epc:id:ginc:0614141.xyz47%2F11", "https://id.gs1.org/401/0614141xyz47%2F11"),
    ("urn:epc:id:gsin:4012345.222333444", "https://id.gs1.org/402/40123452223334442"),
    (
        "urn:epc:id:itip:4012345.011111.01.02.987",
        "https://id.gs1.org/8006/040123451111180102/21/987",
    ),
    (
        "urn:epc:id:upui:1234567.098765.51qIgY)%3C%26Jp3*j7SDB",
        "https://id.gs1.org/01/01234567987651/235/51qIgY%29%3C%26Jp3%2Aj7SDB",
    ),
    ("urn:epc:id:pgln:4000001.00000", "https://id.gs1.org/417/4000001000005"),
    ("urn:epc:id:pgln:999999999999.", "https://id.gs1.org/417/9999999999994"),
    ("urn:epc:class:lgtin:4012345.012345.Lot987", "https://id.gs1.org/01/04012345123456/10/Lot987"),
    ("urn:epc:idpat:sgtin:4012345.012345.*", "https://id.gs1.org/01/04012345123456"),
    ("urn:epc:idpat:grai:4012345.99999.*", "https://id.gs1.org/8003/04012345999990"),
    ("urn:epc:idpat:gdti:4012345.11111.*", "https://id.gs1.org/253/4012345111118"),
    ("urn:epc:idpat:sgcn:4012345.22222.*", "https://id.gs1.org/255/4012345222227"),
    ("urn:epc:idpat:cpi:4012345.AB12.*", "https://id.gs1.org/8010/4012345AB12"),
    ("urn:epc:idpat:itip:4012345.012345.01.02.*", "https://id.gs1.org/8006/040123451234560102"),
    ("urn:epc:idpat:upui:4012345.012345.*", "https://id.gs1.org/01/04012345123456"),
    # 12-digit company prefix, TDS two-dot syntax (the reference cannot convert these).
    ("urn:epc:id:grai:123456789012..87", "https://id.gs1.org/8003/0123456789012887"),
]

DIGITAL_LINKS = [
    ("https://id.gs1.org/gtin/09780345418913", "https://id.gs1.org/01/09780345418913"),
    (
        "https://example.com/gtin/09780345418913/21/765tz?abc=211121",
        "https://id.gs1.org/01/09780345418913/21/765tz",
    ),
    (
        "https://id.gs1.de/01/04012345999990/21/XYZ-1234",
        "https://id.gs1.org/01/04012345999990/21/XYZ-1234",
    ),
    ("http://example.de/gtin-8/01/97803111", "https://id.gs1.org/01/00000097803111"),
    ("http://us-company-with-UPC.com/01/001122334455", "https://id.gs1.org/01/00001122334455"),
    (
        "http://us-company-with-UPC.com/01/001122334455/ser/GHB",
        "https://id.gs1.org/01/00001122334455/21/GHB",
    ),
    (
        "https://ean-13.de/gtin/4012345123456/ser/ABC524",
        "https://id.gs1.org/01/04012345123456/21/ABC524",
    ),
    ("http://id.gs1.org/gtin/9780345418913", "https://id.gs1.org/01/09780345418913"),
    (
        "https://id.gs1.org/gtin/9780345418913/cpv/344/lot/1223/ser/765tz",
        "https://id.gs1.org/01/09780345418913/21/765tz",
    ),
    ("https://id.gs1.org/gtin/9780345418913/cpv/344", "https://id.gs1.org/01/09780345418913"),
    (
        "http://example.de/01/040123451234/cpv/344/lot/ABD",
        "https://id.gs1.org/01/00040123451234/10/ABD",
    ),
    (
        "https://id.gs1.org/itip/123456789101100190/cpv/ABCD",
        "https://id.gs1.org/8006/123456789101100190",
    ),
    (
        "https://fashion-corp.com/8006/040123451234560102/22/AB/21/443322",
        "https://id.gs1.org/8006/040123451234560102/21/443322",
    ),
    (
        "https://fashion-corp.com/8006/040123451234560102/10/Lot-123/21/ser987",
        "https://id.gs1.org/8006/040123451234560102/21/ser987",
    ),
    (
        "https://gs1.test.example.org/01/9780345418913/10/1223",
        "https://id.gs1.org/01/09780345418913/10/1223",
    ),
    ("https://example.co.uk/party/4226350800008", "https://id.gs1.org/417/4226350800008"),
    ("https://id.example.com/253/4012345000054987", "https://id.gs1.org/253/4012345000054987"),
    ("https://id.gs1.org/414/4280000000002/254/12", "https://id.gs1.org/414/4280000000002/254/12"),
    (
        "https://id.gs1.org/8010/0628165987/8011/9876",
        "https://id.gs1.org/8010/0628165987/8011/9876",
    ),
    (
        "http://fashion.com/itip/040123451234560102/ser/ABC145",
        "https://id.gs1.org/8006/040123451234560102/21/ABC145",
    ),
    (" urn:epc:id:sgtin:4012345.011111.9876\n", "https://id.gs1.org/01/04012345111118/21/9876"),
]

NOT_GS1 = [
    "http://transaction.acme.com/po/12345678",
    "https://accreditation-council.example.org/certificate/ABC12345",
    "geo:50.947573340894124,6.922120147375441",
    "urn:epcglobal:cbv:bt:4012345000009:ASN1099",
    "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8",
    "http://example.org/123/4012345ABC987/456/4711",
    "http://id.gs1.org/99/9780345418913",
    "http://example.de/01/97803",
    "https://id.gs1.org/8006/04012345123456/22/ABCD/10/XYZ",
    "Hello World!",
    "",
    # Valid EPC URNs that have no Digital Link form.
    "urn:epc:id:gid:95100000.12345.400",
    "urn:epc:idpat:sgtin:4012345.*.*",
    "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
]

MALFORMED = [
    "urn:epc:id:sgtin:abc",
    "urn:epc:id:sgtin:4012345.01111.9876",  # 12 digits instead of 13
    "urn:epc:id:sgtin:4012345.011111.",  # empty serial
    "urn:epc:id:sgtin:4012345.011111.123456789012345678901",  # 21-character serial
    "urn:epc:id:sgtin:4012345.011111.9%ZZ",  # broken escape
    "urn:epc:id:sscc:4012345.311111111",
    "urn:epc:id:sgln:4012345.00005",
    "urn:epc:class:lgtin:4012345.012345",
    "urn:epc:id:foo:4012345.1",
    "urn:epc:class:foo:4012345.1",
    "urn:epc:idpat:sgtin:4012345.012345.9",
    "urn:epc:",
    "urn:epc:id:SGTIN:4012345.011111.9876",
]


@pytest.mark.parametrize(("urn", "link"), EPC_URNS)
def test_epc_urn_to_canonical_digital_link(urn: str, link: str) -> None:
    assert normalise_epc(urn) == link


@pytest.mark.parametrize(("written", "link"), DIGITAL_LINKS)
def test_digital_link_to_canonical_form(written: str, link: str) -> None:
    assert normalise_epc(written) == link


@pytest.mark.parametrize("value", [link for _, link in EPC_URNS + DIGITAL_LINKS])
def test_canonical_form_is_a_fixed_point(value: str) -> None:
    assert normalise_epc(value) == value


@pytest.mark.parametrize("value", NOT_GS1)
def test_other_strings_are_returned_unchanged(value: str) -> None:
    assert normalise_epc(value) is value


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_epc_urn_raises(value: str) -> None:
    with pytest.raises(ValueError, match="malformed EPC URN") as raised:
        normalise_epc(value)
    assert value.strip() in str(raised.value)


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("0401234512345", "6"),
        ("401234500011", "5"),
        ("34012345311111111", "5"),
        ("9780345418913"[:-1], "3"),
    ],
)
def test_check_digit(digits: str, expected: str) -> None:
    assert check_digit(digits) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("urn:epc:class:lgtin:4012345.012345.Lot987", ("04012345123456", "Lot987")),
        ("https://id.gs1.org/01/04012345123456/10/Lot987", ("04012345123456", "Lot987")),
        ("https://brand.example.com/gtin/4012345123456/lot/L%2F7?x=1", ("04012345123456", "L/7")),
        ("https://example.org/01/04012345123456/10/A%2FB", ("04012345123456", "A/B")),
        ("urn:epc:class:lgtin:4012345.012345.A%2FB", ("04012345123456", "A/B")),
    ],
)
def test_parse_lot(value: str, expected: tuple[str, str]) -> None:
    assert parse_lot(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "urn:epc:id:sgtin:4012345.011111.9876",
        "https://id.gs1.org/01/04012345123456",
        "https://id.gs1.org/01/04012345123456/10/L1/21/S1",  # an instance, not a lot
        "urn:epc:id:sscc:4012345.0000000333",
        "http://transaction.acme.com/po/12345678",
    ],
)
def test_parse_lot_none(value: str) -> None:
    assert parse_lot(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("urn:epc:id:sgtin:4012345.011111.9876", ("04012345111118", "9876")),
        ("urn:epc:id:sgtin:4012345.011111.98%22", ("04012345111118", '98"')),
        ("https://example.com/gtin/4012345111118/ser/9876", ("04012345111118", "9876")),
        ("https://id.gs1.org/01/04012345111118/10/L1/21/9876", ("04012345111118", "9876")),
        ("https://example.org/01/04012345111118/21/6789%2F%26", ("04012345111118", "6789/&")),
    ],
)
def test_parse_sgtin(value: str, expected: tuple[str, str]) -> None:
    assert parse_sgtin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "urn:epc:class:lgtin:4012345.012345.Lot987",
        "urn:epc:id:sscc:4012345.0000000333",
        "urn:epc:id:upui:4012345.012345.AB12",
        "https://id.gs1.org/414/4012345000054",
        "geo:50.9,6.9",
    ],
)
def test_parse_sgtin_none(value: str) -> None:
    assert parse_sgtin(value) is None


def test_parsers_reject_malformed_urns() -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_sgtin("urn:epc:id:sgtin:abc")
    with pytest.raises(ValueError, match="malformed"):
        parse_lot("urn:epc:class:lgtin:abc")


_SERIAL = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_.",
    min_size=1,
    max_size=20,
)


@given(
    gcp_length=st.integers(min_value=6, max_value=12),
    digits=st.text(alphabet="0123456789", min_size=13, max_size=13),
    serial=_SERIAL,
    host=st.sampled_from(["id.gs1.org", "brand.example.com", "qr.example.co.uk"]),
)
def test_sgtin_urn_and_any_host_link_meet(
    gcp_length: int, digits: str, serial: str, host: str
) -> None:
    gcp, item = digits[1 : gcp_length + 1], digits[0] + digits[gcp_length + 1 :]
    urn = f"urn:epc:id:sgtin:{gcp}.{item}.{serial}"
    gtin = digits + check_digit(digits)

    canonical = normalise_epc(urn)
    assert canonical == f"https://id.gs1.org/01/{gtin}/21/{serial}"
    assert normalise_epc(f"https://{host}/01/{gtin}/21/{serial}?linkType=gs1:pip") == canonical
    assert normalise_epc(canonical) == canonical
    assert parse_sgtin(urn) == (gtin, serial)


def _urlsplit_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    return parts.path if parts.scheme in ("http", "https") else None


@given(
    st.sampled_from(
        [identifiers.CANONICAL_DL_PREFIX, "https://id.gs1.org", "HTTPS://id.gs1.org/", "http://x/"]
    ),
    st.text(alphabet="01/21?#%\t\r\n x\x00é", max_size=30),
)
def test_a_dl_path_is_what_urlsplit_gives(prefix: str, rest: str) -> None:
    uri = prefix + rest
    assert identifiers._dl_path(uri) == _urlsplit_path(uri)


def test_parse_sgtin_reads_a_canonical_uri_as_it_reads_others() -> None:
    canonical = "https://id.gs1.org/01/09521234543213/21/A%2Fb"
    assert parse_sgtin(canonical) == ("09521234543213", "A/b")
    assert parse_sgtin(canonical + "?x=1") == ("09521234543213", "A/b")
    assert parse_sgtin("https://example.com/01/09521234543213/21/A%2Fb") == (
        "09521234543213",
        "A/b",
    )
    assert parse_lot("https://id.gs1.org/01/09521234543213/10/L1") == (
        "09521234543213",
        "L1",
    )

"""GS1 identifier normalisation: EPC URNs and GS1 Digital Link URIs to one canonical DL URI."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import unquote, urlsplit

__all__ = [
    "CANONICAL_DL_PREFIX",
    "canonical_gs1_uri",
    "check_digit",
    "check_digit_problem",
    "checked_epc",
    "epc_urn",
    "gln13",
    "gln_uri",
    "gs1_prefix",
    "gtin14",
    "normalise_epc",
    "parse_lot",
    "parse_sgtin",
]

CANONICAL_DL_PREFIX = "https://id.gs1.org/"

# --------------------------------------------------------------------------------------------
# EPC URN -> GS1 Digital Link
#
# Mirrors the conversion of the CBV 2.0 reference implementation
# (RalphTro/epcis-event-hash-generator, dl_normaliser.py) so that event hashes agree with it.
# Two deliberate corrections, both for inputs the reference cannot convert at all: GRAI and
# GRAI/GDTI/SGCN patterns with a 12-digit company prefix use the TDS two-dot syntax
# (`123456789012..87`), and a GDTI requires the dot between document type and serial.
# --------------------------------------------------------------------------------------------

# One character (or %-escape) of a TDS "GS3A3" component; escapes count as one character.
_C = (
    r"(?:%2[125-9A-Fa-f]|%3[0-9A-Fa-f]|%4[1-9A-Fa-f]|%5[0-9AaFf]|%6[1-9A-Fa-f]|%7[0-9Aa]"
    r"|[!')(*+,.0-9:;=A-Za-z_-])"
)
# One character of a CPI component reference (TDS restricts it to 0-9 A-Z - # /).
_P = r"(?:%2[3dfDF]|%3[0-9]|%4[1-9A-Fa-f]|%5[0-9Aa]|[0-9A-Z-])"
_GCP = r"(\d{6,12})"


def _rx(body: str) -> re.Pattern[str]:
    return re.compile(body, re.ASCII)


def _units(component: str) -> int:
    """Length in TDS characters: a %-escape is one character."""
    return len(component) - 2 * component.count("%")


# GS1 Digital Link table 7-1 characters that EPC URNs may carry unescaped.
_DL_ESCAPES = str.maketrans({c: f"%{ord(c):02X}" for c in "!()*+,:"})


def _percent_encode(component: str) -> str:
    return component.translate(_DL_ESCAPES)


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit (GTIN, GLN, SSCC, GSIN, GSRN, ...) of a key without it."""
    reverse = digits[::-1]
    total = 3 * sum(map(int, reverse[0::2])) + sum(map(int, reverse[1::2]))
    return str(-total % 10)


# Products and locations repeat across events while serials do not: cache the keys.
@lru_cache(maxsize=8192)
def _gtin(gcp: str, item_ref: str) -> str:
    """GTIN-14 from an EPC company prefix and indicator+item reference."""
    raw = item_ref[:1] + gcp + item_ref[1:]
    return raw + check_digit(raw)


@lru_cache(maxsize=8192)
def _key(gcp: str, ref: str) -> str:
    raw = gcp + ref
    return raw + check_digit(raw)


_Converter = Callable[["re.Match[str]"], "str | None"]


def _sgtin(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    return f"{CANONICAL_DL_PREFIX}01/{_gtin(gcp, ref)}/21/{_percent_encode(serial)}"


def _sscc(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if len(gcp) + len(ref) != 17:
        return None
    raw = ref[:1] + gcp + ref[1:]
    return f"{CANONICAL_DL_PREFIX}00/{raw}{check_digit(raw)}"


def _sgln(m: re.Match[str]) -> str | None:
    gcp, ref, extension = m.groups()
    if len(gcp) + len(ref) != 12:
        return None
    gln = _key(gcp, ref)
    if extension == "0":
        return f"{CANONICAL_DL_PREFIX}414/{gln}"
    return f"{CANONICAL_DL_PREFIX}414/{gln}/254/{_percent_encode(extension)}"


def _grai(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if len(gcp) + len(ref) != 12:
        return None
    return f"{CANONICAL_DL_PREFIX}8003/{_key('0' + gcp, ref)}{_percent_encode(serial)}"


def _giai(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if _units(ref) > 30 - len(gcp):
        return None
    return f"{CANONICAL_DL_PREFIX}8004/{gcp}{_percent_encode(ref)}"


def _gsrn(ai: str) -> _Converter:
    def convert(m: re.Match[str]) -> str | None:
        gcp, ref = m.groups()
        if len(gcp) + len(ref) != 17:
            return None
        return f"{CANONICAL_DL_PREFIX}{ai}/{_key(gcp, ref)}"

    return convert


def _gdti(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if len(gcp) + len(ref) != 12:
        return None
    return f"{CANONICAL_DL_PREFIX}253/{_key(gcp, ref)}{_percent_encode(serial)}"


def _cpi(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if _units(ref) > 30 - len(gcp):
        return None
    return f"{CANONICAL_DL_PREFIX}8010/{_percent_encode(gcp + ref)}/8011/{serial}"


def _sgcn(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if len(gcp) + len(ref) != 12:
        return None
    return f"{CANONICAL_DL_PREFIX}255/{_key(gcp, ref)}{serial}"


def _ginc(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if _units(ref) > 30 - len(gcp):
        return None
    return f"{CANONICAL_DL_PREFIX}401/{gcp}{_percent_encode(ref)}"


def _gsin(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if len(gcp) + len(ref) != 16:
        return None
    return f"{CANONICAL_DL_PREFIX}402/{_key(gcp, ref)}"


def _itip(m: re.Match[str]) -> str | None:
    gcp, ref, piece, total, serial = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    gtin = _gtin(gcp, ref)
    return f"{CANONICAL_DL_PREFIX}8006/{gtin}{piece}{total}/21/{_percent_encode(serial)}"


def _upui(m: re.Match[str]) -> str | None:
    gcp, ref, serial = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    return f"{CANONICAL_DL_PREFIX}01/{_gtin(gcp, ref)}/235/{_percent_encode(serial)}"


def _pgln(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if len(gcp) + len(ref) != 12:
        return None
    return f"{CANONICAL_DL_PREFIX}417/{_key(gcp, ref)}"


def _lgtin(m: re.Match[str]) -> str | None:
    gcp, ref, lot = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    return f"{CANONICAL_DL_PREFIX}01/{_gtin(gcp, ref)}/10/{_percent_encode(lot)}"


def _pat_gtin(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    return f"{CANONICAL_DL_PREFIX}01/{_gtin(gcp, ref)}"


def _pat_key12(ai: str, pad: str = "") -> _Converter:
    def convert(m: re.Match[str]) -> str | None:
        gcp, ref = m.groups()
        if len(gcp) + len(ref) != 12:
            return None
        return f"{CANONICAL_DL_PREFIX}{ai}/{_key(pad + gcp, ref)}"

    return convert


def _pat_cpi(m: re.Match[str]) -> str | None:
    gcp, ref = m.groups()
    if _units(ref) > 30 - len(gcp):
        return None
    return f"{CANONICAL_DL_PREFIX}8010/{_percent_encode(gcp + ref)}"


def _pat_itip(m: re.Match[str]) -> str | None:
    gcp, ref, piece, total = m.groups()
    if len(gcp) + len(ref) != 13:
        return None
    return f"{CANONICAL_DL_PREFIX}8006/{_gtin(gcp, ref)}{piece}{total}"


# (scheme prefix incl. trailing colon) -> (body pattern, converter)
_EPC_SCHEMES: dict[str, tuple[re.Pattern[str], _Converter]] = {
    "urn:epc:id:sgtin:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.({_C}{{1,20}})"), _sgtin),
    "urn:epc:id:sscc:": (_rx(rf"{_GCP}\.(\d{{5,11}})"), _sscc),
    "urn:epc:id:sgln:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.({_C}{{1,20}})"), _sgln),
    "urn:epc:id:grai:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.({_C}{{1,16}})"), _grai),
    "urn:epc:id:giai:": (_rx(rf"{_GCP}\.({_C}{{1,24}})"), _giai),
    "urn:epc:id:gsrn:": (_rx(rf"{_GCP}\.(\d{{5,11}})"), _gsrn("8018")),
    "urn:epc:id:gsrnp:": (_rx(rf"{_GCP}\.(\d{{5,11}})"), _gsrn("8017")),
    "urn:epc:id:gdti:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.({_C}{{0,20}})"), _gdti),
    "urn:epc:id:cpi:": (_rx(rf"{_GCP}\.({_P}{{1,24}})\.(\d{{1,12}})"), _cpi),
    "urn:epc:id:sgcn:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.(\d{{1,12}})"), _sgcn),
    "urn:epc:id:ginc:": (_rx(rf"{_GCP}\.({_C}{{1,24}})"), _ginc),
    "urn:epc:id:gsin:": (_rx(rf"{_GCP}\.(\d{{4,10}})"), _gsin),
    "urn:epc:id:itip:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.(\d{{2}})\.(\d{{2}})\.({_C}{{1,20}})"), _itip),
    "urn:epc:id:upui:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.({_C}{{1,28}})"), _upui),
    "urn:epc:id:pgln:": (_rx(rf"{_GCP}\.(\d{{0,6}})"), _pgln),
    "urn:epc:class:lgtin:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.({_C}{{1,20}})"), _lgtin),
    "urn:epc:idpat:sgtin:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.\*"), _pat_gtin),
    "urn:epc:idpat:grai:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.\*"), _pat_key12("8003", "0")),
    "urn:epc:idpat:gdti:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.\*"), _pat_key12("253")),
    "urn:epc:idpat:sgcn:": (_rx(rf"{_GCP}\.(\d{{0,6}})\.\*"), _pat_key12("255")),
    "urn:epc:idpat:cpi:": (_rx(rf"{_GCP}\.({_P}{{1,24}})\.\*"), _pat_cpi),
    "urn:epc:idpat:itip:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.(\d{{2}})\.(\d{{2}})\.\*"), _pat_itip),
    "urn:epc:idpat:upui:": (_rx(rf"{_GCP}\.(\d{{1,7}})\.\*"), _pat_gtin),
}

# Valid EPC URN forms that have no GS1 Digital Link equivalent: kept as they are.
_EPC_WITHOUT_DL = (
    "urn:epc:id:gid:",
    "urn:epc:id:usdod:",
    "urn:epc:id:adi:",
    "urn:epc:id:bic:",
    "urn:epc:id:imovn:",
    "urn:epc:tag:",
    "urn:epc:raw:",
    "urn:epc:pat:",
)
_EPC_SCHEME_HEAD = re.compile(r"urn:epc:(?:id|class|idpat):[a-z0-9]+:", re.ASCII)


def _epc_to_dl(uri: str) -> str | None:
    head = _EPC_SCHEME_HEAD.match(uri)
    if head is None:
        return None
    scheme = _EPC_SCHEMES.get(head.group())
    if scheme is None:
        return None
    pattern, convert = scheme
    m = pattern.fullmatch(uri, head.end())
    return convert(m) if m is not None else None


# --------------------------------------------------------------------------------------------
# GS1 Digital Link -> canonical GS1 Digital Link (reference semantics, step by step)
# --------------------------------------------------------------------------------------------

_DL_GATE = re.compile(
    r"https?:(//((([^/?#]*)@)?([^/?#:]*)(:([^/?#]*))?))?"
    r"((([^?#]*)(/(01|gtin|8006|itip|8010|cpid|414|gln|417|party|8017|gsrnp|8018|gsrn|255|gcn|00"
    r"|sscc|253|gdti|401|ginc|402|gsin|8003|grai|8004|giai)/)(\d{4}[^/]+)(/[^/]+/[^/]+)?/?"
    r"(\?([^?\n]*))?(#([^\n]*))?)|(/[A-Za-z_-]{10}$))",
    re.ASCII,
)
_DL_SHORT_NAMES = (
    ("/gtin/", "/01/"),
    ("/itip/", "/8006/"),
    ("/cpid/", "/8010/"),
    ("/gln/", "/414/"),
    ("/party/", "/417/"),
    ("/gsrnp/", "/8017/"),
    ("/gsrn/", "/8018/"),
    ("/gcn/", "/255/"),
    ("/sscc/", "/00/"),
    ("/gdti/", "/253/"),
    ("/ginc/", "/401/"),
    ("/gsin/", "/402/"),
    ("/grai/", "/8003/"),
    ("/giai/", "/8004/"),
    ("/cpv/", "/22/"),
    ("/lot/", "/10/"),
    ("/ser/", "/21/"),
)
_DL_CANONICAL_HOST = re.compile(
    r"https://id\.gs1\.org/(01|8006|8010|414|417|8017|8018|255|00|253|401|402|8003|8004)/\d{4}[^/]+",
    re.ASCII,
)
# Order matters: the reference re-roots the URI at the first of these it finds.
_DL_PRIMARY_KEYS = (
    "/00/",
    "/01/",
    "/253/",
    "/255/",
    "/401/",
    "/402/",
    "/414/",
    "/417/",
    "/8003/",
    "/8004/",
    "/8006/",
    "/8010/",
    "/8017/",
    "/8018/",
)
_X = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"  # DL-safe AI value characters
_XS = r"[\x2F\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"  # same, plus "/"
_GTIN14 = re.compile(r"https://id\.gs1\.org/01/\d{14}", re.ASCII)
_GTIN13 = re.compile(r"https://id\.gs1\.org/01/\d{13}", re.ASCII)
_GTIN12 = re.compile(r"https://id\.gs1\.org/01/\d{12}", re.ASCII)
_GTIN8 = re.compile(r"https://id\.gs1\.org/01/\d{8}", re.ASCII)
_CPV_LAST = re.compile(
    rf"https://id\.gs1\.org/(?:8006/\d{{18}}|01/\d{{14}})/22/{_X}{{0,20}}", re.ASCII
)
_CPV_INNER = re.compile(
    rf"https://id\.gs1\.org/(?:8006/\d{{18}}|01/\d{{14}})/22/{_XS}{{0,20}}", re.ASCII
)
_LOT_AND_SERIAL = re.compile(
    rf"https://id\.gs1\.org/(?:8006/\d{{18}}|01/\d{{14}})/10/{_X}{{0,20}}/21/{_X}{{0,20}}",
    re.ASCII,
)
_DL_VALID = re.compile(
    r"https://id\.gs1\.org/(?:"
    + "|".join(
        (
            r"00/\d{18}",
            rf"01/\d{{14}}/21/{_X}{{0,20}}",
            rf"01/\d{{14}}/10/{_X}{{0,20}}",
            r"01/\d{14}",
            rf"01/\d{{14}}/235/{_X}{{0,28}}",
            rf"253/\d{{13}}{_X}{{0,17}}",
            r"255/\d{13}\d{0,12}",
            rf"401/{_X}{{0,30}}",
            r"402/\d{17}",
            r"414/\d{13}",
            rf"414/\d{{13}}/254/{_X}{{0,20}}",
            r"417/\d{13}",
            rf"8003/\d{{14}}{_X}{{0,16}}",
            rf"8004/{_X}{{0,30}}",
            rf"8006/\d{{18}}/21/{_X}{{0,20}}",
            rf"8006/\d{{18}}/10/{_X}{{0,20}}",
            r"8006/\d{18}",
            r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}/8011/\d{0,12}",
            r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}",
            r"8017/\d{18}",
            r"8018/\d{18}",
        )
    )
    + ")",
    re.ASCII,
)


def _dl_to_canonical(uri: str) -> str | None:
    if _DL_GATE.match(uri) is None:
        return None
    query = uri.find("?")
    if query >= 0:
        uri = uri[:query]
    for short, ai in _DL_SHORT_NAMES:
        if short in uri:
            uri = uri.replace(short, ai)
    if _DL_CANONICAL_HOST.match(uri) is None:
        for key in _DL_PRIMARY_KEYS:
            at = uri.find(key)
            if at != -1:
                uri = "https://id.gs1.org" + uri[at:]
                break
    if _GTIN14.match(uri) is None:
        if _GTIN13.match(uri) is not None:
            uri = uri.replace("/01/", "/01/0")
        elif _GTIN12.match(uri) is not None:
            uri = uri.replace("/01/", "/01/00")
        elif _GTIN8.match(uri) is not None:
            uri = uri.replace("/01/", "/01/000000")
    # The consumer product variant (AI 22) is not part of the identity.
    if _CPV_LAST.fullmatch(uri) is not None:
        uri = uri[: uri.find("/22/")]
    elif _CPV_INNER.fullmatch(uri) is not None:
        cpv_at = uri.find("/22/")
        after = uri[cpv_at + 4 :]
        uri = uri[:cpv_at] + after[after.find("/") :]
    # Only the finest identification level counts: a serial makes the lot redundant.
    if _LOT_AND_SERIAL.fullmatch(uri) is not None:
        lot_at = uri.find("/10/")
        after = uri[lot_at + 4 :]
        uri = uri[:lot_at] + after[after.find("/") :]
    return uri if _DL_VALID.fullmatch(uri) is not None else None


@lru_cache(maxsize=16384)
def canonical_gs1_uri(value: str) -> str | None:
    """The canonical GS1 Digital Link URI for an EPC URN or DL URI, or None if not convertible.

    Never raises: this is the lenient form used by the event hash, where a value that is not a
    convertible GS1 identifier simply stays as it is.
    """
    if value.startswith("urn:epc:"):
        return _epc_to_dl(value)
    if value.startswith(("https:", "http:")) and "." in value:
        return _dl_to_canonical(value)
    return None


# --------------------------------------------------------------------------------------------
# Canonical GS1 Digital Link -> EPC URN (for answers that ask for URNs: GS1-EPC-Format)
#
# A Digital Link does not say where its GS1 Company Prefix ends; the EPC URN does. So the
# conversion needs the prefixes known to the repository (GS1 allocates them without overlap,
# and the registry refuses overlapping ones): a key under no known prefix has no URN here.
# --------------------------------------------------------------------------------------------

# Characters a DL value may carry raw that a TDS GS3A3 component must escape, and the DL
# escapes of characters the component may carry raw (undone, as TDS writes them).
_URN_ESCAPES = str.maketrans({c: f"%{ord(c):02X}" for c in '"<>?'})
_URN_UNESCAPES = tuple((f"%{ord(c):02X}", c) for c in "!()*+,:")


def _urn_component(dl_value: str) -> str:
    value = dl_value.translate(_URN_ESCAPES)
    for escaped, raw in _URN_UNESCAPES:
        value = value.replace(escaped, raw).replace(escaped.lower(), raw)
    return value


def _company(digits: str, prefixes: frozenset[str], lengths: tuple[int, ...]) -> int | None:
    """How many leading digits of `digits` are a known GS1 Company Prefix (longest first)."""
    for length in lengths:
        if length <= len(digits) and digits[:length] in prefixes:
            return length
    return None


def _urn_of_parts(
    ai: str, key: str, qualifiers: dict[str, str], prefixes: frozenset[str]
) -> str | None:
    lengths = tuple(sorted({len(p) for p in prefixes}, reverse=True))
    serial = qualifiers.get("21")
    if ai == "01" and len(key) == 14:
        n = _company(key[1:13], prefixes, lengths)
        if n is None:
            return None
        gcp, ref = key[1 : 1 + n], key[0] + key[1 + n : 13]
        if serial is not None:
            return f"urn:epc:id:sgtin:{gcp}.{ref}.{_urn_component(serial)}"
        if "10" in qualifiers:
            return f"urn:epc:class:lgtin:{gcp}.{ref}.{_urn_component(qualifiers['10'])}"
        if "235" in qualifiers:
            return f"urn:epc:id:upui:{gcp}.{ref}.{_urn_component(qualifiers['235'])}"
        return f"urn:epc:idpat:sgtin:{gcp}.{ref}.*"
    if ai == "8006" and len(key) == 18:
        n = _company(key[1:13], prefixes, lengths)
        if n is None:
            return None
        head = f"{key[1 : 1 + n]}.{key[0]}{key[1 + n : 13]}.{key[14:16]}.{key[16:18]}"
        if serial is not None:
            return f"urn:epc:id:itip:{head}.{_urn_component(serial)}"
        return f"urn:epc:idpat:itip:{head}.*"
    if ai == "00" and len(key) == 18:
        n = _company(key[1:17], prefixes, lengths)
        return None if n is None else f"urn:epc:id:sscc:{key[1 : 1 + n]}.{key[0]}{key[1 + n : 17]}"
    if ai in ("414", "417") and len(key) == 13:
        n = _company(key[:12], prefixes, lengths)
        if n is None:
            return None
        if ai == "417":
            return f"urn:epc:id:pgln:{key[:n]}.{key[n:12]}"
        extension = _urn_component(qualifiers.get("254", "0"))
        return f"urn:epc:id:sgln:{key[:n]}.{key[n:12]}.{extension}"
    if ai in ("8017", "8018") and len(key) == 18:
        n = _company(key[:17], prefixes, lengths)
        scheme = "gsrnp" if ai == "8017" else "gsrn"
        return None if n is None else f"urn:epc:id:{scheme}:{key[:n]}.{key[n:17]}"
    if ai == "402" and len(key) == 17:
        n = _company(key[:16], prefixes, lengths)
        return None if n is None else f"urn:epc:id:gsin:{key[:n]}.{key[n:16]}"
    if ai == "8003" and len(key) >= 14 and key[0] == "0":
        n = _company(key[1:13], prefixes, lengths)
        if n is None:
            return None
        head = f"{key[1 : 1 + n]}.{key[1 + n : 13]}"
        if len(key) == 14:
            return f"urn:epc:idpat:grai:{head}.*"
        return f"urn:epc:id:grai:{head}.{_urn_component(key[14:])}"
    if ai in ("253", "255") and len(key) >= 13:
        n = _company(key[:12], prefixes, lengths)
        if n is None:
            return None
        scheme = "gdti" if ai == "253" else "sgcn"
        if len(key) == 13:
            return f"urn:epc:idpat:{scheme}:{key[:n]}.{key[n:12]}.*"
        return f"urn:epc:id:{scheme}:{key[:n]}.{key[n:12]}.{_urn_component(key[13:])}"
    if ai in ("8004", "401"):
        n = _company(key, prefixes, lengths)
        scheme = "giai" if ai == "8004" else "ginc"
        if n is None or n == len(key):
            return None
        return f"urn:epc:id:{scheme}:{key[:n]}.{_urn_component(key[n:])}"
    if ai == "8010":
        n = _company(key, prefixes, lengths)
        if n is None or n == len(key):
            return None
        if "8011" in qualifiers:
            return f"urn:epc:id:cpi:{key[:n]}.{key[n:]}.{qualifiers['8011']}"
        return f"urn:epc:idpat:cpi:{key[:n]}.{key[n:]}.*"
    return None


# Answers repeat products, places and parties across events; a frozenset caches its hash.
@lru_cache(maxsize=16384)
def epc_urn(value: str, company_prefixes: frozenset[str]) -> str | None:
    """The EPC URN of a GS1 identifier (EPC URN or Digital Link on any host), or None when it
    has none here: not a GS1 key, no URN scheme for it, or its key under no prefix given.

    The inverse of the URN -> DL conversion above, checked by it: a URN is returned only if it
    converts back to the same canonical Digital Link. Pure; never raises.
    """
    candidate = value.strip()
    # A Digital Link with %-escapes in a value is not canonicalised from its DL form (the
    # reference's rule); one on id.gs1.org is taken as it is, and the round trip checks it.
    canonical = canonical_gs1_uri(candidate) or (
        candidate if candidate.startswith(CANONICAL_DL_PREFIX) else None
    )
    if canonical is None or not company_prefixes:
        return None
    segments = canonical[len(CANONICAL_DL_PREFIX) :].split("/")
    if len(segments) % 2:
        return None
    # Values stay in their escaped DL form: `_urn_component` rewrites escapes as TDS wants.
    qualifiers = {segments[i]: segments[i + 1] for i in range(2, len(segments), 2)}
    urn = _urn_of_parts(segments[0], segments[1], qualifiers, company_prefixes)
    if urn is None or canonical_gs1_uri(urn) != canonical:
        return None
    return urn


def _explain_bad_epc(uri: str) -> str | None:
    """Why an `urn:epc:` string is not acceptable, or None if it is a valid form kept as is."""
    if uri.startswith(_EPC_WITHOUT_DL):
        return None
    head = _EPC_SCHEME_HEAD.match(uri)
    if head is None:
        return "not of the form urn:epc:{id|class|idpat}:<scheme>:<components>"
    scheme = head.group()
    if scheme not in _EPC_SCHEMES:
        return f"unsupported EPC scheme {scheme[:-1]!r}"
    if scheme.startswith("urn:epc:idpat:") and "*" in uri:
        # A broader pattern (e.g. a company-wide `4012345.*.*`) has no single DL URI.
        return None
    return f"components do not match the TDS syntax of {scheme[:-1]!r}"


def normalise_epc(value: str) -> str:
    """The one canonical form of a GS1 identifier; other strings are returned unchanged.

    EPC URNs (instance, LGTIN class and the pattern forms the CBV reference converts) and GS1
    Digital Link URIs on any host become the canonical DL URI on https://id.gs1.org (GTIN
    padded to 14 digits, no query string, no CPV, no lot when a serial is present).
    Raises ValueError for a string claiming to be an EPC URN (`urn:epc:...`) that is malformed
    or of an unknown scheme. EPC URNs without a DL form (GID, USDoD, ADI, BIC, IMOVN, tag and
    raw URIs, wider patterns) and URIs that are not GS1 identifiers are returned unchanged.
    """
    candidate = value.strip()
    canonical = canonical_gs1_uri(candidate)
    if canonical is not None:
        return canonical
    if candidate.startswith("urn:epc:"):
        problem = _explain_bad_epc(candidate)
        if problem is not None:
            raise ValueError(f"malformed EPC URN {candidate!r}: {problem}")
    return value


# --------------------------------------------------------------------------------------------
# Lookup keys: (GTIN-14, lot) and (GTIN-14, serial)
# --------------------------------------------------------------------------------------------

_GTIN_DIGITS = re.compile(r"\d{14}|\d{13}|\d{12}|\d{8}", re.ASCII)
_AI_NAMES = {"gtin": "01", "lot": "10", "ser": "21", "cpv": "22"}


# Characters after which `urlsplit` would not give the text past the host as the path: it
# drops tab, CR and LF anywhere, and ends the path at a query or fragment.
_NOT_PLAIN_PATH = re.compile(r"[\t\r\n?#]")


def _dl_path(uri: str) -> str | None:
    """The path of an http(s) URI as `urlsplit` gives it; None for another scheme.

    A canonical DL URI (every one the model hands on) is cut, not split: on distinct URIs
    (every serial is new, so its cache misses) `urlsplit` took 2.9 µs a call, this 0.3.
    """
    if uri.startswith(CANONICAL_DL_PREFIX) and _NOT_PLAIN_PATH.search(uri) is None:
        return uri[len(CANONICAL_DL_PREFIX) - 1 :]
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    return parts.path


def _gtin_qualifiers(uri: str) -> tuple[str, dict[str, str]] | None:
    """GTIN-14 and key qualifiers (AI -> decoded value) of a DL URI rooted at AI 01."""
    path = _dl_path(uri)
    if path is None:
        return None
    segments = path.split("/")
    for index in range(len(segments) - 1):
        if _AI_NAMES.get(segments[index], segments[index]) != "01":
            continue
        if _GTIN_DIGITS.fullmatch(segments[index + 1]) is None:
            continue
        rest = segments[index + 2 :]
        if rest and rest[-1] == "":
            rest.pop()
        if len(rest) % 2:
            return None
        qualifiers = {
            _AI_NAMES.get(rest[i], rest[i]): unquote(rest[i + 1]) for i in range(0, len(rest), 2)
        }
        return segments[index + 1].zfill(14), qualifiers
    return None


def parse_lot(value: str) -> tuple[str, str] | None:
    """(GTIN-14, lot) of an LGTIN class URN or a DL URI `/01/{gtin}/10/{lot}`, else None.

    A URI that also carries a serial identifies an instance, not a lot, and gives None. The lot
    is returned percent-decoded (the AI 10 value itself). Raises ValueError like normalise_epc.
    """
    found = _gtin_qualifiers(normalise_epc(value))
    if found is None:
        return None
    gtin, qualifiers = found
    if "21" in qualifiers or not qualifiers.get("10"):
        return None
    return gtin, qualifiers["10"]


def parse_sgtin(value: str) -> tuple[str, str] | None:
    """(GTIN-14, serial) of an SGTIN URN or a DL URI `/01/{gtin}/21/{serial}`, else None.

    The serial is returned percent-decoded (the AI 21 value itself). Raises ValueError like
    normalise_epc.
    """
    found = _gtin_qualifiers(normalise_epc(value))
    if found is None:
        return None
    gtin, qualifiers = found
    serial = qualifiers.get("21")
    if not serial:
        return None
    return gtin, serial


def lot_uri(gtin: str, lot: str) -> str:
    """The one stored form of a lot: its canonical GS1 Digital Link URI."""
    return normalise_epc(f"https://id.gs1.org/01/{gtin}/10/{_percent_encode(lot)}")


def sgtin_uri(gtin: str, serial: str) -> str:
    """The one stored form of a serialised item: its canonical GS1 Digital Link URI."""
    return normalise_epc(f"https://id.gs1.org/01/{gtin}/21/{_percent_encode(serial)}")


# --------------------------------------------------------------------------------------------
# Check digits: a GS1 key that enters tracefin (capture, registration, queries) must be right.
# EPC URNs carry no check digit (it is computed when they become a DL); Digital Link URIs and
# bare keys carry one, and a wrong one names a key nobody was allocated.
# --------------------------------------------------------------------------------------------

# Primary key AI of a canonical DL -> (name, how many leading digits the check digit closes).
_CHECKED_KEYS: dict[str, tuple[str, int]] = {
    "00": ("SSCC", 18),
    "01": ("GTIN", 14),
    "253": ("GDTI", 13),
    "255": ("GCN", 13),
    "402": ("GSIN", 17),
    "414": ("GLN", 13),
    "417": ("party GLN", 13),
    "8003": ("GRAI", 14),
    "8006": ("ITIP", 14),  # its GTIN
    "8017": ("GSRN-P", 18),
    "8018": ("GSRN", 18),
}
_DL_KEY = re.compile(r"https://id\.gs1\.org/(\d+)/(\d+)", re.ASCII)


def _wrong_check_digit(name: str, digits: str) -> str | None:
    expected = check_digit(digits[:-1])
    if digits[-1] == expected:
        return None
    return f"{name} {digits} has a wrong check digit: {digits[-1]}, expected {expected}"


@lru_cache(maxsize=16384)
def check_digit_problem(canonical: str) -> str | None:
    """Why the key of a canonical DL URI has a wrong check digit; None if right or none."""
    match = _DL_KEY.match(canonical)
    if match is None:
        return None
    checked = _CHECKED_KEYS.get(match.group(1))
    if checked is None or len(match.group(2)) < checked[1]:
        return None
    name, length = checked
    return _wrong_check_digit(name, match.group(2)[:length])


def checked_epc(value: str) -> str:
    """normalise_epc, and a ValueError when the GS1 key it names has a wrong check digit."""
    canonical = normalise_epc(value)
    problem = check_digit_problem(canonical)
    if problem is not None:
        raise ValueError(problem)
    return canonical


_GTIN_LENGTHS = (8, 12, 13, 14)


def gtin14(value: str) -> str:
    """The GTIN-14 of a bare GTIN (8, 12, 13 or 14 digits) or a GTIN Digital Link URI.

    Raises ValueError when it is neither, or when its check digit is wrong.
    """
    candidate = value.strip()
    if candidate.isascii() and candidate.isdigit():
        if len(candidate) not in _GTIN_LENGTHS:
            raise ValueError(f"a GTIN has 8, 12, 13 or 14 digits, not {len(candidate)}")
        gtin = candidate.zfill(14)
    else:
        canonical = canonical_gs1_uri(candidate)
        match = re.fullmatch(r"https://id\.gs1\.org/01/(\d{14})", canonical or "")
        if match is None:
            raise ValueError(f"not a GTIN (digits, or https://id.gs1.org/01/...): {value!r}")
        gtin = match.group(1)
    problem = _wrong_check_digit("GTIN", gtin)
    if problem is not None:
        raise ValueError(problem)
    return gtin


def gln13(value: str) -> str:
    """The 13-digit GLN of a site given as 13 digits, a Digital Link or an sgln URN.

    A GLN extension (a sub-location) is refused: a site is a whole GLN. Raises ValueError when
    the value is none of these forms, or when its check digit is wrong (a URN's is computed).
    """
    candidate = value.strip()
    if candidate.isascii() and candidate.isdigit():
        if len(candidate) != 13:
            raise ValueError(f"a GLN has 13 digits, not {len(candidate)}")
        gln = candidate
    else:
        canonical = canonical_gs1_uri(candidate) or ""
        match = re.fullmatch(r"https://id\.gs1\.org/414/(\d{13})(/254/.*)?", canonical)
        if match is None:
            raise ValueError(
                "not a GLN (13 digits, https://id.gs1.org/414/... or urn:epc:id:sgln:...):"
                f" {value!r}"
            )
        if match.group(2):
            raise ValueError(f"{value!r} names a GLN extension (a sub-location), not a site")
        gln = match.group(1)
    problem = _wrong_check_digit("GLN", gln)
    if problem is not None:
        raise ValueError(problem)
    return gln


def gln_uri(gln: str) -> str:
    """The one stored form of a site's location: the canonical DL URI of its GLN."""
    return f"{CANONICAL_DL_PREFIX}414/{gln}"


def gs1_prefix(value: str) -> str:
    """A GS1 Company Prefix as registered: 4 to 12 digits; ValueError otherwise."""
    candidate = value.strip()
    if not (candidate.isascii() and candidate.isdigit() and 4 <= len(candidate) <= 12):
        raise ValueError(f"a GS1 Company Prefix has 4 to 12 digits, not {value!r}")
    return candidate

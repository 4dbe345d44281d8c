"""EPC pure-identity patterns (`urn:epc:idpat:`) as regular expressions over stored Digital Links.

Events are stored with every GS1 identifier as its canonical GS1 Digital Link
(`identifiers.normalise_epc`), so an EPCIS query's pattern (EPCIS 2.0 section 8.2.7.1.1, TDS
pattern URIs) is matched against that form: `urn:epc:idpat:sgtin:0614141.112345.*` becomes
"every `https://id.gs1.org/01/{that GTIN}/21/...`". A Digital Link does not mark where the
company prefix ends, so a company-wide pattern (`0614141.*.*`) compares the key's digits: it
matches the keys whose digits after the indicator start with the prefix, which a longer prefix
beginning with the same digits also does.

The expressions are built only from fixed text and checked digits (never from the caller's
text), for PostgreSQL's `~` operator, and passed as bind parameters.
"""

from __future__ import annotations

import re
from typing import Final

from epcis.identifiers import CANONICAL_DL_PREFIX, check_digit

__all__ = ["PATTERN_PREFIX", "pattern_regex"]

PATTERN_PREFIX: Final = "urn:epc:idpat:"
_HOST: Final = re.escape(CANONICAL_DL_PREFIX)
_DIGITS = re.compile(r"\d+", re.ASCII)


def _digits(n: int) -> str:
    return f"[0-9]{{{n}}}"


def _key_part(gcp: str, ref: str, key_length: int, pad: str = "") -> str:
    """The regex of a key of `key_length` digits (check digit included) of `pad`+gcp+ref, where
    gcp or ref may be `*` (any digits); refs with an indicator digit put it first (GTIN, SSCC)."""
    if gcp == "*":
        return _digits(key_length)
    if not (_DIGITS.fullmatch(gcp) and 6 <= len(gcp) <= 12):
        raise ValueError("the company prefix must be 6 to 12 digits or *")
    if ref == "*":
        return pad + gcp + _digits(key_length - len(pad) - len(gcp))
    if not (_DIGITS.fullmatch(ref) or ref == "") or len(pad + gcp + ref) != key_length - 1:
        raise ValueError(f"the reference must have {key_length - 1 - len(pad + gcp)} digits")
    raw = pad + gcp + ref
    return raw + check_digit(raw)


def _gtin_part(gcp: str, ref: str) -> str:
    """GTIN-14: the indicator digit (first of the item reference) comes before the prefix."""
    if gcp == "*":
        return _digits(14)
    if ref == "*":
        if not (_DIGITS.fullmatch(gcp) and 6 <= len(gcp) <= 12):
            raise ValueError("the company prefix must be 6 to 12 digits or *")
        return "[0-9]" + gcp + _digits(13 - len(gcp))
    if not (_DIGITS.fullmatch(gcp) and _DIGITS.fullmatch(ref) and len(gcp + ref) == 13):
        raise ValueError("company prefix and item reference must have 13 digits together")
    raw = ref[:1] + gcp + ref[1:]
    return raw + check_digit(raw)


def _wildcards_well_placed(parts: list[str], fixed: int) -> None:
    """TDS patterns: the first `fixed` components may be given, then only `*` follow, and once a
    component is `*` every later one is too."""
    seen_star = False
    for index, part in enumerate(parts):
        if part == "*":
            seen_star = True
        elif seen_star:
            raise ValueError("a component after a * must be * too")
        elif index >= fixed:
            raise ValueError("only the last component(s) may be given as *: the serial is *")
    if not seen_star:
        raise ValueError("a pattern ends in *")


def pattern_regex(uri: str, *, classes: bool = False) -> str:
    """The anchored regex of the Digital Links an EPC pattern matches; ValueError if it is not a
    pattern this repository understands. `classes`: match EPC classes (the GTIN's class
    `/01/{gtin}` and its lots `/01/{gtin}/10/{lot}`) instead of instances."""
    if not uri.startswith(PATTERN_PREFIX):
        raise ValueError("not an EPC pattern (urn:epc:idpat:)")
    scheme, sep, body = uri[len(PATTERN_PREFIX) :].partition(":")
    if not sep:
        raise ValueError("not of the form urn:epc:idpat:<scheme>:<components>")
    parts = body.split(".")
    if classes:
        if scheme != "sgtin" or len(parts) != 3:
            raise ValueError("an EPC class pattern is urn:epc:idpat:sgtin:<prefix>.<item>.*")
        _wildcards_well_placed(parts, 2)
        return f"^{_HOST}01/{_gtin_part(parts[0], parts[1])}(/10/.+)?$"
    layouts: dict[str, tuple[int, str]] = {
        # scheme: (components, regex template with {k} for the key), per GS1 Digital Link.
        "sgtin": (3, "01/{k}/21/.+"),
        "upui": (3, "01/{k}/235/.+"),
        "sscc": (2, "00/{k}"),
        "sgln": (3, "414/{k}(/254/.+)?"),
        "grai": (3, "8003/{k}.+"),
        "gdti": (3, "253/{k}.*"),
        "sgcn": (3, "255/{k}[0-9]+"),
        "giai": (2, "8004/{k}.+"),
        "gsrn": (2, "8018/{k}"),
        "gsrnp": (2, "8017/{k}"),
        "pgln": (2, "417/{k}"),
    }
    if scheme not in layouts:
        raise ValueError(
            f"EPC patterns of scheme {scheme[:20]!r} are not supported"
            f" (only {', '.join(sorted(layouts))})"
        )
    count, template = layouts[scheme]
    if len(parts) != count:
        raise ValueError(f"an {scheme} pattern has {count} components")
    if scheme in ("sgtin", "upui"):
        _wildcards_well_placed(parts, 2)
        key = _gtin_part(parts[0], parts[1])
    elif scheme == "sscc":
        _wildcards_well_placed(parts, 1)
        # SSCC: extension digit, prefix, serial reference, check digit (18 digits).
        key = _digits(18) if parts[0] == "*" else _gtin_like_18(parts[0])
    elif scheme == "giai":
        _wildcards_well_placed(parts, 1)
        key = "" if parts[0] == "*" else _prefix(parts[0])
    elif scheme in ("gsrn", "gsrnp"):
        _wildcards_well_placed(parts, 1)
        key = _key_part(parts[0], "*", 18)
    elif scheme == "pgln":
        _wildcards_well_placed(parts, 1)
        key = _key_part(parts[0], "*", 13)
    else:  # sgln, grai, gdti, sgcn: prefix.reference.*, the key 13 digits (GRAI: 0 + 13)
        _wildcards_well_placed(parts, 2)
        pad = "0" if scheme == "grai" else ""
        key = _key_part(parts[0], parts[1], 13 + len(pad), pad)
        if scheme == "grai" and parts[0] == "*":
            key = "0" + _digits(13)
    return f"^{_HOST}{template.format(k=key)}$"


def _prefix(gcp: str) -> str:
    if not (_DIGITS.fullmatch(gcp) and 6 <= len(gcp) <= 12):
        raise ValueError("the company prefix must be 6 to 12 digits or *")
    return gcp


def _gtin_like_18(gcp: str) -> str:
    return "[0-9]" + _prefix(gcp) + _digits(17 - len(gcp))

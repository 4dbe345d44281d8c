"""The EPC fields of an event and `GS1-EPC-Format`: which values are EPCs, and their answered form.

Pure: no I/O. Only the identifiers of the EPC fields are ever rewritten (by capture into the
stored canonical form, by answers into the form a client asks for); every other value of an
event, URLs included (sensor `rawData`, `dataProcessingMethod`, `deviceMetadata`, `bizRules`,
`bizTransaction`, ...), is left exactly as it was captured, whatever it looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Any, Final

from epcis.identifiers import canonical_gs1_uri, epc_urn

__all__ = [
    "DEFAULT_EPC_FORMAT",
    "EPC_FORMAT_HEADER",
    "EPCFormat",
    "answered_format",
    "epc_format",
    "map_epc_fields",
    "translate_event",
]

EPC_FORMAT_HEADER: Final = "GS1-EPC-Format"


class EPCFormat(StrEnum):
    """The values of the REST binding's `GS1-EPC-Format` header (openapi.json)."""

    NO_PREFERENCE = "No_Preference"
    ALWAYS_GS1_DIGITAL_LINK = "Always_GS1_Digital_Link"
    ALWAYS_EPC_URN = "Always_EPC_URN"
    NEVER_TRANSLATES = "Never_Translates"


# "If absent the default value is `Always_GS1_Digital_Link`" (the REST binding's OpenAPI).
DEFAULT_EPC_FORMAT: Final = EPCFormat.ALWAYS_GS1_DIGITAL_LINK

# The EPC fields (EPCIS 2.0 JSON binding names): lists of instance identifiers, the parent,
# the classes of the quantity lists, the places' ids and the parties of source/destination.
EPC_LISTS: Final = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
EPC_SINGLE: Final = ("parentID",)
QUANTITY_LISTS: Final = (
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputQuantityList",
)
PLACES: Final = ("readPoint", "bizLocation")
PARTY_LISTS: Final = (("sourceList", "source"), ("destinationList", "destination"))


def epc_format(header: str | None) -> EPCFormat:
    """The format a request asks for (the default without the header); ValueError otherwise."""
    if header is None:
        return DEFAULT_EPC_FORMAT
    try:
        return EPCFormat(header.strip())
    except ValueError:
        allowed = ", ".join(member.value for member in EPCFormat)
        raise ValueError(f"{EPC_FORMAT_HEADER} is one of {allowed}, not {header[:40]!r}") from None


def answered_format(asked: EPCFormat) -> EPCFormat:
    """The format an answer is given in: `No_Preference` is answered as captured."""
    return EPCFormat.NEVER_TRANSLATES if asked is EPCFormat.NO_PREFERENCE else asked


def map_epc_fields(event: Mapping[str, Any], convert: Callable[[str], str]) -> dict[str, Any]:
    """A copy of `event` with `convert` applied to every string of its EPC fields.

    Only the containers on the way to an EPC field are copied; everything else is shared with
    `event`, which is never modified.
    """
    result = dict(event)
    for key in EPC_LISTS:
        values = result.get(key)
        if isinstance(values, list):
            result[key] = [convert(v) if isinstance(v, str) else v for v in values]
    for key in EPC_SINGLE:
        value = result.get(key)
        if isinstance(value, str):
            result[key] = convert(value)
    for key in QUANTITY_LISTS:
        if key in result:
            result[key] = _map_members(result[key], "epcClass", convert)
    for key in PLACES:
        place = result.get(key)
        if isinstance(place, str):
            result[key] = convert(place)
        elif isinstance(place, dict) and isinstance(place.get("id"), str):
            result[key] = {**place, "id": convert(place["id"])}
    for list_key, item_key in PARTY_LISTS:
        if list_key in result:
            result[list_key] = _map_members(result[list_key], item_key, convert)
    return result


def _map_members(values: Any, key: str, convert: Callable[[str], str]) -> Any:
    if not isinstance(values, list):
        return values
    return [
        {**member, key: convert(member[key])}
        if isinstance(member, dict) and isinstance(member.get(key), str)
        else member
        for member in values
    ]


def translate_event(
    event: Mapping[str, Any], answered: EPCFormat, company_prefixes: Collection[str] = ()
) -> dict[str, Any]:
    """The event with its EPC fields in the `answered` format (see `answered_format`).

    `Never_Translates`: as given. `Always_GS1_Digital_Link`: every GS1 key as its canonical
    Digital Link on https://id.gs1.org. `Always_EPC_URN`: every GS1 key as its EPC URN, where
    one is known (`company_prefixes` tells where a Digital Link's company prefix ends; a key
    under none of them, or of no EPC scheme, is left as given). Values that are no GS1 key
    (other URIs, EPC URNs without a Digital Link) are left as given in every format.
    """
    if answered in (EPCFormat.NEVER_TRANSLATES, EPCFormat.NO_PREFERENCE):
        return dict(event)
    if answered is EPCFormat.ALWAYS_GS1_DIGITAL_LINK:
        return map_epc_fields(event, _as_digital_link)
    prefixes = frozenset(company_prefixes)

    def as_urn(value: str) -> str:
        if value.startswith("urn:epc:"):
            return value  # already a URN: kept as captured
        return epc_urn(value, prefixes) or value

    return map_epc_fields(event, as_urn)


def _as_digital_link(value: str) -> str:
    return canonical_gs1_uri(value.strip()) or value

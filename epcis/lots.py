"""Which lot an event is about, beyond its quantity lists: commissioning ILMD. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from epcis.identifiers import lot_uri, parse_sgtin


def ilmd_value(event: Mapping[str, Any], name: str) -> object:
    """An ILMD field by local name, whatever its namespace prefix (`cbvmda:lotNumber`, …)."""
    ilmd = event.get("ilmd")
    if not isinstance(ilmd, Mapping):
        return None
    for key, value in ilmd.items():
        if key == name or key.endswith(":" + name):
            return value
    return None


def commissioned_lot(
    biz_step: str | None, action: str | None, epcs: Sequence[str], event: Mapping[str, Any]
) -> str | None:
    """The lot an ObjectEvent ADD commissioning of items of one GTIN creates (ILMD lotNumber)."""
    if biz_step != "commissioning" or action != "ADD" or not epcs:
        return None
    lot = ilmd_value(event, "lotNumber")
    if not isinstance(lot, str) or not lot:
        return None
    gtins = {parsed[0] for epc in epcs if (parsed := parse_sgtin(epc)) is not None}
    if len(gtins) != 1:
        return None
    return lot_uri(gtins.pop(), lot)

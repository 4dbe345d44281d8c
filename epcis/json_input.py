"""The one guarded reader for JSON from outside (API bodies, files the CLI reads): orjson,
with a size and a nesting limit, so hostile input is refused with a code, never a crash.

Why: importing web3 (through py_ecc) raises Python's recursion limit to 100 000, and the
standard `json` module then overflows the C stack on deeply nested input (a segfault, not a
RecursionError). orjson refuses past 1 024 levels; this reader refuses past `MAX_DEPTH`, which
no tracefin document comes near (an EPCIS event nests a handful of levels).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 64


class JsonRefused(ValueError):
    """Input that is not JSON tracefin reads; `code` is stable (`invalid_json`,
    `json_too_deep`, `json_too_large`), `detail` one sentence."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def loads_guarded(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Decode `data`, refusing more than `max_bytes` or more than `max_depth` nested levels."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise JsonRefused("json_too_large", f"JSON is limited to {max_bytes} bytes")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc).lower():  # orjson's own nesting limit
            detail = f"JSON nests deeper than {max_depth} levels"
            raise JsonRefused("json_too_deep", detail) from None
        raise JsonRefused("invalid_json", f"not JSON: {exc}") from None
    if nesting_exceeds(value, max_depth):
        raise JsonRefused("json_too_deep", f"JSON nests deeper than {max_depth} levels")
    return value


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests arrays and objects more than `limit` levels (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False

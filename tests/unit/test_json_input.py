"""The guarded JSON reader (pure): size and nesting limits, refused with a code, never a crash."""

from __future__ import annotations

import pytest

from epcis.json_input import MAX_DEPTH, JsonRefused, loads_guarded, nesting_exceeds


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_documents_within_the_limits_read_as_json() -> None:
    assert loads_guarded(b'{"a": [1, {"b": null}]}', max_bytes=100) == {"a": [1, {"b": None}]}
    assert loads_guarded(nested(MAX_DEPTH), max_bytes=1000) is not None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (nested(MAX_DEPTH + 1), "json_too_deep"),
        (b"[" * 80_000, "json_too_deep"),  # what segfaulted the standard parser after web3
        (b'{"a": ' * 2_000 + b"1" + b"}" * 2_000, "json_too_deep"),
        (b"[1,", "invalid_json"),
        (b"x" * 101, "json_too_large"),
    ],
)
def test_hostile_input_is_refused_with_its_code(data: bytes, code: str) -> None:
    with pytest.raises(JsonRefused) as refused:
        loads_guarded(data, max_bytes=100 if code == "json_too_large" else 1 << 20)
    assert refused.value.code == code


def test_nesting_counts_arrays_and_objects_not_scalars() -> None:
    assert not nesting_exceeds("text", 0)
    assert not nesting_exceeds({"a": [1]}, 2)
    assert nesting_exceeds({"a": [[1]]}, 2)

"""Journal seals: stable across jsonb's reordering, different for any change, key-bound."""

from __future__ import annotations

from finance.journal_seal import DEVELOPMENT_KEY, intact, seal

ENTRY = (
    "bank",
    "decision_approve",
    "application:7",
    {"approved_minor": 5, "reasons": []},
    [b"\x01" * 32],
    None,
)


def test_a_sealed_entry_is_intact_whatever_the_key_order_of_its_detail() -> None:
    stored = seal(DEVELOPMENT_KEY, *ENTRY)
    reordered = (*ENTRY[:3], {"reasons": [], "approved_minor": 5}, *ENTRY[4:])
    assert intact(DEVELOPMENT_KEY, stored, reordered)


def test_any_changed_field_breaks_the_seal() -> None:
    stored = seal(DEVELOPMENT_KEY, *ENTRY)
    changes = [
        ("other", *ENTRY[1:]),
        (*ENTRY[:2], "application:8", *ENTRY[3:]),
        (*ENTRY[:3], {"approved_minor": 6, "reasons": []}, *ENTRY[4:]),
        (*ENTRY[:4], [b"\x02" * 32], None),
        (*ENTRY[:5], 0),
    ]
    assert [intact(DEVELOPMENT_KEY, stored, changed) for changed in changes] == [False] * 5


def test_another_key_or_no_seal_is_not_intact() -> None:
    assert not intact(b"another key", seal(DEVELOPMENT_KEY, *ENTRY), ENTRY)
    assert not intact(DEVELOPMENT_KEY, None, ENTRY)

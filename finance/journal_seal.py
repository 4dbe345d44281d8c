"""The seal of a finance journal entry: an HMAC under a key that the database never holds. Pure.

Decisions are checked against the journal entry written with them; the seal makes that entry
one that only a holder of the key (the tracefin processes, from settings) can write, so editing a
decision together with its journal entry no longer goes unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

# Outside production only (settings refuse it there): tests and the demo need no configuration.
DEVELOPMENT_KEY = b"tracefin development journal key, not a secret"


def seal(
    key: bytes,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any],
    evidence: Sequence[bytes],
    log_index: int | None,
) -> bytes:
    """HMAC-SHA256 over the entry's fields in one canonical JSON form (sorted keys), so the
    detail sealed on writing and the detail read back from jsonb give the same bytes."""
    message = orjson.dumps(
        [actor, action, subject, detail, [item.hex() for item in evidence], log_index],
        option=orjson.OPT_SORT_KEYS,
    )
    return hmac.new(key, message, hashlib.sha256).digest()


def intact(key: bytes, stored_seal: bytes | None, entry: Sequence[Any]) -> bool:
    """True when `stored_seal` is the seal of `entry` (actor, action, subject, detail, evidence,
    log index) under `key`; compared in constant time."""
    if stored_seal is None:
        return False
    return hmac.compare_digest(stored_seal, seal(key, *entry))

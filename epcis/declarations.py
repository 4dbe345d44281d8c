"""EPCIS error declarations: what an event's `errorDeclaration` says, and the digest that seals it.

Pure: capture reads the declaration off a parsed event; the store keeps it with who declared it
and when it was received, under a digest any reader can recompute from the stored row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from epcis.jcs import canonical_json
from epcis.model import EPCISEvent, ErrorDeclaration


@dataclass(frozen=True)
class Declaration:
    """An event's errorDeclaration: when the declarer says the event became erroneous, why,
    which events correct it, and the object as captured (extensions included), as JSON text."""

    declaration_time: datetime  # UTC
    reason: str | None  # the CBV word (did_not_occur, incorrect_data) or the URI as given
    corrective_event_ids: tuple[str, ...]
    document: str

    def content_digest(self) -> bytes:
        """SHA-256 of the JCS form of the declaration as captured: two submissions declare the
        same thing exactly when these are equal."""
        return hashlib.sha256(canonical_json(orjson.loads(self.document))).digest()


def declaration_of(event: EPCISEvent, raw: Mapping[str, Any]) -> Declaration | None:
    """The declaration an event carries (None without one); `raw` is the JSON it was parsed
    from, whose `errorDeclaration` object is kept as captured."""
    declared = event.error_declaration
    if declared is None:
        return None
    return Declaration(
        declaration_time=declared.declaration_time.astimezone(UTC),
        reason=declared.reason,
        corrective_event_ids=tuple(declared.corrective_event_ids),
        document=orjson.dumps(raw["errorDeclaration"]).decode(),
    )


def implied_columns(
    declaration: Mapping[str, Any],
) -> tuple[datetime, str | None, tuple[str, ...]] | None:
    """(declaration time in UTC, reason, corrective event IDs) as a stored declaration object
    says them: what the columns beside it must hold; None if it is no valid declaration."""
    try:
        parsed = ErrorDeclaration.model_validate(dict(declaration))
    except ValidationError:
        return None
    return (
        parsed.declaration_time.astimezone(UTC),
        parsed.reason,
        tuple(parsed.corrective_event_ids),
    )


@dataclass(frozen=True)
class DeclarationRecord:
    """A recorded declaration: of which event, by whom, received when, and what it says."""

    event_hash: bytes
    org: str  # slug
    device_id: str | None
    api_user: str | None
    channel: str
    received_at: datetime
    declaration: Mapping[str, Any]  # the errorDeclaration object as captured

    def digest(self) -> bytes:
        """SHA-256 over the JCS form of every field: the record's identity in the journal and
        the audit, so an edit of any of them (who, when, what) shows."""
        return hashlib.sha256(
            canonical_json(
                {
                    "event_hash": self.event_hash.hex(),
                    "org": self.org,
                    "device_id": self.device_id,
                    "api_user": self.api_user,
                    "channel": self.channel,
                    "received_at": self.received_at.astimezone(UTC).isoformat(),
                    "declaration": dict(self.declaration),
                }
            )
        ).digest()

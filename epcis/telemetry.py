"""Telemetry payloads (sensor time series): parsing and validation, no I/O."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from epcis.capture import WHOLE_PAYLOAD, DeviceKey, RefusedItem, decode_json
from epcis.jcs import canonical_json
from epcis.rejects import EventRejected, RejectCode
from epcis.signatures import parse_signature, recover_address, sign_digest

_METRIC = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
_MAX_READINGS = 256


@dataclass(frozen=True)
class Reading:
    time: datetime
    metric: str
    value: float


@dataclass
class TelemetryResult:
    readings: list[Reading] = field(default_factory=list)
    refused: list[RefusedItem] = field(default_factory=list)


def parse_telemetry(
    payload: bytes,
    *,
    now: datetime,
    max_payload_bytes: int,
    max_future_skew: timedelta,
    device: DeviceKey | None = None,
) -> TelemetryResult:
    """`{"time": RFC 3339, "readings": {name: number}}` or a list of such, sample by sample.

    A `device` registered with an address sends them signed instead:
    `{"telemetry": <sample or list>, "sig": "0x…"}` (see `telemetry_digest`).
    """
    result = TelemetryResult()
    try:
        if device is not None:
            device.refuse_if_revoked(now)
        decoded = decode_json(payload, max_payload_bytes=max_payload_bytes)
        if device is not None and device.address is not None:
            decoded = _signed_telemetry(decoded, device, now)
        samples = decoded if isinstance(decoded, list) else [decoded]
        if not samples:
            raise EventRejected(RejectCode.INVALID_TELEMETRY, "payload is an empty array")
    except EventRejected as exc:
        result.refused.append(RefusedItem(WHOLE_PAYLOAD, exc.code, exc.detail))
        return result
    for index, sample in enumerate(samples):
        try:
            result.readings.extend(_parse_sample(sample, now, max_future_skew))
        except EventRejected as exc:
            result.refused.append(RefusedItem(index, exc.code, exc.detail))
    return result


def telemetry_digest(telemetry: object) -> bytes:
    """What a device signs (EIP-191): SHA-256 of the RFC 8785 canonical JSON of the `telemetry`
    value as sent; a list of samples is signed as a whole."""
    return hashlib.sha256(canonical_json(telemetry)).digest()


def _signed_telemetry(decoded: object, device: DeviceKey, now: datetime) -> object:
    """The `telemetry` of a signed envelope, once its `sig` is the device's."""
    if not isinstance(decoded, dict) or "telemetry" not in decoded or "sig" not in decoded:
        raise EventRejected(
            RejectCode.SIGNATURE_MISSING,
            f"device {device.org_slug}/{device.device_id} must sign its telemetry:"
            ' {"telemetry": <sample or list>, "sig": "0x…"}',
        )
    signature = parse_signature(decoded["sig"])
    telemetry = decoded["telemetry"]
    device.check_signer(recover_address(telemetry_digest(telemetry), signature), now)
    return telemetry


def _parse_sample(sample: object, now: datetime, max_future_skew: timedelta) -> list[Reading]:
    if not isinstance(sample, dict):
        raise EventRejected(RejectCode.INVALID_TELEMETRY, "a sample must be a JSON object")
    time = _parse_time(sample.get("time"), now, max_future_skew)
    readings = sample.get("readings")
    if not isinstance(readings, dict) or not readings:
        raise EventRejected(
            RejectCode.INVALID_TELEMETRY, "readings must be a non-empty object of numbers"
        )
    if len(readings) > _MAX_READINGS:
        raise EventRejected(
            RejectCode.INVALID_TELEMETRY, f"at most {_MAX_READINGS} readings per sample"
        )
    parsed = []
    for metric, value in readings.items():
        if not _METRIC.match(metric):
            raise EventRejected(RejectCode.INVALID_TELEMETRY, f"bad metric name {metric!r}")
        # bool is an int subclass: true/false are not measurements.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventRejected(RejectCode.INVALID_TELEMETRY, f"readings.{metric} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise EventRejected(RejectCode.INVALID_TELEMETRY, f"readings.{metric} is not finite")
        parsed.append(Reading(time, metric, number))
    return parsed


def _parse_time(value: object, now: datetime, max_future_skew: timedelta) -> datetime:
    if not isinstance(value, str):
        raise EventRejected(RejectCode.INVALID_TELEMETRY, "time must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventRejected(
            RejectCode.INVALID_TELEMETRY, f"time {value!r} is not RFC 3339"
        ) from None
    if parsed.tzinfo is None:
        raise EventRejected(RejectCode.NAIVE_EVENT_TIME, f"time {value!r} has no time zone")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before the first datetime
        raise EventRejected(
            RejectCode.INVALID_TELEMETRY, f"time {value!r} is out of range"
        ) from None
    if parsed - now > max_future_skew:
        raise EventRejected(
            RejectCode.EVENT_TIME_IN_FUTURE, f"time {value!r} is more than {max_future_skew} ahead"
        )
    return parsed


def sign_telemetry(private_key: bytes, telemetry: object) -> dict[str, object]:
    """The signed envelope a device with a key sends: what the simulator and tests publish."""
    return {"telemetry": telemetry, "sig": sign_digest(private_key, telemetry_digest(telemetry))}

"""MQTT topic contract: `tf/{org}/{device}/{events|telemetry}` in, receipts and rejects out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

SHARE_GROUP = "tracefin-ingest"
_TOPIC = re.compile(r"^tf/([a-z0-9-]{1,64})/([a-z0-9-]{1,64})/(events|telemetry)$")
_ANY_SEGMENTS = re.compile(r"^tf/([^/]+)/([^/]+)/[^/]+$")


class Kind(StrEnum):
    EVENTS = "events"
    TELEMETRY = "telemetry"


def device_topic(org: str, device: str, leaf: str) -> str:
    """`tf/{org}/{device}/{leaf}`: the one place the topic layout is spelled."""
    return f"tf/{org}/{device}/{leaf}"


@dataclass(frozen=True)
class DeviceTopic:
    org: str
    device: str
    kind: Kind

    @property
    def topic(self) -> str:
        """The topic itself, `tf/{org}/{device}/{kind}`: where the device publishes."""
        return device_topic(self.org, self.device, self.kind.value)

    @property
    def receipts(self) -> str:
        return device_topic(self.org, self.device, "receipts")

    @property
    def rejects(self) -> str:
        return device_topic(self.org, self.device, "rejects")


def parse_topic(topic: str) -> DeviceTopic | None:
    match = _TOPIC.match(topic)
    if match is None:
        return None
    return DeviceTopic(match.group(1), match.group(2), Kind(match.group(3)))


def rejects_topic_for_unparsable(topic: str) -> str | None:
    """Where to answer a message on a malformed topic, if it has the tf/{org}/{device} shape.

    MQTT wildcards cannot appear in a published topic, so the reply is always publishable.
    """
    match = _ANY_SEGMENTS.match(topic)
    return device_topic(match.group(1), match.group(2), "rejects") if match else None


def subscriptions() -> list[str]:
    """The shared subscriptions every ingest worker takes; the broker splits messages among them."""
    return [f"$share/{SHARE_GROUP}/tf/+/+/{kind.value}" for kind in Kind]

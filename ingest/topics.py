"""MQTT topic contract: `tf/{org}/{device}/{events|telemetry}` in, receipts and rejects out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# The default share group of the ingest workers (TRACEFIN_INGEST_SHARE_GROUP); a deployment names
# its own, so two deployments on one broker do not split each other's messages.
DEFAULT_SHARE_GROUP = "tracefin-ingest"
# MQTT 5 forbids `/`, `+` and `#` in a share name; tracefin keeps to URL-safe characters.
SHARE_GROUP_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_SHARE_GROUP = re.compile(SHARE_GROUP_PATTERN)
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


def subscriptions(share_group: str = DEFAULT_SHARE_GROUP) -> list[str]:
    """The shared subscriptions every ingest worker of `share_group` takes; the broker splits the
    devices' messages among the group's members."""
    if not _SHARE_GROUP.match(share_group):
        raise ValueError(f"{share_group!r} is not a share group name ([A-Za-z0-9_.-], 1-128)")
    return [f"$share/{share_group}/tf/+/+/{kind.value}" for kind in Kind]

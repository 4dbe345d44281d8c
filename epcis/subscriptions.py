"""Named queries and subscriptions, the pure part: a query's JSON as query parameters, where a
webhook may point, the delivery's signature and where the subscriber's position goes."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from epcis.query import QueryParameterError

# The stream position each delivery carries (a queryResults member: the JSON Schema allows
# URI-named extension members there). Given back as `nextPageToken` on reconnecting, the
# stream resumes after it.
POSITION_KEY: Final = "https://tracefin.dev/epcis/nextPageToken"
# The standard's header for the webhook's signature (REST binding, POST .../subscriptions).
SIGNATURE_HEADER: Final = "GS1-Signature"
# Paging belongs to the request, not to a stored query.
_NOT_STORED = frozenset({"perPage", "nextPageToken", "limit", "cursor"})
# What cuts or orders a whole answer has no meaning for a subscription, which delivers the
# events in log order as they come: applied to each batch, eventCountLimit would skip the rest
# of the batch for good and maxEventCount would stop the subscription at its first large one.
_NOT_FOR_A_LOG = frozenset({"orderBy", "orderDirection", "eventCountLimit", "maxEventCount"})
MAX_NAME_LENGTH: Final = 200
MAX_DEST_LENGTH: Final = 2048
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# IPv6 ranges Python 3.11 calls global that no webhook needs: IPv4-compatible (::a.b.c.d) and
# SIIT-translated (::ffff:0:a.b.c.d) addresses, local-use NAT64 (64:ff9b:1::/48) and the
# deprecated site-local range (fec0::/10).
_NOT_FOR_WEBHOOKS = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("fec0::/10"),
)


def query_params(query: object) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query given as JSON (`{"EQ_bizStep": ["shipping",
    "receiving"], "eventType": ["ObjectEvent"]}`): a list is "any of" (`|`), a boolean
    `true`/`false`, a number its digits. QueryParameterError for anything else; the pairs
    are then parsed (strictly) by parse_event_query."""
    if not isinstance(query, dict):
        raise QueryParameterError("query", "the query is a JSON object of query parameters")
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if name in _NOT_STORED:
            raise QueryParameterError(name, "paging is asked when the query is run, not stored")
        if name in _NOT_FOR_A_LOG:
            raise QueryParameterError(
                name, "a named query feeds subscriptions, in log order: give this when asking"
            )
        pairs.append((name, _value(name, value)))
    return pairs


def _value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        if "|" in value:
            raise QueryParameterError(name, "give several values as a JSON array")
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if any("|" in v for v in value):
            raise QueryParameterError(name, "a value holds '|'")
        return "|".join(value)
    raise QueryParameterError(name, "a string, a number, a boolean or an array of strings")


def signature(token: str, body: bytes) -> str:
    """The GS1-Signature of a delivery: `sha256=` and the hex HMAC-SHA256 of the body as sent,
    keyed with the subscriber's signatureToken (its bytes in UTF-8)."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class DestRefused(ValueError):
    """A webhook destination tracefin will not send to."""


def address_allowed(address: str, loopback: bool) -> bool:
    """Whether a webhook may reach `address`: a public (global unicast) address; loopback too
    when `loopback` (development and tests). Never private, link-local (the cloud metadata
    service, 169.254.169.254), shared, reserved, multicast or unspecified; an IPv6 address that
    embeds an IPv4 one (mapped, 6to4, Teredo, NAT64) is judged by that one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return loopback
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _NOT_FOR_WEBHOOKS):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            # A NAT64 gateway would carry it to the IPv4 address in its last 32 bits.
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    if ip.is_loopback:
        return loopback
    return ip.is_global and not ip.is_multicast


def check_dest(dest: object, loopback: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL tracefin may send to, else DestRefused: https
    (http only to 127.0.0.1, ::1 or localhost when `loopback`), no user information, and a
    host that is a name or an allowed address (a name is judged again by every address it
    resolves to, when sending)."""
    if not isinstance(dest, str) or not dest or len(dest) > MAX_DEST_LENGTH:
        raise DestRefused(f"dest is a URL of at most {MAX_DEST_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in dest):
        raise DestRefused("dest holds a space or a control character")
    try:
        parts = urlsplit(dest)
        port = parts.port
    except ValueError as exc:
        raise DestRefused(f"dest is not a URL: {exc}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise DestRefused("dest is an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise DestRefused("dest carries no user name or password")
    if parts.scheme == "http" and not (loopback and host in _LOOPBACK_NAMES):
        raise DestRefused("dest is an https:// URL (http only to the loopback in development)")
    if host in _LOOPBACK_NAMES and not loopback:
        raise DestRefused("dest may not be this machine")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(host, loopback):
        raise DestRefused(f"dest may not be {host}: not a public address")
    if literal is None and (host.endswith(".localhost") or "." not in host) and host != "localhost":
        raise DestRefused(f"dest may not be {host}: not a public name")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def named_results(
    document: dict[str, Any], query_name: str, subscription_id: str | None, position: int
) -> dict[str, Any]:
    """A query document as a subscription delivers it: its queryResults name the named query
    and the subscription, and carry the stream position it brings the subscriber to."""
    results = document["epcisBody"]["queryResults"]
    results["queryName"] = query_name
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results[POSITION_KEY] = str(position)
    return document


# The fields of a QuerySchedule and the values each may take (dayOfWeek: 1 is Monday).
SCHEDULE_FIELDS: Final = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (1, 7),
}
# How many candidate times next_time() looks at before it says the schedule never matches.
_SCHEDULE_STEPS = 200_000


class ScheduleRefused(ValueError):
    """A query schedule that does not follow the standard's grammar or never matches."""


Schedule = dict[str, frozenset[int]]


def parse_schedule(schedule: object) -> Schedule:
    """A QuerySchedule (`{"hour": "1", "minute": "5"}`): each field `Element ("," Element)*`,
    an Element a number or a range `[a-b]` within the field's bounds; an omitted field matches
    every value. ScheduleRefused for anything else (the standard's
    SubscriptionControlsException)."""
    if not isinstance(schedule, dict) or not schedule:
        raise ScheduleRefused("schedule is an object of second, minute, hour, ... fields")
    parsed: Schedule = {}
    for name, raw in schedule.items():
        if name not in SCHEDULE_FIELDS:
            raise ScheduleRefused(f"{name!r} is not a schedule field")
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str) or not raw or len(raw) > 200:
            raise ScheduleRefused(f'{name} is a string such as "5", "0,30" or "[1-5]"')
        low, high = SCHEDULE_FIELDS[name]
        values: set[int] = set()
        for element in raw.split(","):
            if element.startswith("[") and element.endswith("]") and "-" in element:
                first, _, last = element[1:-1].partition("-")
                bounds = (_number(name, first, low, high), _number(name, last, low, high))
                if bounds[0] > bounds[1]:
                    raise ScheduleRefused(f"{name}: the range {element} runs backwards")
                values.update(range(bounds[0], bounds[1] + 1))
            else:
                values.add(_number(name, element, low, high))
        parsed[name] = frozenset(values)
    return parsed


def _number(name: str, raw: str, low: int, high: int) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        raise ScheduleRefused(f"{name}: {raw[:20]!r} is not a number")
    value = int(raw)
    if not low <= value <= high:
        raise ScheduleRefused(f"{name}: {value} is not within {low}-{high}")
    return value


def next_time(schedule: Schedule, after: datetime) -> datetime | None:
    """The first whole second after `after` (UTC, the service's time zone) that the schedule
    matches; None if it matches none within years (30 February)."""
    at = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for _ in range(_SCHEDULE_STEPS):
        if not _matches(schedule, "month", at.month):
            following = at.replace(day=1, hour=0, minute=0, second=0)
            at = (following + timedelta(days=32)).replace(day=1)
        elif not _matches(schedule, "dayOfMonth", at.day) or not _matches(
            schedule, "dayOfWeek", at.isoweekday()
        ):
            at = at.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        elif not _matches(schedule, "hour", at.hour):
            at = at.replace(minute=0, second=0) + timedelta(hours=1)
        elif not _matches(schedule, "minute", at.minute):
            at = at.replace(second=0) + timedelta(minutes=1)
        elif not _matches(schedule, "second", at.second):
            at += timedelta(seconds=1)
        else:
            return at
    return None


def _matches(schedule: Schedule, name: str, value: int) -> bool:
    allowed = schedule.get(name)
    return allowed is None or value in allowed

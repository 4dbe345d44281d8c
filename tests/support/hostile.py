"""Hostile inputs shared by the fuzz, forgery and API tests: raw JSON, nasty text, checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from epcis.capture import WHOLE_PAYLOAD, CaptureResult
from epcis.event_hash import event_hash_digest
from epcis.rejects import RejectCode

# Strings an attacker puts in free-text fields, hoping one of them reaches SQL unbound.
SQL_INJECTIONS = (
    "'); DROP TABLE events;--",
    "\\' OR 1=1--",
    "' OR '1'='1",
    '"; DELETE FROM dead_letters; --',
    "1; UPDATE credit_lines SET limit_minor = 0; --",
    "$$; DROP TABLE orgs; $$",
    "x' UNION SELECT key_hash FROM api_keys --",
)

# Characters that break naive text handling: RTL overrides, combining marks, BOM, separators,
# non-characters, the last code point, quotes and backslashes.
NASTY_CHARACTERS = (
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u0301",  # combining acute accent
    "e\u0301",  # decomposed é
    "\u00e9",  # composed é: must not be conflated with the decomposed form
    "\ufeff",  # byte order mark inside text
    "\u2028",  # line separator (breaks JavaScript string literals)
    "\uffff",  # a non-character
    "\U0010ffff",  # the last code point
    "\U0001f600",  # astral plane (two UTF-16 units)
    "\\",
    '"',
    "'",
    "\t\r\n",
    "<script>alert(1)</script>",
    "{{7*7}}",
)

# Numbers as JSON text, so the payload can carry what Python's encoders refuse to write.
NUMBER_TOKENS = (
    "0",
    "-0",
    "-0.0",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "5e-324",
    "1e-400",  # underflows to 0.0
    "1e309",  # overflows a double
    "-1e309",
    "18446744073709551615",  # 2**64 - 1
    "18446744073709551616",  # 2**64
    "-9223372036854775809",  # -(2**63) - 1
    "9" * 40,
    "1" * 400,
    "NaN",  # not JSON
    "Infinity",
    "-Infinity",
    "0x10",
    "01",
    "1.",
    ".5",
    "+1",
)


@dataclass(frozen=True)
class Raw:
    """JSON text written exactly as `token`: a number token (which may be invalid JSON on
    purpose) or a pre-built deep structure too deep for a recursive serialiser."""

    token: str


def dump(value: object) -> bytes:
    """Serialise a JSON-like tree as raw JSON bytes.

    Unlike orjson this writes lone surrogates (as \\uXXXX escapes), integers of any size and
    any `Raw` token, so payloads can contain what a careless or hostile device would send.
    """
    return _dump(value).encode("utf-8")


def _dump(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Raw):
        return value.token
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        # ensure_ascii escapes surrogates (they cannot be UTF-8 encoded); otherwise raw UTF-8.
        surrogates = any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        return json.dumps(value, ensure_ascii=surrogates)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dump(str(k))}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    raise TypeError(f"cannot dump {type(value).__name__}")


def nested(depth: int, *, kind: str = "list") -> Raw:
    """`depth` levels of arrays (or objects) around the number 1, as raw JSON text."""
    if kind == "list":
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


# --- strategies --------------------------------------------------------------------------------

# Any code point, surrogates included (st.text leaves category Cs out by default), and the
# nasty fragments above; joined rather than st.text because some fragments are several chars.
text_fragments = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from(NASTY_CHARACTERS),
    st.just("\x00"),
)
nasty_text = st.one_of(
    st.lists(text_fragments, max_size=12).map("".join),
    st.sampled_from(SQL_INJECTIONS),
    st.sampled_from(NASTY_CHARACTERS),
)
numbers = st.one_of(
    st.sampled_from(NUMBER_TOKENS).map(Raw),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(nasty_text, children, max_size=5),
    ),
    max_leaves=25,
)

EVENT_TIME = "2024-05-01T10:00:00.000+08:00"  # in the past of any test's clock
GCP = "0614141"


def base_events(serial: str) -> list[dict[str, Any]]:
    """One valid event of each EPCIS type, with sensor data, ILMD and business transactions."""
    sgtin = f"urn:epc:id:sgtin:{GCP}.012345.{serial}"
    common: dict[str, Any] = {
        "eventTime": EVENT_TIME,
        "eventTimeZoneOffset": "+08:00",
        "readPoint": {"id": f"urn:epc:id:sgln:{GCP}.00001.0"},
        "bizLocation": {"id": f"urn:epc:id:sgln:{GCP}.00002.0"},
    }
    return [
        {
            **common,
            "type": "ObjectEvent",
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "epcList": [sgtin],
            "ilmd": {"cbvmda:lotNumber": f"LOT-{serial}"},
        },
        {
            **common,
            "type": "ObjectEvent",
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "disposition": "conformant",
            "quantityList": [
                {"epcClass": f"urn:epc:class:lgtin:{GCP}.012345.L{serial}", "quantity": 3}
            ],
            "sensorElementList": [
                {
                    "sensorMetadata": {"time": EVENT_TIME},
                    "sensorReport": [{"type": "Temperature", "value": -18.5, "uom": "CEL"}],
                }
            ],
        },
        {
            **common,
            "type": "AggregationEvent",
            "action": "ADD",
            "bizStep": "packing",
            "parentID": f"urn:epc:id:sscc:{GCP}.1{serial[-9:].rjust(9, '0')}",
            "childEPCs": [sgtin],
        },
        {
            **common,
            "type": "TransactionEvent",
            "action": "ADD",
            "bizStep": "shipping",
            "bizTransactionList": [{"type": "po", "bizTransaction": f"urn:x:po:{serial}"}],
            "epcList": [sgtin],
            "destinationList": [{"type": "owning_party", "destination": "urn:x:party:b"}],
        },
        {
            **common,
            "type": "TransformationEvent",
            "inputEPCList": [sgtin],
            "outputQuantityList": [
                {"epcClass": f"urn:epc:class:lgtin:{GCP}.012346.T{serial}", "quantity": 1.5}
            ],
        },
        {
            **common,
            "type": "AssociationEvent",
            "action": "ADD",
            "parentID": f"urn:epc:id:grai:{GCP}.12345.{serial}",
            "childEPCs": [sgtin],
        },
    ]


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path (keys and indexes) into a JSON tree, the root excluded."""
    found: list[tuple[object, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found += _paths(child, (*prefix, index))
    return found


def _replace(tree: Any, path: tuple[object, ...], new: object) -> None:
    for step in path[:-1]:
        tree = tree[step]
    tree[path[-1]] = new


def _delete(tree: Any, path: tuple[object, ...]) -> None:
    for step in path[:-1]:
        tree = tree[step]
    del tree[path[-1]]


@st.composite
def hostile_events(draw: st.DrawFn, serial: str | None = None) -> dict[str, Any]:
    """A valid event of some type with zero to three hostile edits anywhere in it."""
    serial = serial or str(draw(st.integers(min_value=1, max_value=10**12)))
    event: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(base_events(serial)))))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = _paths(event)
        edit = draw(st.sampled_from(["replace", "delete", "extend", "text"]))
        if edit == "extend" or not paths:
            name = draw(st.one_of(st.just("ex:note"), nasty_text.map(lambda t: f"ex:{t}")))
            event[name] = draw(json_values)
            continue
        path = draw(st.sampled_from(paths))
        if edit == "replace":
            _replace(event, path, draw(json_values))
        elif edit == "delete":
            _delete(event, path)
        else:
            _replace(event, path, draw(nasty_text))
    return event


def document(events: list[object], context: object = None) -> dict[str, Any]:
    return {
        "@context": context
        if context is not None
        else ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"ex": "urn:x:ns:"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": EVENT_TIME,
        "epcisBody": {"eventList": events},
    }


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """What a broken or hostile device publishes: bytes, JSON, events, arrays, documents."""
    shape = draw(
        st.sampled_from(
            ["bytes", "json", "event", "array", "envelope", "document", "numbers", "deep"]
        )
    )
    if shape == "bytes":
        return draw(st.binary(max_size=512))
    if shape == "json":
        return dump(draw(json_values))
    if shape == "event":
        return dump(draw(hostile_events()))
    if shape == "array":
        return dump(
            draw(st.lists(st.one_of(hostile_events(), json_values), min_size=1, max_size=4))
        )
    if shape == "envelope":
        sig = draw(st.one_of(json_values, st.binary(min_size=65, max_size=65).map(_hex)))
        return dump({"event": draw(hostile_events()), "sig": sig})
    if shape == "document":
        context = draw(st.one_of(st.none(), json_values))
        events = draw(st.lists(st.one_of(hostile_events(), json_values), min_size=1, max_size=3))
        return dump(document(events, context))
    if shape == "deep":
        # Around the nesting limits: capture's (240), orjson's dumps (254) and loads (1024).
        depth = draw(st.sampled_from([1, 230, 238, 239, 240, 241, 253, 254, 300, 1023, 1024]))
        kind = draw(st.sampled_from(["list", "dict"]))
        return dump({**draw(hostile_events()), "ex:deep": nested(depth, kind=kind)})
    # A valid event with a number token in each number field.
    event = draw(hostile_events())
    token = Raw(draw(st.sampled_from(NUMBER_TOKENS)))
    event["ex:n"] = token
    # A hostile event's quantityList may be anything at all (true, a number, …).
    elements = event.get("quantityList")
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict):
            element["quantity"] = token
    return dump(event)


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


# --- the capture contract ----------------------------------------------------------------------


def depth_of(value: object) -> int:
    """Nesting depth of a decoded JSON value (iterative: the value may be very deep)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def items_in(payload: bytes) -> int | None:
    """How many events a payload carries, judged independently of capture; None if not JSON."""
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if isinstance(decoded, list):
        return len(decoded)
    if isinstance(decoded, dict) and decoded.get("type") == "EPCISDocument":
        body = decoded.get("epcisBody")
        events = body.get("eventList") if isinstance(body, dict) else None
        return len(events) if isinstance(events, list) else None
    return 1


def check_capture_result(payload: bytes, result: CaptureResult) -> None:
    """The capture contract: every event accepted or refused with a code, once; stored JSON
    that rehashes to the event's identity and that PostgreSQL can store."""
    for refused in result.refused:
        assert isinstance(refused.code, RejectCode), refused
        assert isinstance(refused.detail, str), refused
        assert refused.detail, refused
    whole = [r for r in result.refused if r.index == WHOLE_PAYLOAD]
    if whole:
        assert len(result.refused) == 1, result.refused
        assert result.accepted == [], result.accepted
    else:
        indexes = [a.index for a in result.accepted] + [r.index for r in result.refused]
        count = items_in(payload)
        assert count is not None, "a payload that is not JSON must be refused as a whole"
        assert sorted(indexes) == list(range(count)), (indexes, count)
    for accepted in result.accepted:
        assert len(accepted.digest) == 32
        assert "\\u0000" not in accepted.stored_json
        stored = orjson.loads(accepted.stored_json)
        context = orjson.loads(accepted.context) if accepted.context is not None else None
        # What an audit recomputes from the stored row must be the identity it was stored under.
        assert event_hash_digest(stored, context) == accepted.digest, accepted.stored_json

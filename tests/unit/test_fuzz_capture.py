"""Property-based fuzzing of capture and telemetry: every input accepted or refused with a code."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from epcis.capture import WHOLE_PAYLOAD, CaptureResult, DeviceKey, capture, decode_json
from epcis.event_hash import event_hash_digest
from epcis.model import EVENT_TYPES, parse_event
from epcis.rejects import EventRejected, RejectCode
from epcis.signatures import address_of, sign_digest
from epcis.telemetry import parse_telemetry
from tests.support.examples import examples
from tests.support.hostile import (
    NUMBER_TOKENS,
    Raw,
    base_events,
    check_capture_result,
    depth_of,
    document,
    dump,
    hostile_events,
    hostile_payloads,
    json_values,
    nasty_text,
    nested,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = secrets.token_bytes(32)
SIGNED = DeviceKey(1, "acme", "line-1", address_of(KEY))
UNSIGNED = DeviceKey(1, "acme", "plc-1", None)
LIMIT = 256 * 1024
SKEW = timedelta(minutes=10)

# Fuzzing is bounded so the whole file stays well under a minute; derandomize keeps CI stable
# (the same examples every run), and database=None keeps no state between runs.
FUZZ = settings(
    max_examples=examples(300),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(payload: bytes, device: DeviceKey = UNSIGNED) -> CaptureResult:
    """capture() must return, whatever the payload: any exception fails the test."""
    return capture(payload, device, now=NOW, max_payload_bytes=LIMIT, max_future_skew=SKEW)


def codes(result: CaptureResult) -> list[tuple[int, str]]:
    return [(r.index, r.code.value) for r in result.refused]


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_accepted_or_refused_with_a_code(payload: bytes) -> None:
    result = run(payload)
    check_capture_result(payload, result)


@FUZZ
@given(json_values)
def test_arbitrary_json_is_accepted_or_refused_with_a_code(value: object) -> None:
    payload = dump(value)
    result = run(payload)
    check_capture_result(payload, result)
    for accepted in result.accepted:
        assert accepted.columns.event_type in EVENT_TYPES


@FUZZ
@given(hostile_payloads())
def test_hostile_payloads_unsigned(payload: bytes) -> None:
    result = run(payload)
    check_capture_result(payload, result)
    event(
        f"accepted {len(result.accepted)}, refused {sorted({r.code.value for r in result.refused})}"
    )


@FUZZ
@given(hostile_payloads())
def test_hostile_payloads_signed_device(payload: bytes) -> None:
    # A signing device's bare events are all refused, but still one by one and with a code.
    result = run(payload, SIGNED)
    check_capture_result(payload, result)
    assert result.accepted == []


@FUZZ
@given(hostile_events())
def test_hostile_events_correctly_signed(hostile: dict[str, object]) -> None:
    # Sign whatever the edits left, so the signature check passes and validation decides.
    payload = dump(hostile)
    try:
        sig = sign_digest(KEY, event_hash_digest(orjson.loads(payload)))
    except (orjson.JSONDecodeError, ValueError):
        sig = "0x" + "00" * 65  # not JSON or no usable type: refused before the signature
    enveloped = b'{"event":' + payload + b',"sig":"' + sig.encode() + b'"}'
    result = run(enveloped, SIGNED)
    check_capture_result(enveloped, result)
    for accepted in result.accepted:
        assert accepted.signature is not None


@FUZZ
@given(st.data())
def test_unedited_events_of_every_type_are_accepted_with_any_extension(data: st.DataObject) -> None:
    # Free text in an extension (SQL, RTL, combining marks, astral characters) is data: a valid
    # event with it is accepted, and its stored JSON keeps the text exactly.
    serial = str(data.draw(st.integers(min_value=1, max_value=10**9)))
    chosen = data.draw(st.sampled_from(base_events(serial)))
    text = data.draw(nasty_text.filter(_storable))
    result = run(dump(document([{**chosen, "ex:note": text}])))
    assert codes(result) == []
    (accepted,) = result.accepted
    assert orjson.loads(accepted.stored_json)["ex:note"] == text


def _storable(text: str) -> bool:
    """Text PostgreSQL can hold and JSON can carry: no NUL, no lone surrogate."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@pytest.mark.parametrize("token", NUMBER_TOKENS)
@pytest.mark.parametrize("where", ["quantity", "sensor_value", "extension"])
def test_number_literals_at_the_limits(token: str, where: str) -> None:
    event = base_events("7")[1]  # the ObjectEvent with a quantity and a sensor report
    if where == "quantity":
        event["quantityList"][0]["quantity"] = Raw(token)
    elif where == "sensor_value":
        event["sensorElementList"][0]["sensorReport"][0]["value"] = Raw(token)
    else:
        event["ex:n"] = Raw(token)
    payload = dump(event)
    result = run(payload)
    check_capture_result(payload, result)
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        # NaN, Infinity, overflowing doubles and malformed numbers are not JSON at all.
        assert codes(result) == [(WHOLE_PAYLOAD, "not_json")]
    else:
        assert len(result.accepted) == 1, codes(result)


@pytest.mark.parametrize(
    "escape",
    [
        "\\ud800",  # lone high surrogate
        "\\udfff",  # lone low surrogate
        "\\udc00\\ud800",  # a pair in the wrong order
        "\\ud800x",
    ],
)
def test_lone_surrogates_are_not_json(escape: str) -> None:
    event = orjson.dumps(base_events("8")[0])
    payload = event[:-1] + b',"ex:note":"' + escape.encode() + b'"}'
    assert codes(run(payload)) == [(WHOLE_PAYLOAD, "not_json")]


def test_a_valid_surrogate_pair_is_one_character() -> None:
    event = orjson.dumps(base_events("9")[0])
    payload = event[:-1] + b',"ex:note":"\\ud83d\\ude00"}'
    (accepted,) = run(payload).accepted
    assert orjson.loads(accepted.stored_json)["ex:note"] == "\U0001f600"


@pytest.mark.parametrize("text", ["a\\u0000", "\\u0000", "\\u0000\\u0000b"])
@pytest.mark.parametrize("where", ["value", "key", "nested"])
def test_nul_anywhere_is_invalid_text(text: str, where: str) -> None:
    event = orjson.dumps(base_events("10")[0])
    extension = {
        "value": f'"ex:note":"{text}"',
        "key": f'"ex:{text}":1',
        "nested": f'"ex:deep":[{{"a":["{text}"]}}]',
    }[where]
    payload = event[:-1] + b"," + extension.encode() + b"}"
    assert codes(run(payload)) == [(WHOLE_PAYLOAD, "invalid_text")]


def test_unicode_forms_are_not_conflated() -> None:
    # Composed and decomposed é are different text, so the events are different events.
    composed = {**base_events("11")[0], "ex:note": "caf\u00e9"}
    decomposed = {**base_events("11")[0], "ex:note": "cafe\u0301"}
    (a,) = run(dump(composed)).accepted
    (b,) = run(dump(decomposed)).accepted
    assert a.digest != b.digest


@pytest.mark.parametrize("depth", [10, 100, 200])
def test_moderate_nesting_is_accepted(depth: int) -> None:
    event = {**base_events("12")[0], "ex:deep": nested(depth)}
    result = run(dump(event))
    assert codes(result) == []


@pytest.mark.parametrize("depth", [1100, 5000])
def test_nesting_beyond_the_parser_limit_is_not_json(depth: int) -> None:
    event = {**base_events("13")[0], "ex:deep": nested(depth)}
    assert codes(run(dump(event))) == [(WHOLE_PAYLOAD, "not_json")]


@pytest.mark.parametrize(
    ("where", "depth", "kind"),
    [
        ("extension", 255, "list"),
        ("extension", 300, "dict"),
        ("extension", 600, "list"),
        ("extension", 1000, "list"),
        ("ilmd", 400, "dict"),
        ("sensor", 300, "list"),
    ],
)
def test_deep_nesting_inside_an_event_is_refused_not_raised(
    where: str, depth: int, kind: str
) -> None:
    # Between orjson's limits (dumps 254, loads 1024) capture used to raise TypeError or
    # RecursionError, which killed the ingest worker; now it is a coded refusal.
    event = base_events("14")[0]
    if where == "extension":
        event["ex:deep"] = nested(depth, kind=kind)
    elif where == "ilmd":
        event["ilmd"]["ex:deep"] = nested(depth, kind=kind)
    else:
        event = base_events("14")[1]
        event["sensorElementList"][0]["sensorReport"][0]["ex:deep"] = nested(depth, kind=kind)
    payload = dump(event)
    result = run(payload)
    check_capture_result(payload, result)
    assert codes(result) == [(WHOLE_PAYLOAD, "too_deeply_nested")]


@pytest.mark.parametrize("depth", [300, 900])
def test_deep_nesting_in_a_document_context_is_refused_not_raised(depth: int) -> None:
    payload = dump(document([base_events("15")[0]], context=[nested(depth, kind="dict")]))
    assert codes(run(payload)) == [(WHOLE_PAYLOAD, "too_deeply_nested")]


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_the_nesting_limit_is_exact(kind: str) -> None:
    # The event object is level 1 and the innermost container of `nested` level depth + 1.
    deepest_allowed = {**base_events("19")[0], "ex:deep": nested(239, kind=kind)}
    assert depth_of(orjson.loads(dump(deepest_allowed))) == 241  # the number 1 is a level too
    result = run(dump(deepest_allowed))
    assert codes(result) == []
    assert len(result.accepted) == 1
    one_more = {**base_events("19")[0], "ex:deep": nested(240, kind=kind)}
    assert codes(run(dump(one_more))) == [(WHOLE_PAYLOAD, "too_deeply_nested")]


@pytest.mark.parametrize("kind", ["[]", '["ObjectEvent"]', "{}", '{"a":1}'])
def test_an_unhashable_type_is_wrong_type_not_a_crash(kind: str) -> None:
    # _split used to test `type in frozenset`, a TypeError for an array or object.
    event = orjson.dumps({k: v for k, v in base_events("17")[0].items() if k != "type"})
    payload = event[:-1] + b',"type":' + kind.encode() + b"}"
    assert codes(run(payload)) == [(0, "wrong_type")]


def test_an_unhashable_type_inside_an_array_is_wrong_type() -> None:
    event = {**base_events("18")[0], "type": ["ObjectEvent"]}
    assert codes(run(dump([event]))) == [(0, "wrong_type")]


def test_an_empty_document_is_refused_like_an_empty_array() -> None:
    # Otherwise ingest would answer nothing and keep nothing for it.
    assert codes(run(b"[]")) == [(WHOLE_PAYLOAD, "not_an_event")]
    assert codes(run(dump(document([])))) == [(WHOLE_PAYLOAD, "not_an_event")]


def test_decode_json_raises_only_event_rejected() -> None:
    for payload in (b"", b"\xff", b"[" * 2000, b'"\\ud800"', b"NaN", b"x" * (LIMIT + 1)):
        with pytest.raises(EventRejected) as refused:
            decode_json(payload, max_payload_bytes=LIMIT)
        assert isinstance(refused.value.code, RejectCode)


@FUZZ
@given(json_values)
def test_parse_event_raises_only_event_rejected(value: object) -> None:
    try:
        decoded = orjson.loads(dump(value))
    except orjson.JSONDecodeError:
        return
    # Any exception other than EventRejected fails the test; its code must be a RejectCode.
    code: object = None
    try:
        parse_event(decoded, now=NOW, max_future_skew=SKEW)
    except EventRejected as exc:
        code = exc.code
    assert code is None or isinstance(code, RejectCode)


# --- telemetry ---------------------------------------------------------------------------------

# The whole datetime range (years 1 to 9999) with the widest offsets: converting the extremes
# to UTC overflows, which the parser must refuse rather than raise.
times = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
).map(lambda t: t.isoformat())
samples = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "time": st.one_of(times, nasty_text),
            "readings": st.one_of(
                json_values, st.dictionaries(nasty_text, st.one_of(json_values), max_size=4)
            ),
        }
    ),
)


@FUZZ
@given(st.one_of(samples, st.lists(samples, max_size=4)), st.booleans())
def test_telemetry_is_stored_or_refused_with_a_code(value: object, as_bytes: bool) -> None:
    payload = dump(value) if not as_bytes else dump(value)[::-1]  # reversed: mostly not JSON
    result = parse_telemetry(payload, now=NOW, max_payload_bytes=LIMIT, max_future_skew=SKEW)
    for refused in result.refused:
        assert isinstance(refused.code, RejectCode)
    for reading in result.readings:
        assert reading.time.tzinfo is not None
        assert reading.value == reading.value  # never NaN
        assert abs(reading.value) != float("inf")


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_telemetry_time_at_the_datetime_limits_is_refused(time: str) -> None:
    # astimezone(UTC) overflows here; it used to escape as OverflowError.
    payload = orjson.dumps({"time": time, "readings": {"temperature": 1.0}})
    result = parse_telemetry(payload, now=NOW, max_payload_bytes=LIMIT, max_future_skew=SKEW)
    assert [(r.index, r.code.value) for r in result.refused] == [(0, "invalid_telemetry")]


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_event_time_at_the_datetime_limits_is_refused(time: str) -> None:
    # The EPCIS parser guards the same overflow: the contrast shows the telemetry bug is local.
    event = {**base_events("16")[0], "eventTime": time}
    assert codes(run(dump(event))) == [(0, "wrong_type")]

"""The compiled modules (`make native`) are the ones imported, and answer as their source does."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from epcis.event_hash import document_events, document_ignore_fields
from tests.support.examples import examples
from tests.support.gs1_examples import EXAMPLES
from tests.support.hostile import dump, hostile_events, hostile_payloads, json_values, nasty_text
from tests.support.pure_oracle import PureOracle, answer
from tracefin.cli import main as cli_main
from tracefin.native import (
    NATIVE_MODULES,
    NativeState,
    compiled_forms,
    module_name,
    native_state,
    remove_stamp,
    source_digests,
    stale_build_message,
    write_stamp,
)
from tracefin.simulate import lifecycle, signed_publications, sim_devices

# `make test` builds the compiled modules unless run with NATIVE=0, and tells the tests which.
EXPECT_COMPILED = os.environ.get("TRACEFIN_NATIVE", "1") != "0"
CONFORMANCE = Path(__file__).parents[1] / "conformance" / "epcis-event-hash"


def test_the_listed_modules_are_imported_compiled_unless_the_build_was_asked_not_to() -> None:
    forms = compiled_forms()
    assert forms == dict.fromkeys(forms, EXPECT_COMPILED), (
        "run `make native` (or set TRACEFIN_NATIVE=0 to test the pure-Python form)"
    )


@pytest.fixture(scope="module")
def oracle() -> Iterator[PureOracle]:
    pure = PureOracle()
    yield pure
    pure.close()


def test_the_oracle_runs_the_source(oracle: PureOracle) -> None:
    # Else the comparisons below would compare the compiled form with itself.
    assert oracle.ask({"call": "forms"}) == {module_name(path): False for path in NATIVE_MODULES}


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted([*EXAMPLES.rglob("*.jsonld"), *CONFORMANCE.glob("*.jsonld")]):
        yield path.name, json.loads(path.read_text())


def _hash_requests() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, document in _documents():
        context = document.get("@context")
        ignore = sorted(document_ignore_fields(document))
        for index, event in enumerate(document_events(document)):
            request = {"call": "hash", "event": event, "context": context, "ignore": ignore}
            yield f"{name}[{index}]", request
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for device, event in lifecycle(7, start):
        yield f"simulator {device} {event['bizStep']}", {"call": "hash", "event": event}


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)


def _differences(oracle: PureOracle, requests: list[tuple[str, dict[str, Any]]]) -> list[str]:
    differences = []
    for label, request in requests:
        pure = oracle.ask(request)
        compiled = answer(request)
        # By repr: NaN equals nothing, and 1, 1.0 and True are equal but not the same answer.
        if repr(pure) != repr(compiled):
            differences.append(f"{label}: source {pure} != compiled {compiled}")
    return differences


def test_every_example_event_hashes_and_normalises_alike(oracle: PureOracle) -> None:
    requests = list(_hash_requests())
    assert len(requests) > 100  # GS1's examples, the conformance vectors, the simulator
    assert _differences(oracle, requests) == []


def test_every_string_of_the_examples_reads_alike_as_an_identifier(oracle: PureOracle) -> None:
    texts = sorted({text for _, request in _hash_requests() for text in _strings(request)})
    assert len(texts) > 500
    requests = [(text, {"call": "identifier", "text": text}) for text in texts]
    assert _differences(oracle, requests) == []


# The oracle is one process for the module, shared by every example on purpose.
_SHARED_ORACLE = [HealthCheck.function_scoped_fixture]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=_SHARED_ORACLE)
@given(
    hostile=hostile_events(),
    context=st.one_of(st.none(), st.just({"ex": "https://example.com/"}), json_values),
    data=st.data(),
)
def test_hostile_events_hash_and_normalise_alike(
    oracle: PureOracle, hostile: dict[str, Any], context: object, data: st.DataObject
) -> None:
    try:
        # As a device would send them, where that is JSON at all.
        sent = json.loads(dump({"event": hostile, "context": context}))
    except ValueError:
        assume(False)
        raise
    # Some of its own keys declared as not hashed, as a document's ignoreFields may.
    ignore = data.draw(st.lists(st.sampled_from(sorted(sent["event"]) or ["none"]), max_size=3))
    request = {
        "call": "hash",
        "event": sent["event"],
        "context": sent["context"],
        "ignore": ignore,
    }
    assert _differences(oracle, [("hostile", request)]) == []


NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _capture_requests() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, document in _documents():
        payload = json.dumps(document).encode()
        yield name, {"call": "capture", "payload": payload, "now": NOW}
    devices = sim_devices("native")
    addresses = {device.events_topic: device.address for device in devices.values()}
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for index, publication in enumerate(signed_publications(devices, range(2), start)):
        request = {
            "call": "capture",
            "payload": publication.payload,
            "address": addresses[publication.topic],
            "now": NOW,
        }
        yield f"simulator message {index}", request


def test_every_example_payload_is_captured_alike(oracle: PureOracle) -> None:
    requests = list(_capture_requests())
    assert len(requests) > 20
    # Most are accepted: the comparison covers the stored forms, not only refusals.
    accepted = sum(len(answer(request)["ok"]["accepted"]) for _, request in requests)
    assert accepted > 100
    assert _differences(oracle, requests) == []


@settings(max_examples=examples(300), deadline=None, suppress_health_check=_SHARED_ORACLE)
@given(payload=hostile_payloads())
def test_hostile_payloads_are_captured_alike(oracle: PureOracle, payload: bytes) -> None:
    request = {"call": "capture", "payload": payload, "now": NOW}
    assert _differences(oracle, [("hostile payload", request)]) == []


_IDENTIFIER_LIKE = st.one_of(
    nasty_text,
    st.tuples(
        st.sampled_from(
            [
                "urn:epc:id:sgtin:",
                "urn:epc:class:lgtin:",
                "urn:epc:id:sgln:",
                "urn:epc:id:sscc:",
                "urn:epc:id:grai:",
                "urn:epc:idpat:sgtin:",
                "https://id.gs1.org/01/",
                "https://example.com/01/",
                "https://id.gs1.org/414/",
                "https://id.gs1.org/00/",
            ]
        ),
        st.text(alphabet="0123456789.*%/-ABCdef:", max_size=40),
    ).map("".join),
)


@settings(max_examples=examples(500), deadline=None, suppress_health_check=_SHARED_ORACLE)
@given(text=_IDENTIFIER_LIKE)
def test_identifier_like_text_reads_alike(oracle: PureOracle, text: str) -> None:
    assert _differences(oracle, [(text, {"call": "identifier", "text": text})]) == []


_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _fake_build(directory: Path) -> None:
    """A package of two sources, one of them "compiled", recorded as built from them."""
    (directory / "hashing.py").write_text("X = 1\n")
    (directory / "vocabulary.py").write_text("Y = 2\n")
    (directory / f"hashing{_SUFFIX}").write_bytes(b"")
    (directory / f"_native__mypyc{_SUFFIX}").write_bytes(b"")
    write_stamp(directory, source_digests(directory))


def test_a_build_from_the_current_sources_is_current(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    state = native_state(tmp_path)
    assert state == NativeState(compiled=("_native__mypyc", "hashing"), problems=())
    assert stale_build_message(state) is None


def test_no_extensions_need_no_record(tmp_path: Path) -> None:
    (tmp_path / "hashing.py").write_text("X = 1\n")
    assert native_state(tmp_path) == NativeState(compiled=(), problems=())


@pytest.mark.parametrize("edited", ["hashing.py", "vocabulary.py", "added.py"])
def test_a_source_changed_since_the_build_makes_it_stale_whatever_its_time(
    tmp_path: Path, edited: str
) -> None:
    # vocabulary.py is not compiled, but mypyc writes the values of another module's Final
    # constants into the compiled code; a copy that keeps old times (cp -p, rsync -t, tar) is
    # caught by content.
    _fake_build(tmp_path)
    source = tmp_path / edited
    source.write_text("X = 3\n")
    os.utime(source, (0, 0))
    message = stale_build_message(native_state(tmp_path))
    assert message is not None
    assert f"sources changed since the build: {edited}" in message


def test_a_build_without_its_record_is_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    remove_stamp(tmp_path)
    assert native_state(tmp_path).problems == ("no record of the build in native-build.json",)


def test_a_compiled_module_without_its_source_is_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    (tmp_path / "hashing.py").rename(tmp_path / "renamed.py")
    write_stamp(tmp_path, source_digests(tmp_path))
    assert native_state(tmp_path).problems == ("compiled modules without a source: hashing",)


def test_tracefin_refuses_to_run_a_stale_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_build(tmp_path)
    (tmp_path / "hashing.py").write_text("X = 3\n")
    monkeypatch.setattr("tracefin.cli.package_dir", lambda: tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["rules", "show"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "sources changed since the build: hashing.py" in error
    assert "run `make native`" in error

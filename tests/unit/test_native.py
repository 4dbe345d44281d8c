"""The compiled modules (`make native`) are the ones imported, and answer as their source does."""

from __future__ import annotations

import importlib
import json
import os
import time
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
from tests.support.hostile import dump, hostile_events, json_values, nasty_text
from tests.support.pure_oracle import PureOracle, answer
from tracefin.native import (
    NATIVE_MODULES,
    extension_modules,
    is_compiled,
    module_name,
    stale_modules,
)
from tracefin.simulate import lifecycle

# `make test` builds the compiled modules unless run with NATIVE=0, and tells the tests which.
EXPECT_COMPILED = os.environ.get("TRACEFIN_NATIVE", "1") != "0"
CONFORMANCE = Path(__file__).parents[1] / "conformance" / "epcis-event-hash"


def test_the_listed_modules_are_imported_compiled_unless_the_build_was_asked_not_to() -> None:
    forms = {
        module_name(path): is_compiled(importlib.import_module(module_name(path)))
        for path in NATIVE_MODULES
    }
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
)
def test_hostile_events_hash_and_normalise_alike(
    oracle: PureOracle, hostile: dict[str, Any], context: object
) -> None:
    try:
        # As a device would send them, where that is JSON at all.
        sent = json.loads(dump({"event": hostile, "context": context}))
    except ValueError:
        assume(False)
        raise
    request = {"call": "hash", "event": sent["event"], "context": sent["context"]}
    assert _differences(oracle, [("hostile", request)]) == []


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


def _fake_build(directory: Path, name: str, *, source_age_s: float) -> None:
    extension = directory / f"{name}.cpython-311-x86_64-linux-gnu.so"
    source = directory / f"{name}.py"
    extension.write_bytes(b"")
    source.write_text("")
    now = time.time()
    os.utime(extension, (now, now))
    os.utime(source, (now - source_age_s, now - source_age_s))


def test_an_extension_older_than_its_source_is_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path, "fresh", source_age_s=60)
    _fake_build(tmp_path, "edited", source_age_s=-60)
    (tmp_path / "_native__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert set(extension_modules(tmp_path)) == {"fresh", "edited", "_native__mypyc"}
    assert stale_modules(tmp_path) == ["edited"]

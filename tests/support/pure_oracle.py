"""The pure-Python form of the compiled modules, as a subprocess answering calls, to compare with.

`python -m tests.support.pure_oracle` imports every module of tracefin.native.NATIVE_MODULES
from its source even where a compiled extension lies beside it, then answers one call per
frame on stdin with one result frame on stdout (pickled, so strings with surrogates, integers
beyond 64 bits and tuples arrive exactly as sent, which JSON would not keep). In-process,
`answer` gives the same calls' results from whatever form was imported (the compiled one after
`make native`).
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tracefin.native import compiled_forms, import_sources_from_now_on

ROOT = Path(__file__).resolve().parents[2]
# Company prefixes for the EPC URN forms: those of GS1's examples and of tests/support/hostile.
PREFIXES = frozenset({"0614141", "4012345", "4023333", "5012345", "0353579", "0012345"})


def _outcome(call: Any) -> dict[str, Any]:
    try:
        return {"ok": call()}
    except Exception as exc:  # the class and message are compared, whatever they are
        return {"raised": [type(exc).__name__, str(exc)]}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The results of one call (an exception as its class name and message)."""
    from epcis import epc_format, event_hash, identifiers

    kind = request["call"]
    if kind == "hash":
        event, context = request["event"], request.get("context")
        ignore = frozenset(request.get("ignore", ()))
        return (
            {
                f"rule {rule}": _outcome(
                    lambda rule=rule: event_hash.prehash_string(
                        event, event_hash.hash_context(context, rule=rule), ignore_fields=ignore
                    )
                )
                for rule in (event_hash.HASH_RULE, event_hash.HASH_RULE_1)
            }
            | {
                "normalised": _outcome(lambda: event_hash.normalise_event(event)),
                "hash id": _outcome(
                    lambda: event_hash.digest_from_hash_id(
                        event_hash.event_hash_id(event, context, ignore_fields=ignore)
                    ).hex()
                ),
            }
            | {
                f"as {form.value}": _outcome(
                    lambda form=form: epc_format.translate_event(event, form, PREFIXES)
                )
                for form in epc_format.EPCFormat
            }
        )
    if kind == "identifier":
        text = request["text"]
        return {
            "canonical": _outcome(lambda: identifiers.canonical_gs1_uri(text)),
            "normalised": _outcome(lambda: identifiers.normalise_epc(text)),
            "checked": _outcome(lambda: identifiers.checked_epc(text)),
            "lot": _outcome(lambda: identifiers.parse_lot(text)),
            "sgtin": _outcome(lambda: identifiers.parse_sgtin(text)),
            "prefix": _outcome(lambda: identifiers.gs1_prefix(text)),
            "urn": _outcome(lambda: identifiers.epc_urn(text, PREFIXES)),
            "gtin": _outcome(lambda: identifiers.gtin14(text)),
            "gln": _outcome(lambda: identifiers.gln13(text)),
            "lot uri": _outcome(lambda: identifiers.lot_uri("09506000134352", text)),
            "sgtin uri": _outcome(lambda: identifiers.sgtin_uri("09506000134352", text)),
            "check digit": _outcome(lambda: identifiers.check_digit(text)),
            "hash id": _outcome(lambda: event_hash.digest_from_hash_id(text).hex()),
        }
    if kind == "capture":
        return _outcome(lambda: _captured(request))
    if kind == "forms":
        return compiled_forms()
    raise ValueError(f"unknown call {kind!r}")


def _captured(request: dict[str, Any]) -> dict[str, Any]:
    """What capture made of a payload: every accepted event's identity, stored forms and index
    columns, and every refusal."""
    from epcis.capture import INDEX_COLUMNS, DeviceKey, capture

    result = capture(
        request["payload"],
        DeviceKey(1, "acme", "line-1", request.get("address")),
        now=request["now"],
        max_payload_bytes=1 << 20,
        max_future_skew=timedelta(minutes=10),
    )
    return {
        "accepted": [
            (
                accepted.index,
                accepted.hash_id,
                accepted.stored_json,
                accepted.context,
                accepted.signature,
                tuple(getattr(accepted.columns, name) for name in INDEX_COLUMNS),
                repr(accepted.declaration),
                accepted.captured_json,
            )
            for accepted in result.accepted
        ],
        "refused": [(item.index, item.code.value, item.detail) for item in result.refused],
    }


_LENGTH = struct.Struct(">I")


def _write_frame(stream: Any, value: Any) -> None:
    data = pickle.dumps(value)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: Any) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    return pickle.loads(stream.read(_LENGTH.unpack(head)[0]))


class PureOracle:
    """The subprocess, asked one call at a time."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pure_oracle"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def ask(self, request: dict[str, Any]) -> Any:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        _write_frame(self._process.stdin, request)
        try:
            return _read_frame(self._process.stdout)
        except EOFError:
            raise RuntimeError(f"the pure oracle exited ({self._process.wait()})") from None

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


def main() -> None:
    import_sources_from_now_on()
    while True:
        try:
            request = _read_frame(sys.stdin.buffer)
        except EOFError:
            return
        _write_frame(sys.stdout.buffer, answer(request))


if __name__ == "__main__":
    main()

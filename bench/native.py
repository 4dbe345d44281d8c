"""What the compiled hot modules (`make native`) save: pure capture, source form against compiled.

Each form runs in child processes of its own over the same signed single-event messages of the
simulator (validate, hash, normalise, index, check digits, signature recovery: everything
`epcis.capture.capture` does, with no I/O). Children alternate, source then compiled, so both
see the same machine; the best round of each form counts. The source form is the baseline, run
from the same checkout by importing the listed modules from their source
(tracefin.native.import_sources_from_now_on). Prints CPU microseconds per event of each, their
ratio and the saving, and writes bench/results/native-latest.json.

    make native && .venv/bin/python bench/native.py [--messages 14000] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save_result
from tracefin.native import (
    NATIVE_MODULES,
    compiled_forms,
    import_sources_from_now_on,
)

FORMS = ("source", "compiled")


def child(form: str, messages: int, rounds: int) -> None:
    """Measure one form in this process; print its figures as JSON."""
    if form == "source":
        import_sources_from_now_on()

    from epcis.capture import DeviceKey, capture
    from tracefin.simulate import signed_publications, sim_devices

    loaded = compiled_forms()
    if set(loaded.values()) != {form == "compiled"}:
        raise SystemExit(f"{form}: the modules did not load in that form: {loaded}")
    devices = sim_devices("bench")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    publications = list(signed_publications(devices, range(messages // 7 + 1), start))[:messages]
    keys = {
        device.events_topic: DeviceKey(1, "bench", device.device_id, device.address)
        for device in devices.values()
    }
    now = datetime.now(UTC)
    skew = timedelta(days=3650)
    per_round = []
    for _ in range(rounds):
        began = time.process_time()
        for publication in publications:
            result = capture(
                publication.payload,
                keys[publication.topic],
                now=now,
                max_payload_bytes=1 << 20,
                max_future_skew=skew,
            )
            if result.refused or len(result.accepted) != 1:
                raise SystemExit(f"{form}: refused {result.refused}")
        per_round.append((time.process_time() - began) / len(publications) * 1e6)
    print(json.dumps({"form": form, "us_per_event": per_round}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=14_000)
    parser.add_argument("--pairs", type=int, default=3, help="children of each form, alternating")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the messages per child")
    parser.add_argument("--child", choices=FORMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.messages, args.rounds)
        return
    rounds: dict[str, list[float]] = {form: [] for form in FORMS}
    sizes = ["--messages", str(args.messages), "--rounds", str(args.rounds)]
    for pair in range(args.pairs):
        for form in FORMS:
            output = subprocess.run(
                [sys.executable, __file__, "--child", form, *sizes],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            rounds[form] += figures["us_per_event"]
            print(
                f"pair {pair + 1} {form:>8}: "
                + ", ".join(f"{us:.1f}" for us in figures["us_per_event"])
                + " µs/event"
            )
    best = {form: min(values) for form, values in rounds.items()}
    ratio = best["compiled"] / best["source"]
    print(f"pure capture, {args.messages} simulator events, CPU µs per event (best round):")
    print(f"  source (baseline) {best['source']:8.1f}")
    print(
        f"  compiled          {best['compiled']:8.1f}   ratio {ratio:.2f},"
        f" saves {best['source'] - best['compiled']:.1f} µs/event"
    )
    save_result(
        "native",
        {
            "messages": args.messages,
            "modules": list(NATIVE_MODULES),
            "us_per_event_rounds": rounds,
            "us_per_event_best": best,
            "compiled_to_source": round(ratio, 3),
        },
    )


if __name__ == "__main__":
    main()

"""The product page's pure parts (issue 20): stays, buckets, excursions, chart, proof walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eth_hash.auto import keccak

from api.i18n import TEXTS
from api.product_page import celsius, chart, duration
from api.public import page_policy
from ledger import merkle
from ledger.cold_chain import Bucket, Stay, bucket_size, excursions, site_of, stays
from ledger.provenance import BATCH_SELECTOR

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
COLD = "0614141000012"
SHOP = "0614141000029"


def event(
    minutes: int, gln: str | None, disposition: str = "active", **extra: Any
) -> dict[str, Any]:
    return {
        "event_time": T0 + timedelta(minutes=minutes),
        "biz_location": f"https://id.gs1.org/414/{gln}" if gln else None,
        "disposition": disposition,
        "evidence": "counts",
        "verification": {"state": "anchored"},
        **extra,
    }


def test_a_site_is_read_from_its_digital_link_only() -> None:
    assert site_of(f"https://id.gs1.org/414/{COLD}") == COLD
    assert site_of(f"https://id.gs1.org/414/{COLD}/254/dock-1") == COLD
    assert site_of("urn:epc:id:sgln:0614141.00001.0") is None
    assert site_of(None) is None


def test_stays_follow_counting_events_and_end_when_the_goods_leave() -> None:
    history = [
        event(0, COLD, "sellable_not_accessible"),
        event(60, COLD, "in_transit"),  # shipped: the stay at the cold store ends here
        event(90, SHOP, "in_progress", evidence="unattested"),  # a claim moves nothing
        event(120, SHOP, "in_progress"),
        event(180, SHOP, "retail_sold"),
    ]
    assert stays(history) == [
        Stay(COLD, T0, T0 + timedelta(minutes=60)),
        Stay(SHOP, T0 + timedelta(minutes=120), T0 + timedelta(minutes=180)),
    ]
    # Still in the cold store: the stay is open.
    assert stays(history[:1]) == [Stay(COLD, T0, None)]
    # A failed (altered) record places nothing either.
    assert stays([event(0, COLD, verification={"state": "failed"})]) == []


def test_the_bucket_keeps_a_life_under_a_hundred_points() -> None:
    assert bucket_size(timedelta(minutes=90)) == timedelta(minutes=1)
    assert bucket_size(timedelta(hours=12)) == timedelta(minutes=15)
    assert bucket_size(timedelta(days=30)) == timedelta(hours=12)
    assert bucket_size(timedelta(days=3650)) == timedelta(days=7)


def buckets(values: list[tuple[float, float]], gln: str = COLD, step: int = 15) -> list[Bucket]:
    return [
        Bucket(gln, T0 + timedelta(minutes=step * i), low, high, (low + high) / 2)
        for i, (low, high) in enumerate(values)
    ]


def test_an_excursion_is_a_run_of_adjacent_buckets_out_of_range() -> None:
    size = timedelta(minutes=15)
    readings = buckets([(-19, -18), (-6, -5), (-5, -5), (-7, -5.5), (-19, -18), (-30, -20)])
    found = excursions(readings, size, -25.0, -15.0)
    assert [(x.start, x.minutes, x.extreme) for x in found] == [
        (T0 + timedelta(minutes=15), 45, -5.0),
        (T0 + timedelta(minutes=75), 15, -30.0),
    ]
    # A gap without readings ends a run: nothing says what happened in between.
    gapped = [readings[1], readings[3]]
    assert [x.minutes for x in excursions(gapped, size, -25.0, -15.0)] == [15, 15]
    # An open bound is no bound.
    assert excursions(readings, size, None, -15.0)[0].minutes == 45
    assert excursions(readings, size, -25.0, None)[0].extreme == -30.0


def test_the_chart_shades_the_band_and_marks_the_excursion() -> None:
    readings = buckets([(-19, -18), (-6, -5), (-5, -5), (-7, -5.5), (-19, -18)])
    size = timedelta(minutes=15)
    cold = {
        "min_c": -25.0,
        "max_c": -15.0,
        "bucket_minutes": 15,
        "stays": [{"gln": COLD, "since": T0, "until": T0 + timedelta(minutes=75)}],
        "buckets": [vars(b) for b in readings],
        "excursions": [vars(x) | {"end": x.end} for x in excursions(readings, size, -25, -15)],
    }
    drawn = chart(cold)
    assert drawn is not None
    assert drawn.band is not None
    _, top, width, height = drawn.band
    assert width == drawn.plot[2]
    assert height > 0
    assert len(drawn.lines) == 1
    assert len(drawn.lines[0].split()) == 5
    [(mark_x, mark_width, dot_x, dot_y)] = drawn.marks
    assert mark_x < dot_x < mark_x + mark_width
    assert dot_y < top  # -5 °C is above the band's top (-15 °C)
    assert [value for _, value in drawn.y_labels] == [-25, -15, -5]
    assert chart(cold | {"buckets": []}) is None


def test_temperatures_and_durations_read_as_people_write_them() -> None:
    assert celsius(-5.0) == "\u22125"
    assert celsius(-18.26) == "\u221218.3"
    assert celsius(0.04) == "0"
    assert celsius(-0.04) == "0"
    assert celsius("warm") == "warm"
    assert duration(45, TEXTS["en"]) == "45 min"
    assert duration(135, TEXTS["en"]) == "2 h 15 min"
    assert duration(120, TEXTS["zh"]) == "2 小时"


def test_the_proof_walk_spells_out_what_verify_inclusion_checks() -> None:
    digests = [bytes([i]) * 32 for i in range(7)]
    root = merkle.root(digests)
    for index in range(7):
        path = merkle.audit_path(digests, index)
        steps = merkle.inclusion_steps(digests[index], index, 7, path)
        assert steps is not None
        assert steps[0] == ("leaf", b"", merkle.leaf_hash(digests[index]))
        assert steps[-1][2] == root
        assert [sibling for _, sibling, _ in steps[1:]] == path
    assert merkle.inclusion_steps(digests[0], 7, 7, []) is None
    assert merkle.inclusion_steps(digests[0], 0, 7, merkle.audit_path(digests, 0)[:-1]) is None


def test_the_page_calls_the_anchors_batch_view() -> None:
    assert "0x" + keccak(b"batch(uint64)")[:4].hex() == BATCH_SELECTOR


def test_the_page_policy_runs_only_its_own_script_and_reaches_rpc_nodes() -> None:
    policy = page_policy("https://rpc.example.com:8545/v1/key")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"].split() == [
        "'self'",
        "https:",
        "http://127.0.0.1:*",
        "http://localhost:*",
        "https://rpc.example.com:8545",  # the origin only: no path, no key
    ]
    assert "http://node.internal:8545" in page_policy("http://node.internal:8545")
    # Nothing but a plain origin ever reaches the header.
    for odd in ("http://a b", "http://x;script-src *", "javascript:alert(1)", None):
        assert page_policy(odd) == page_policy(None)

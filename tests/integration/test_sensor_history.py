"""GET /v1/sensor-history/{lot}: a lot's sensor readings by the minute, at the site holding it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from epcis.telemetry import Reading
from records import event_store, registry_store
from tests.support.api import Api
from tests.support.world import LOT, LOT_URI

pytestmark = pytest.mark.integration


def test_a_lots_sensor_history_is_its_sites_minutes(world: Api) -> None:
    location = world.get(f"/v1/lots{LOT}", "bank").json()["location"]
    gln = location.removeprefix("https://id.gs1.org/414/")
    operator = world.conn.execute(
        "SELECT o.slug FROM sites s JOIN orgs o ON o.id = s.operator_org_id WHERE s.gln = %s",
        (gln,),
    ).fetchone()
    assert operator is not None
    (slug,) = operator
    for device in ("probe-1", "probe-2"):
        registry_store.add_device(world.conn, slug, device, None)
    world.conn.execute(
        "INSERT INTO device_sites (org_id, device_id, gln)"
        " SELECT o.id, 'probe-1', %s FROM orgs o WHERE o.slug = %s",
        (gln, slug),
    )
    keys = registry_store.find_devices(world.conn, [(slug, "probe-1"), (slug, "probe-2")])
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    rows = [
        event_store.ReadingToStore(
            Reading(start + timedelta(seconds=s), "temperature", -20.0 + s / 20),
            keys[(slug, device)].org_id,
            device,
            start,
        )
        for s in range(0, 180, 20)  # three minutes, three readings each
        for device in ("probe-1", "probe-2")  # probe-2 is bound to no site: it does not count
    ]
    with world.conn.transaction():
        event_store.insert_readings(world.conn, rows)

    params = {"since": start.isoformat(), "until": (start + timedelta(hours=1)).isoformat()}
    answer = world.get(f"/v1/sensor-history{LOT}", "bank", params=params)
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert (history["lot"], history["site"], history["metric"]) == (
        LOT_URI,
        gln,
        "temperature",
    )
    assert [(m["start"], m["lowest"], m["highest"], m["readings"]) for m in history["minutes"]] == [
        ("2026-03-01T08:00:00Z", -20.0, -18.0, 3),
        ("2026-03-01T08:01:00Z", -17.0, -15.0, 3),
        ("2026-03-01T08:02:00Z", -14.0, -12.0, 3),
    ]
    latest = world.get(f"/v1/sensor-history{LOT}", "bank", params={**params, "limit": 1})
    assert [m["start"] for m in latest.json()["minutes"]] == ["2026-03-01T08:02:00Z"]
    # Who may not see the lot's status may not see this either, as if there were no lot.
    assert world.get(f"/v1/sensor-history{LOT}", "rival", params=params).status_code == 404
    assert world.get(f"/v1/sensor-history{LOT}", "regulator", params=params).status_code == 200

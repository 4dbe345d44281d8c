"""/readyz under a flood: one round of checks per interval, and a rate limit (issue 17)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.config import ApiConfig, ReadinessProbes
from api.health import ReadinessCache
from api.schemas import Readiness


def _app(probes: ReadinessProbes, **config: object) -> TestClient:
    # Never opened: the database check answers "unreachable" at once, which is all these need.
    pool = ConnectionPool("postgresql://unused@127.0.0.1/unused", open=False)
    return TestClient(create_app(ApiConfig(**config), pool, probes))  # type: ignore[arg-type]


def test_a_flood_of_readiness_probes_asks_the_services_once_per_interval() -> None:
    asked: list[str] = []

    def broker() -> bool:
        asked.append("broker")
        return True

    client = _app(
        ReadinessProbes(broker=broker),
        readiness_cache=timedelta(minutes=5),
        public_rate_per_minute=1000,
    )
    answers = [client.get("/readyz") for _ in range(50)]
    assert asked == ["broker"]
    assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].json()["checks"]["broker"] == "ok"


def test_readyz_is_rate_limited_per_client() -> None:
    client = _app(ReadinessProbes(), public_rate_per_minute=5)
    statuses = [client.get("/readyz").status_code for _ in range(20)]
    assert 429 in statuses
    assert statuses.index(429) <= 6, statuses
    limited = client.get("/readyz")
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")


def _ready(name: str) -> Readiness:
    return Readiness(ready=True, checks={"database": name})


def test_the_readiness_answer_is_asked_anew_once_its_interval_passed() -> None:
    now = [100.0]
    cache = ReadinessCache(timedelta(seconds=2), clock=lambda: now[0])
    assert cache.get(lambda: _ready("first")) == _ready("first")
    now[0] += 1.9
    assert cache.get(lambda: _ready("second")) == _ready("first")
    now[0] += 0.2
    assert cache.get(lambda: _ready("third")) == _ready("third")


def test_while_one_caller_checks_the_others_get_the_previous_answer() -> None:
    now = [0.0]
    cache = ReadinessCache(timedelta(seconds=2), clock=lambda: now[0])
    cache.get(lambda: _ready("first"))
    now[0] += 5
    meanwhile: list[Readiness] = []

    def slow_check() -> Readiness:
        # Another request arrives while this check runs: it does not check too, nor wait.
        meanwhile.append(cache.get(lambda: _ready("never asked")))
        return _ready("second")

    assert cache.get(slow_check) == _ready("second")
    assert meanwhile == [_ready("first")]

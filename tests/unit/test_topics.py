"""The MQTT topic contract."""

from __future__ import annotations

import pytest

from ingest.topics import (
    DeviceTopic,
    Kind,
    parse_topic,
    rejects_topic_for_unparsable,
    subscriptions,
)


def test_device_topics_parse_and_name_their_answers() -> None:
    topic = parse_topic("tf/acme-foods/line-1/events")
    assert topic == DeviceTopic("acme-foods", "line-1", Kind.EVENTS)
    assert topic.receipts == "tf/acme-foods/line-1/receipts"
    assert topic.rejects == "tf/acme-foods/line-1/rejects"
    assert parse_topic("tf/acme/wh-2/telemetry") == DeviceTopic("acme", "wh-2", Kind.TELEMETRY)


@pytest.mark.parametrize(
    "topic",
    [
        "tf/Acme/line-1/events",
        "tf/acme/line_1/events",
        "tf/acme/line-1/receipts",
        "tf/acme/events",
        "xx/acme/line-1/events",
        "tf/acme/line-1/events/extra",
        "tf//d/events",
    ],
)
def test_other_topics_do_not_parse(topic: str) -> None:
    assert parse_topic(topic) is None


def test_answers_for_malformed_topics_go_to_the_senders_rejects() -> None:
    assert rejects_topic_for_unparsable("tf/Acme/Line_1/events") == "tf/Acme/Line_1/rejects"
    assert rejects_topic_for_unparsable("something/else") is None


def test_subscriptions_are_shared() -> None:
    assert subscriptions() == [
        "$share/tracefin-ingest/tf/+/+/events",
        "$share/tracefin-ingest/tf/+/+/telemetry",
    ]


def test_each_deployment_names_its_share_group() -> None:
    assert subscriptions("plant-7-x3Jq") == [
        "$share/plant-7-x3Jq/tf/+/+/events",
        "$share/plant-7-x3Jq/tf/+/+/telemetry",
    ]


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#", "with space", "x" * 129])
def test_share_groups_mqtt_would_misread_are_refused(group: str) -> None:
    with pytest.raises(ValueError, match="share group"):
        subscriptions(group)

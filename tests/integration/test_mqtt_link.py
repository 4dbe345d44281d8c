"""The buffered paho client delivers every packet intact across chunk edges and reconnects."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ingest.mqtt_link import BufferedClient, new_client, parse_mqtt_url
from tracefin.embedded import start_mosquitto

pytestmark = pytest.mark.integration

# Sizes around and beyond the client's 64 KiB read chunk, between small ones, so packets
# start, and their length bytes fall, at every kind of place in a chunk.
SIZES = [1, 600, 65_535, 3, 65_536, 70_000, 2, 200_000, 127, 128, 16_383, 16_384]


def payload(number: int) -> bytes:
    size = SIZES[number % len(SIZES)] if number % 5 == 0 else 500 + number % 97
    return (f"{number}:".encode() * (size // 4 + 1))[:size] or b"-"


class Receiver:
    """A client that subscribes to `topic_filter` at each connection and keeps every message
    as its callback saw it."""

    def __init__(self, client: mqtt.Client, url: str, topic_filter: str, qos: int = 1) -> None:
        self.client = client
        self.address = parse_mqtt_url(url)
        self.messages: list[mqtt.MQTTMessage] = []
        self.arrived = threading.Condition()
        self.subscribed = threading.Event()  # set at each SUBACK
        client.on_message = self._on_message
        client.on_connect = lambda client, *_: self._subscribe(client, topic_filter, qos)
        client.on_subscribe = lambda *_: self.subscribed.set()

    def _subscribe(self, client: mqtt.Client, topic_filter: str, qos: int) -> None:
        self.subscribed.clear()
        client.subscribe(topic_filter, qos=qos)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append(msg)
            self.arrived.notify_all()

    def start(self) -> None:
        self.client.connect(self.address.host, self.address.port)
        self.client.loop_start()
        self.wait_subscribed()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_subscribed(self) -> None:
        assert self.subscribed.wait(30), "no SUBACK"

    def wait_until(
        self, done: Callable[[list[mqtt.MQTTMessage]], bool], timeout: float = 60
    ) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not done(self.messages):
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.messages)} arrived, not what was awaited"
                self.arrived.wait(left)
            return list(self.messages)

    def payloads(self, count: int) -> list[bytes]:
        """The payloads of the first `count` messages, once that many arrived."""
        arrived = self.wait_until(lambda messages: len(messages) >= count)
        return [bytes(message.payload) for message in arrived[:count]]


def publish_all(url: str, numbers: range) -> None:
    publish_all_to(url, "link/t", [payload(n) for n in numbers])


def publish_all_to(url: str, topic: str, payloads: list[bytes]) -> None:
    publisher, address = new_client(url, "link-publisher")
    publisher.connect(address.host, address.port)
    publisher.loop_start()
    try:
        infos = [publisher.publish(topic, body, qos=1) for body in payloads]
        deadline = time.monotonic() + 60
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        assert all(info.is_published() for info in infos), "the broker did not take them all"
    finally:
        publisher.disconnect()
        publisher.loop_stop()


def test_every_packet_arrives_intact_and_in_order_across_chunks_and_a_reconnect(
    tmp_path: Path,
) -> None:
    broker = start_mosquitto(tmp_path / "mosquitto")
    client, _ = new_client(broker.url, "link-receiver")
    assert isinstance(client, BufferedClient)
    receiver = Receiver(client, broker.url, "link/#")
    try:
        receiver.start()
        first = range(0, 600)
        publish_all(broker.url, first)
        assert receiver.payloads(len(first)) == [payload(n) for n in first]

        # The broker goes away and comes back on the same port: nothing read from the old
        # connection may be taken for the new one's bytes.
        port = parse_mqtt_url(broker.url).port
        broker.stop()
        receiver.subscribed.clear()  # the first connection's SUBACK
        broker = start_mosquitto(tmp_path / "mosquitto-again", port=port)
        receiver.wait_subscribed()  # again: the new broker kept no session
        second = range(600, 900)
        publish_all(broker.url, second)
        assert receiver.payloads(900)[600:] == [payload(n) for n in second]
    finally:
        receiver.stop()
        broker.stop()


class ReadCountingClient(BufferedClient):
    """Counts, per `loop_read` call, how often the socket itself was read."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.reads_in_call = 0
        self.most_reads_in_a_call = 0
        self.calls = 0
        self.asked = 0  # paho's own reads of a type byte, length byte or body

    def _sock_recv(self, bufsize: int) -> bytes:
        self.asked += 1
        if self._taken >= self._filled and not self._draining:
            self.reads_in_call += 1
        return super()._sock_recv(bufsize)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        self.reads_in_call = 0
        rc = super().loop_read(max_packets)
        self.calls += 1
        self.most_reads_in_a_call = max(self.most_reads_in_a_call, self.reads_in_call)
        return rc


def test_a_backlog_is_read_a_chunk_per_loop_so_writes_are_not_starved(tmp_path: Path) -> None:
    """paho writes (acks, answers) only between `loop_read` calls: one call must drain what it
    buffered, not refill from a backlog until the backlog is gone."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    address = parse_mqtt_url(broker.url)
    total = 5_000
    try:
        receiver = ReadCountingClient(
            CallbackAPIVersion.VERSION2, client_id="link-backlog", protocol=mqtt.MQTTv5
        )
        received: list[bytes] = []
        subacks: list[object] = []
        receiver.on_message = lambda client, userdata, msg: received.append(bytes(msg.payload))
        receiver.on_subscribe = lambda *answer: subacks.append(answer)
        receiver.connect(address.host, address.port)
        receiver.subscribe("link/#", qos=1)
        deadline = time.monotonic() + 30
        while not subacks:
            assert time.monotonic() < deadline, "no SUBACK"
            assert receiver.loop(0.1) == MQTTErrorCode.MQTT_ERR_SUCCESS
        # A backlog: all published before the receiver reads any of it.
        publisher, _ = new_client(broker.url, "link-backlog-publisher")
        publisher.connect(address.host, address.port)
        publisher.loop_start()
        infos = [publisher.publish("link/t", b"x" * 600, qos=1) for _ in range(total)]
        for info in infos:
            info.wait_for_publish(60)
        publisher.disconnect()
        publisher.loop_stop()
        deadline = time.monotonic() + 60
        while len(received) < total:
            assert time.monotonic() < deadline, f"{len(received)} of {total} arrived"
            assert receiver.loop(0.5) == MQTTErrorCode.MQTT_ERR_SUCCESS
        receiver.disconnect()
        # 600-byte messages: a call reads one chunk, and a second only where its first packet
        # straddled the chunk's end. Many calls, not one long one.
        assert receiver.most_reads_in_a_call <= 2
        assert receiver.calls >= total * 600 // (64 * 1024)
        # A PUBLISH lying whole in the buffer is taken at once: paho asks for bytes (3 or 4
        # times a packet) only for one a chunk's edge cuts, and to read the next chunk.
        assert receiver.asked < total // 10, receiver.asked
    finally:
        broker.stop()


def test_publish_packets_of_every_kind_arrive_as_at_paho_s_own_client(tmp_path: Path) -> None:
    """The buffered client reads a PUBLISH without properties (QoS 0 and 1) itself: topic,
    payload, QoS and retain flag as paho's own client gets them; one with properties, or of
    QoS 2, is paho's, properties included."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    publisher, address = new_client(broker.url, "kinds-publisher")
    publisher.connect(address.host, address.port)
    publisher.loop_start()
    ours_client, _ = new_client(broker.url, "kinds-ours")
    assert isinstance(ours_client, BufferedClient)
    ours = Receiver(ours_client, broker.url, "kinds/#", qos=2)
    theirs = Receiver(
        mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kinds-theirs", protocol=mqtt.MQTTv5),
        broker.url,
        "kinds/#",
        qos=2,
    )
    with_properties = mqtt.Properties(mqtt.PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    with_properties.UserProperty = ("k", "v")
    with_properties.ResponseTopic = "r/t"
    sent = {  # topic: (payload, qos, retain, properties)
        "kinds/retained": (b"kept", 1, True, None),
        "kinds/q0": (b"zero", 0, False, None),
        "kinds/q1": (b"one" * 300, 1, False, None),
        "kinds/q2": (b"two", 2, False, None),
        "kinds/q1-empty": (b"", 1, False, None),
        "kinds/q1-properties": (b"with", 1, False, with_properties),
        "kinds/q0-properties": (b"with0", 0, False, with_properties),
    }

    def has_every_topic(messages: list[mqtt.MQTTMessage]) -> bool:
        return {message.topic for message in messages} >= sent.keys()

    try:
        # Retained before anyone subscribes, so it arrives with the retain flag.
        publisher.publish("kinds/retained", b"kept", qos=1, retain=True).wait_for_publish(30)
        ours.start()
        theirs.start()
        for topic, (body, qos, retain, properties) in sent.items():
            if topic != "kinds/retained":
                publisher.publish(topic, body, qos=qos, retain=retain, properties=properties)
        got_ours, got_theirs = (
            {message.topic: message for message in receiver.wait_until(has_every_topic, 30)}
            for receiver in (ours, theirs)
        )
    finally:
        for receiver in (ours, theirs):
            receiver.stop()
        publisher.disconnect()
        publisher.loop_stop()
        broker.stop()
    for topic, (body, qos, retain, properties) in sent.items():
        mine, paho = got_ours[topic], got_theirs[topic]
        seen = (mine.topic, mine.payload, mine.qos, mine.retain, mine.dup)
        assert seen == (paho.topic, paho.payload, paho.qos, paho.retain, paho.dup), topic
        assert (mine.payload, mine.qos, mine.retain) == (body, qos, retain), topic
        assert (mine.mid > 0) == (qos > 0), topic
        if properties is None and qos < 2:
            assert mine.properties is None, topic  # read here, not by paho
        else:
            assert mine.properties is not None, topic
            assert mine.properties.json() == paho.properties.json(), topic
        if properties is not None:
            assert mine.properties.UserProperty == [("k", "v")], topic
            assert mine.properties.ResponseTopic == "r/t", topic


class WakeCounter:
    """Stands in for the write end of paho's wake-up socket pair, counting the sends."""

    def __init__(self, sock: object) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        result: int = self.sock.send(data)  # type: ignore[attr-defined]
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_packets_queued_together_wake_the_network_thread_once_and_arrive_whole_in_order(
    tmp_path: Path,
) -> None:
    """Queued from another thread inside `queued_together`, packets wake paho's network thread
    once, at the block's end, and are written several to a `send`: every one arrives whole, in
    order, and a QoS 0 one counts as published once written."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    receiver_client, _ = new_client(broker.url, "together-receiver")
    receiver = Receiver(receiver_client, broker.url, "together/#")
    sender, address = new_client(broker.url, "together-sender")
    sender.connect(address.host, address.port)
    sender.loop_start()
    try:
        receiver.start()
        # A small send buffer: large runs go out in parts, resumed mid-packet.
        sender_socket = sender.socket()
        assert isinstance(sender_socket, socket.socket)
        sender_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        short_sends = 0
        send = sender._sock_send

        def counting_send(data: bytes | bytearray) -> int:
            nonlocal short_sends
            written = send(data)
            short_sends += written < len(data)
            return written

        sender._sock_send = counting_send  # type: ignore[method-assign]
        wakes = WakeCounter(sender._sockpairW)
        sender._sockpairW = wakes  # type: ignore[assignment]
        numbers = range(400)
        with sender.queued_together():
            infos = [sender.publish(f"together/q{n % 2}", payload(n), qos=n % 2) for n in numbers]
            wakes_inside = wakes.sends
        assert (wakes_inside, wakes.sends) == (0, 1)
        with sender.queued_together():
            pass  # nothing queued, nothing to wake for
        assert wakes.sends == 1
        arrived = receiver.wait_until(lambda messages: len(messages) >= len(numbers))
        for qos in (0, 1):
            got = [bytes(m.payload) for m in arrived if m.topic == f"together/q{qos}"]
            assert got == [payload(n) for n in numbers if n % 2 == qos]
        deadline = time.monotonic() + 30
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        assert all(info.is_published() for info in infos)
        assert short_sends > 0, "no send was cut short: the resumption went untested"
        # Outside the block, paho's own way: one wake per packet queued.
        sender.publish("together/q0", b"after", qos=0).wait_for_publish(30)
        assert wakes.sends == 2
    finally:
        receiver.stop()
        sender.disconnect()
        sender.loop_stop()
        broker.stop()


def test_acks_queued_together_reach_the_broker(tmp_path: Path) -> None:
    """Manual PUBACKs queued together reach the broker: on resuming the session it redelivers
    exactly the messages left unacked."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    address = parse_mqtt_url(broker.url)
    session = mqtt.Properties(mqtt.PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    session.SessionExpiryInterval = 300

    def connect(clean_start: bool) -> tuple[BufferedClient, Receiver]:
        client, _ = new_client(broker.url, "together-acker", manual_ack=True)
        receiver = Receiver(client, broker.url, "acks/#")
        client.connect(address.host, address.port, clean_start=clean_start, properties=session)
        client.loop_start()
        receiver.wait_subscribed()
        return client, receiver

    acker, first = connect(clean_start=True)
    try:
        publish_all_to(broker.url, "acks/t", [f"m{n}".encode() for n in range(60)])
        delivered = first.wait_until(lambda messages: len(messages) >= 60)
        with acker.queued_together():
            for message in delivered[:35]:  # in the order they came, as MQTT asks
                acker.ack(message.mid, 1)
        # The broker reads a connection's packets in order: its answer to a later PUBLISH says
        # it has read the acks. (Disconnecting at once could lose them: a socket closed with
        # unread bytes is reset, and the broker may drop what it had not read yet.)
        acker.publish("acks-done", b"", qos=1).wait_for_publish(30)
        first.stop()
        _, second = connect(clean_start=False)
        publish_all_to(broker.url, "acks/t", [b"marker"])
        again = second.wait_until(lambda messages: any(m.payload == b"marker" for m in messages))
        second.stop()
        assert [bytes(m.payload) for m in again] == [f"m{n}".encode() for n in range(35, 60)] + [
            b"marker"
        ]
        assert all(m.dup for m in again[:-1])
    finally:
        broker.stop()


def test_filtered_callbacks_get_their_messages_and_on_message_the_rest(tmp_path: Path) -> None:
    """PUBLISH packets go straight to `on_message` only while no `message_callback_add` filter
    is set; with one, paho's matching decides, as at paho's own client."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    client, _ = new_client(broker.url, "filtered-receiver")
    receiver = Receiver(client, broker.url, "filtered/#")
    filtered: list[bytes] = []
    client.message_callback_add("filtered/special", lambda c, u, msg: filtered.append(msg.payload))
    try:
        receiver.start()
        publish_all_to(broker.url, "filtered/special", [b"s1", b"s2"])
        publish_all_to(broker.url, "filtered/plain", [b"p1"])
        assert receiver.payloads(1) == [b"p1"]
        deadline = time.monotonic() + 30
        while len(filtered) < 2:
            assert time.monotonic() < deadline, filtered
            time.sleep(0.05)
        assert filtered == [b"s1", b"s2"]
        assert [bytes(m.payload) for m in receiver.messages] == [b"p1"]
    finally:
        receiver.stop()
        broker.stop()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_a_publish_at_most_once_arrives_as_paho_s_own_qos_0_publish(
    tmp_path: Path, protocol: int
) -> None:
    """The answers' QoS 0 PUBLISH, built without paho's publish: same topic, payload, QoS and
    flags at the subscriber as paho's, for lengths of one to three bytes; counted as published
    once written; refused with MQTT_ERR_NO_CONN before the connection."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    receiver_client, _ = new_client(broker.url, "once-receiver")
    receiver = Receiver(receiver_client, broker.url, "once/#")
    address = parse_mqtt_url(broker.url)
    sender = BufferedClient(CallbackAPIVersion.VERSION2, client_id="once-sender", protocol=protocol)
    assert sender.publish_at_most_once("once/early", b"x").rc == MQTTErrorCode.MQTT_ERR_NO_CONN
    bodies = [b"", b"a", b"b" * 120, b"c" * 127, b"d" * 128, b"e" * 16_400, b"f" * 70_000]
    try:
        receiver.start()
        sender.connect(address.host, address.port)
        sender.loop_start()
        ours = [
            sender.publish_at_most_once(f"once/ours/{n}", body) for n, body in enumerate(bodies)
        ]
        theirs = [sender.publish(f"once/theirs/{n}", body, qos=0) for n, body in enumerate(bodies)]
        for info in ours + theirs:
            info.wait_for_publish(30)
        assert all(info.is_published() and info.rc == 0 for info in ours)
        assert {info.mid for info in ours} == {0}  # built here: paho numbers every message
        arrived = receiver.wait_until(lambda messages: len(messages) >= 2 * len(bodies))
    finally:
        receiver.stop()
        sender.disconnect()
        sender.loop_stop()
        broker.stop()
    by_topic = {message.topic: message for message in arrived}
    for n, body in enumerate(bodies):
        mine, paho = by_topic[f"once/ours/{n}"], by_topic[f"once/theirs/{n}"]
        assert bytes(mine.payload) == bytes(paho.payload) == body
        assert (mine.qos, mine.retain, mine.dup) == (paho.qos, paho.retain, paho.dup) == (0, 0, 0)


def test_a_publish_at_most_once_refuses_what_paho_refuses() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="refuses", protocol=mqtt.MQTTv5)
    for topic in ("", "a/+/b", "a/#"):
        with pytest.raises(ValueError):
            client.publish_at_most_once(topic, b"x")
    with pytest.raises(TypeError):
        client.publish_at_most_once("a/b", "text")  # type: ignore[arg-type]

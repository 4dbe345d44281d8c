"""paho-mqtt adapter for ingest: persistent MQTT v5 session, shared subscriptions, manual acks."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)
# How often `MqttLink.publish` drops the answers already sent from its count: at most this many
# sent ones are still held, and their MQTTMessageInfo is asked about once each.
_PRUNE_EVERY = 32


@dataclass(frozen=True)
class Inbound:
    """One delivered message; `generation` is the connection it arrived on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: datetime


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def parse_mqtt_url(url: str) -> BrokerAddress:
    """`mqtt://[user:pass@]host[:port]` or `mqtts://…` (TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"MQTT URL must look like mqtt://host:port, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=parts.username,
        password=parts.password,
        tls=tls,
    )


# The one Condition of every `_SharedConditionInfo`: waiting on a QoS 0 answer is rare (the
# worker only asks whether it went out), and paho's MQTTMessageInfo makes one per message.
_ANSWERS_WRITTEN = threading.Condition()


class _SharedConditionInfo(mqtt.MQTTMessageInfo):
    """paho's MQTTMessageInfo with the Condition every one shares (woken all at once)."""

    __slots__ = ()

    def __init__(self, mid: int) -> None:  # not paho's: it makes a Condition per message
        self.mid = mid
        self._published = False
        self._condition = _ANSWERS_WRITTEN
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with self._condition:
            self._published = True
            self._condition.notify_all()


# Bytes asked of the socket at once by `BufferedClient`.
_READ_CHUNK = 64 * 1024
# Bytes of queued packets that `BufferedClient` hands to one `send` (at least one packet).
_WRITE_CHUNK = 64 * 1024


class BufferedClient(mqtt.Client):
    """paho's client reading its socket a chunk at a time.

    paho reads each packet with three or four `recv` calls (the type byte, the length bytes one
    by one, the rest) and goes back to `select` after each packet while it has no QoS 2 flows:
    about six system calls per PUBLISH. This client reads up to 64 KiB per `recv_into`, into
    one buffer kept for the connection's life, and hands paho the bytes it asks for from it.

    `loop_read` then goes on with the packets already buffered, since `select` cannot see them,
    but reads nothing more from the socket while it does: paho's loop writes (acks, answers)
    only between two `loop_read` calls, and a drain that refilled itself from a backlog kept
    them waiting for the whole backlog (a worker's peak RSS went from 95 to 159 MiB; past
    `max_unsent_answers`, `MqttLink.publish` drops answers). The broker's flow control is
    unchanged: it still sends at most Receive Maximum unacknowledged messages, whoever holds
    their bytes.

    It also reads a PUBLISH of QoS 0 or 1 that carries no v5 properties (every device
    message) itself: paho builds a `Properties` object for each, whose constructor alone took
    about 18 µs in `timeit` (its tables are built per object); a subscriber that only counts
    went from 45-70 to 20-28 µs of CPU per message (docs/benchmarks.md). Such a message's
    `properties` is None; one with properties, of QoS 2 or with a topic alias, is paho's.

    On the way out, paho writes each queued packet (a PUBACK, an answer) with its own `send`,
    and wakes its network thread through a socket pair once per packet queued from another
    thread: four system calls per acknowledged message with its receipt. This client writes
    the queued packets that need nothing done once written (all but a DISCONNECT, and a QoS 0
    PUBLISH while `on_publish` is set) up to 64 KiB per `send`, in order; and packets queued
    inside `queued_together()` wake the network thread once, at the block's end.

    A PUBLISH that lies whole in the buffer is taken from it at once (`_packet_read`): paho
    asks for its type byte, each length byte and its body apart, and resets its packet state
    each time. Its message goes straight to `on_message` while no `message_callback_add` filter
    is set, which paho matches against every topic (about 1.7 µs a message in `timeit`).

    It overrides paho's private `_sock_recv`, `_sock_close`, `_packet_read`, `_handle_publish`,
    `_packet_queue` and `_packet_write`, and `publish_at_most_once` builds its packet with
    `_pack_remaining_length` (paho-mqtt is pinned at 2.2.0;
    tests/integration/test_mqtt_link.py checks packets across chunk edges and a reconnect,
    that PUBLISH packets of each QoS, retained, empty, with and without properties, arrive as
    they do at paho's own client, as do `publish_at_most_once`'s, and that packets queued
    together and written together arrive whole and in order).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = bytearray(_READ_CHUNK)
        self._buffered = memoryview(self._buffer)
        self._filled = 0
        self._taken = 0
        self._draining = False
        self._queueing_together = threading.local()
        self._message_filters = False  # set by message_callback_add

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._taken >= self._filled:
            sock = self._sock
            if not isinstance(sock, socket.socket):  # None, or paho's WebSocket wrapper
                return super()._sock_recv(bufsize)
            if self._draining:
                # paho keeps a partial packet and reads on when `select` says so, after writing.
                raise BlockingIOError
            # The exceptions as paho's own _sock_recv maps them.
            try:
                filled = sock.recv_into(self._buffer)
            except ssl.SSLWantReadError as err:
                raise BlockingIOError from err
            except ssl.SSLWantWriteError as err:
                self._call_socket_register_write()
                raise BlockingIOError from err
            if filled == 0:
                return b""  # the broker closed the connection
            self._filled, self._taken = filled, 0
        end = min(self._taken + bufsize, self._filled)
        data = bytes(self._buffered[self._taken : end])
        self._taken = end
        return data

    def _sock_close(self) -> None:
        # Bytes of a closed connection must never be read as the next one's.
        self._filled = self._taken = 0
        super()._sock_close()

    def message_callback_add(self, sub: str, callback: mqtt.CallbackOnMessage) -> None:
        self._message_filters = True
        super().message_callback_add(sub, callback)

    def _packet_read(self) -> MQTTErrorCode:
        taken, filled = self._taken, self._filled
        if self._in_packet["command"] != 0 or taken >= filled:
            return super()._packet_read()  # a packet begun, or nothing buffered: paho reads
        buffer = self._buffer
        command = buffer[taken]
        if command & 0xF0 != mqtt.PUBLISH:
            return super()._packet_read()
        # The remaining length: 1 to 4 bytes of 7 bits, least significant first.
        length = shift = 0
        at = taken + 1
        while True:
            if at >= filled or at - taken > 4:
                # Its length not all buffered (paho reads on), or longer than 4 bytes (paho
                # answers the protocol error): either way paho's, from the type byte.
                return super()._packet_read()
            byte = buffer[at]
            at += 1
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        end = at + length
        if end > filled:
            return super()._packet_read()
        self._taken = end
        self._in_packet["command"] = command
        self._in_packet["packet"] = bytearray(self._buffered[at:end])
        try:
            rc = self._handle_publish()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        # As paho leaves it after each packet.
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        command: int = self._in_packet["command"]
        packet: bytearray = self._in_packet["packet"]
        qos = (command & 0x06) >> 1
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        properties_at = topic_end + 2 if qos else topic_end  # after the packet id, if any
        if (
            self._protocol != mqtt.MQTTv5
            or qos not in (0, 1)
            or topic_end == 2  # a topic alias, which comes as a property
            or len(packet) <= properties_at
            or packet[properties_at] != 0  # a properties length of zero is this one byte
        ):
            return super()._handle_publish()
        message = mqtt.MQTTMessage(
            mid=int.from_bytes(packet[topic_end:properties_at], "big") if qos else 0,
            topic=bytes(packet[2:topic_end]),
        )
        message.dup = bool(command & 0x08)
        message.qos = qos
        message.retain = bool(command & 0x01)
        message.payload = bytes(packet[properties_at + 1 :])
        message.timestamp = mqtt.time_func()
        on_message = self.on_message
        if self._message_filters or on_message is None:
            self._handle_on_message(message)
        else:
            # What paho's _handle_on_message does when no filter matches.
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        if qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish_at_most_once(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """`publish(topic, payload, qos=0)` for less: no packet id, no properties, and an
        MQTTMessageInfo without a Condition of its own. paho's publish took 6.5 µs of the
        calling thread per receipt in a loop; a receipt per event made that about 4% of a
        worker's CPU. With `on_publish` set (which needs the packet id), paho's publish."""
        if self.on_publish is not None:
            return self.publish(topic, payload, qos=0)
        topic_bytes = topic.encode()
        # paho's checks: a topic, without wildcards (MQTT 5 allows an empty one with an alias,
        # which this path does not send).
        if not topic_bytes or b"+" in topic_bytes or b"#" in topic_bytes:
            raise ValueError(f"invalid topic to publish to: {topic!r}")
        if not isinstance(payload, bytes | bytearray):
            raise TypeError("payload must be bytes")
        info = _SharedConditionInfo(0)
        if self._sock is None:
            info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
            return info
        properties = b"\x00" if self._protocol == mqtt.MQTTv5 else b""
        packet = bytearray((mqtt.PUBLISH,))
        self._pack_remaining_length(packet, 2 + len(topic_bytes) + len(properties) + len(payload))
        packet += len(topic_bytes).to_bytes(2, "big")
        packet += topic_bytes
        packet += properties
        packet += payload
        info.rc = self._packet_queue(mqtt.PUBLISH, packet, 0, 0, info)
        return info

    @contextlib.contextmanager
    def queued_together(self) -> Iterator[None]:
        """Packets this thread queues in the block wake the network thread once, at its end
        (not at all if it queued none; a block inside another leaves the waking to it)."""
        state = self._queueing_together
        if getattr(state, "queued", None) is not None:
            yield
            return
        state.queued = 0
        try:
            yield
        finally:
            queued, state.queued = state.queued, None
            if queued:
                self._wake_network_thread()

    def _wake_network_thread(self) -> None:
        # As paho does per packet: one byte that its `select` sees on the socket pair.
        pair = self._sockpairW
        if pair is not None:
            with contextlib.suppress(BlockingIOError):
                pair.send(mqtt.sockpair_data)

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        # Without a network thread (no loop_start) paho writes from the caller's: its own way.
        state = self._queueing_together
        if self._thread is None or getattr(state, "queued", None) is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        state.queued += 1
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        while out:
            run = self._plain_run()
            if not run:
                # A packet with something to do once written heads the queue: paho's own loop.
                return super()._packet_write()
            data = run[0]["packet"] if len(run) == 1 else b"".join(p["packet"] for p in run)
            if run[0]["pos"]:  # the rest of a partly written packet (rare: copied, as paho does)
                data = data[run[0]["pos"] :]
            # The exceptions as paho's own _packet_write handles them, the run put back whole.
            try:
                written = self._sock_send(data)
            except (AttributeError, ValueError):
                out.extendleft(reversed(run))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                out.extendleft(reversed(run))
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                out.extendleft(reversed(run))
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if written <= 0:
                out.extendleft(reversed(run))
                # paho's own loop stamps the time only here, not after writing (its keepalive
                # then pings on schedule whatever was sent), and so does this one.
                with self._msgtime_mutex:
                    self._last_msg_out = mqtt.time_func()
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            for index, packet in enumerate(run):
                if written < packet["to_process"]:
                    # Partly written: it and the rest go back, paho's loop sends on later.
                    packet["pos"] += written
                    packet["to_process"] -= written
                    out.extendleft(reversed(run[index:]))
                    break
                written -= packet["to_process"]
                packet["pos"] += packet["to_process"]
                packet["to_process"] = 0
                if packet["command"] & 0xF0 == mqtt.PUBLISH and packet["qos"] == 0:
                    packet["info"]._set_as_published()  # type: ignore[union-attr]
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _plain_run(self) -> list[mqtt._OutPacket]:
        """Packets from the queue's head that need nothing done once written, up to 64 KiB."""
        out = self._out_packet
        run: list[mqtt._OutPacket] = []
        size = 0
        qos0_has_callback = self.on_publish is not None
        while out and size < _WRITE_CHUNK:
            head = out[0]
            kind = head["command"] & 0xF0
            if kind == mqtt.DISCONNECT or (
                kind == mqtt.PUBLISH and head["qos"] == 0 and qos0_has_callback
            ):
                break
            run.append(out.popleft())
            size += head["to_process"]
        return run

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        self._draining = True
        try:
            while (
                rc == MQTTErrorCode.MQTT_ERR_SUCCESS
                and self._taken < self._filled
                and self._sock is not None
            ):
                rc = super().loop_read(max_packets)
        finally:
            self._draining = False
        return rc


def new_client(
    url: str, client_id: str, *, manual_ack: bool = False, max_inflight: int = 1000
) -> tuple[BufferedClient, BrokerAddress]:
    """A paho v5 client configured from an MQTT URL (credentials and TLS included)."""
    address = parse_mqtt_url(url)
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.max_inflight_messages_set(max_inflight)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client, address


def end_session(url: str, client_id: str) -> None:
    """Discard a retired worker's persistent session and whatever the broker queued for it.

    Brokers keep dispatching a share of a shared subscription to an offline member's session;
    call this only for a worker that will not come back (its queued messages are dropped).
    """
    client, address = new_client(url, client_id)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    client.connect(address.host, address.port, clean_start=True, properties=properties)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def _gone_out(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether an answer no longer waits to go out: written (QoS 0), acknowledged (QoS 1), or
    lost with its connection, for which paho's `is_published` raises."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True


class MqttLink:
    """Receives messages for the ingest worker and acknowledges them only when told to.

    Acks are refused for messages of an earlier connection: after a reconnect their packet ids
    may belong to other messages, and the broker redelivers them anyway (persistent session),
    where the event store's idempotence turns them into duplicates.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        subscriptions: Sequence[str],
        on_inbound: Callable[[Inbound], None],
        *,
        receive_maximum: int,
        session_expiry_s: int = 24 * 3600,
        max_unsent_answers: int = 20_000,
    ) -> None:
        self._client, self._address = new_client(url, client_id, manual_ack=True)
        self._subscriptions = list(subscriptions)
        self._on_inbound = on_inbound
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = False
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        # Answers handed to paho and not yet written out (or acked, at QoS 1), oldest first:
        # paho buffers them without limit when the broker reads slower than ingest writes.
        # Counted from their MQTTMessageInfo rather than an on_publish callback, for which paho
        # builds an MQTT v5 Properties object per answer (about 3% of a worker's CPU).
        self._max_unsent = max_unsent_answers
        self._unsent: deque[mqtt.MQTTMessageInfo] = deque()
        self._unsent_lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float = 30.0) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        if not self._connected.wait(timeout):
            log.warning(
                "MQTT broker %s:%s not reachable yet; retrying in the background",
                self._address.host,
                self._address.port,
            )

    def ack(self, messages: Sequence[Inbound]) -> int:
        """PUBACK the messages (in arrival order) that came on the current connection."""
        sent = 0
        with self._lock:
            for message in messages:
                if message.qos > 0 and message.generation == self._generation:
                    self._client.ack(message.mid, message.qos)
                    sent += 1
        return sent

    def sending_together(self) -> contextlib.AbstractContextManager[None]:
        """Acks and answers sent from this thread in the block go out together at its end."""
        return self._client.queued_together()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Send an answer; False (dropped) while `max_unsent_answers` still wait to go out, or
        (QoS 0) while the broker is not connected.

        Receipts and rejects are advisory (the store is the truth, and a re-sent event is
        answered `duplicate`): dropping some beats growing without bound.
        """
        with self._unsent_lock:
            unsent = self._unsent
            # Written out in order (QoS 0), acked about in order (QoS 1): one left unacked
            # holds the later ones in the count, which errs on the side of dropping answers.
            # Pruned every _PRUNE_EVERY answers (and at the limit), not on each one.
            if len(unsent) % _PRUNE_EVERY == 0 or len(unsent) >= self._max_unsent:
                while unsent and _gone_out(unsent[0]):
                    unsent.popleft()
                if len(unsent) >= self._max_unsent:
                    return False
        if qos == 0:
            info = self._client.publish_at_most_once(topic, payload)
        else:
            info = self._client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Not connected. paho drops a QoS 0 answer (counted as dropped here) but keeps a
            # QoS 1 one and sends it once reconnected (as before, outside this count).
            return qos > 0
        with self._unsent_lock:
            self._unsent.append(info)
        return True

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        with self._unsent_lock:
            self._unsent.clear()  # answers queued on the lost connection are gone with it
        # Subscribing on every connect keeps the subscription even if the broker lost the session.
        client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._connected.set()
        log.info("MQTT connected (session present: %s)", flags.session_present)

    def _handle_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("MQTT subscription refused: %s", ", ".join(refused))
        else:
            log.info("MQTT subscribed to %s", ", ".join(self._subscriptions))

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._generation += 1
        self._connected.clear()
        if self._stopping:
            log.info("MQTT disconnected")
        else:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _handle_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        self._on_inbound(
            Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                received_at=datetime.now(UTC),
            )
        )

"""The running link without root: a socketpair stands in for the tun (plain packets, no
virtio header), two Links talk over UDP on 127.0.0.1:0 (udp.py, scheduler.py, link.py
and assembly.py, the one place both directions are built)."""
import logging
import socket

import pytest

from tomato_gevent.errors import TomatoError
from tomato_gevent.vpn import link as link_module
from tomato_gevent.vpn.assembly import offloads_wanted
from tomato_gevent.vpn.packet import OVERHEAD
from tests.support import wait_for
from tests.unit.vpn_doubles import KEY_A, KEY_B, KEY_WRONG, LOOPBACK, TRANSPORTS, Side, SocketTun, linked_pair

from .tcp_packets import ACK, LINUX_SYN_OPTIONS, SYN, ipv4, ipv6, mss_option, mss_values, tcp_checksum_ok, tcp_segment


@TRANSPORTS
def test_move_peer_points_the_endpoint_and_a_dialling_transport_elsewhere(transport):
    side = Side(KEY_A, KEY_B, peer=("127.0.0.1", 5001), thread=False, transport=transport)
    side.build()
    try:
        side.link.move_peer(("127.0.0.1", 5002))
        assert side.link.endpoint.address == ("127.0.0.1", 5002)
        assert getattr(side.transport, "peer_address", ("127.0.0.1", 5002)) == ("127.0.0.1", 5002)
    finally:
        side.transport.close()
        side.tun.close()


@pytest.mark.parametrize("offloads", [True, False], ids=["offloads", "plain"])
def test_syns_crossing_the_link_get_an_mss_that_fits_its_mtu(sides, offloads):
    """Both directions, IPv4 and IPv6: the MSS of a SYN is lowered to the device MTU's
    (1400 here: 1360, 1340) with a valid checksum; other packets pass byte for byte."""
    a, b = linked_pair(sides, offloads)
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A from its first keepalive")
    for sender, receiver in ((a, b), (b, a)):
        for packet, expected in ((ipv4(tcp_segment(LINUX_SYN_OPTIONS)), [1360]),
                                 (ipv6(tcp_segment(mss_option(1440), flags=SYN | ACK)), [1340]),
                                 (ipv4(tcp_segment(mss_option(1200))), [1200])):
            sender.tun.host.send(packet)
            arrived = receiver.tun.host.recv(65536)
            assert mss_values(arrived) == expected and tcp_checksum_ok(arrived)
        bulk = ipv4(tcp_segment(mss_option(1460), flags=ACK, payload=b"data" * 300))
        sender.tun.host.send(bulk)
        assert receiver.tun.host.recv(65536) == bulk


@pytest.mark.parametrize("transport,offloads", [("udp", True), ("udp", False), ("tcp", False)],
                         ids=["udp-offloads", "udp-plain", "tcp"])
def test_packets_round_trip(sides, transport, offloads):
    a, b = linked_pair(sides, offloads, transport=transport)
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A from its first keepalive")
    if transport == "udp":
        assert b.link.endpoint.address[1] == a.address[1]
    a.tun.host.send(b"ping from A")
    assert b.tun.host.recv(65536) == b"ping from A"
    b.tun.host.send(b"pong from B")
    assert a.tun.host.recv(65536) == b"pong from B"

    # A burst: read from the tun in batches, sent with GSO where the kernel takes it,
    # received with GRO, and written to the other tun one packet each, in order.
    # (60 packets: the socketpair's buffer, unlike a tun's queue, counts bytes.)
    packets = [(b"%04d" % i) * 250 for i in range(60)] + [b"short", b"x" * 1400]
    for packet in packets:
        a.tun.host.send(packet)
    received = [b.tun.host.recv(65536) for _ in packets]
    assert received == packets
    assert b.link.drops == {}
    # received is counted at the end of each receive batch, after the tun writes
    wait_for(lambda: b.link.received >= len(packets) + 2, what="B's count of accepted datagrams")
    # A counts a batch once all of it is sent: it may be waiting for room mid-batch while B reads
    wait_for(lambda: a.link.sent >= len(packets) + 2, what="A's count of sent datagrams")
    # (over TCP, A's keepalive at start precedes its connection: "no connection")
    assert set(a.link.drops) <= {"no connection"} and a.link.drops["no connection"] <= 1


@TRANSPORTS
def test_keepalives_sent_while_idle(sides, monkeypatch, transport):
    monkeypatch.setattr(link_module, "HOUSEKEEPING_SECONDS", 0.02)
    a, b = linked_pair(sides, keepalive=0.05, transport=transport)
    wait_for(lambda: b.link.received >= 4, what="keepalives from A")
    assert a.link.sent >= 4 and b.link.drops == {}
    # B, once it has learned A's address, keeps the path alive from its side too.
    wait_for(lambda: a.link.received >= 2, what="keepalives from B")
    a.tun.host.settimeout(0.2)
    with pytest.raises(socket.timeout):
        a.tun.host.recv(65536)      # keepalives carry nothing to the tun


@TRANSPORTS
def test_wrong_key_dropped_and_counted(sides, transport):
    a, b = linked_pair(sides, b_peer_key=KEY_WRONG, transport=transport)
    a.tun.host.send(b"secret")
    wait_for(lambda: b.link.drops["authentication failed"] >= 2, what="B refusing A's keepalive and packet")
    assert b.link.received == 0 and b.link.endpoint.address is None
    b.tun.host.settimeout(0.2)
    with pytest.raises(socket.timeout):
        b.tun.host.recv(65536)
    # B has learned no address, so what its tun sends is dropped, not sent anywhere.
    b.tun.host.send(b"to nobody")
    wait_for(lambda: b.link.drops["no peer address"] == 1, what="no peer address drop")
    assert b.link.sent == 0


def test_garbage_datagrams_dropped(sides):
    a, b = linked_pair(sides)
    wait_for(lambda: b.link.received >= 1, what="A's first keepalive")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        for junk in (b"", b"x" * (OVERHEAD - 1), bytes(OVERHEAD), b"y" * 1400):
            attacker.sendto(junk, b.address)
    wait_for(lambda: sum(b.link.drops.values()) >= 4, what="4 drops")
    assert b.link.drops["short datagram"] == 2
    assert b.link.endpoint.address[1] == a.address[1]      # garbage does not move the peer
    a.tun.host.send(b"still works")
    assert b.tun.host.recv(65536) == b"still works"


def test_send_errors_counted_warned_once_not_fatal(sides, caplog):
    a = sides(KEY_A, KEY_B, peer=("127.0.0.1", 0))     # the kernel refuses port 0: EINVAL
    for _ in range(3):
        a.tun.host.send(b"into the void")
    wait_for(lambda: a.link.drops["send error"] >= 4, what="keepalive + 3 packets refused")
    assert a.link.sent == 0 and a.running
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot send to 127.0.0.1:0" in warnings[0].getMessage()


class FailingTun(SocketTun):
    """A 'tun' whose read fails: a UDP socket with a pending ECONNREFUSED."""

    def __init__(self):
        super().__init__()
        self._failing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._failing.bind(LOOPBACK)
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(LOOPBACK)
        self._failing.connect(closed.getsockname())
        closed.close()
        self._failing.send(b"x")          # answered by ICMP port unreachable
        self._failing.setblocking(False)
        self.fd = self._failing.fileno()

    def close(self):
        super().close()
        self._failing.close()


def test_tomato_error_in_link_is_one_line(capsys, caplog):
    side = Side(KEY_A, KEY_B, peer=("127.0.0.1", 9), tun=FailingTun(), thread=False)
    side.build()                        # and run here, in the main greenlet, as the CLI runs it
    try:
        with pytest.raises(TomatoError, match="reading sock0 failed"):
            side.link.serve_forever()
    finally:
        side.transport.close()
        side.tun.close()
    assert "Traceback" not in capsys.readouterr().err      # gevent printed no crash report
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_offload_choice_from_environment():
    assert offloads_wanted({}) is True
    assert offloads_wanted({"TOMATO_VPN_OFFLOAD": "1"}) is True
    assert offloads_wanted({"TOMATO_VPN_OFFLOAD": "0"}) is False


def test_rate_limited_log_lines():
    from tomato_gevent.vpn.transport import RateLimitedWarnings

    class Recorder:
        def __init__(self):
            self.lines = []

        def log(self, level, msg, *args):
            self.lines.append((level, msg % args))

        def debug(self, msg, *args):
            self.lines.append((logging.DEBUG, msg % args))

    now = [100.0]
    recorder = Recorder()
    events = RateLimitedWarnings(recorder, monotonic=lambda: now[0], interval=10.0, level=logging.INFO, burst=2)
    for text in ("lost", "connected", "lost", "connected"):
        events("peer", text)
    events("other peer", "lost")
    now[0] += 10.0
    events("peer", "lost again")
    assert [level for level, _ in recorder.lines] == [logging.INFO, logging.INFO, logging.DEBUG, logging.DEBUG,
                                                      logging.INFO, logging.INFO]

"""scheduler.drain_net with a scripted transport: a drain cut short by the datagram bound
keeps the packet being merged open for the next drain; a drained socket, or a drain that
accepted nothing (forged datagrams only), closes it. What is not TCP is written past the
coalescer, but never past a merge it holds."""
import collections
import socket

import pytest

from tomato_gevent.vpn.assembly import build_handshake
from tomato_gevent.vpn.keypair import FLAG_CHECKSUM_PARTIAL, Keypair
from tomato_gevent.vpn.offload import partial_header
from tomato_gevent.vpn.report import LinkReport
from tomato_gevent.vpn.scheduler import Scheduler
from tomato_gevent.vpn.session import PeerEndpoint
from tomato_gevent.vpn.vnet import PLAIN_VNET_HDR, VNET_HDR

from .ip_packets import tcp_packet, udp_packet

KEY_A, KEY_B = bytes([1]) * 32, bytes([2]) * 32
NOW_MS = 1_700_000_000_000
PEER = ("127.0.0.1", 5000)


class VnetTun:
    name, vnet_hdr = "sock0", True

    def __init__(self):
        self.host, self._device = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._device.setblocking(False)
        self.host.setblocking(False)
        self.fd = self._device.fileno()

    def frames(self):
        got = []
        while True:
            try:
                got.append(self.host.recv(65536))
            except BlockingIOError:
                return got


class ScriptedTransport:
    """receive() delivers the next scripted batch and returns whether the socket is drained."""

    max_batch_bytes, max_batch_count = 65536, 64

    def __init__(self):
        self.batches = []
        self.sent = []                  # what drain_tun sent: datagrams
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, view, destination):
        self.sent.append(bytes(view))

    def send_batch(self, view, size, segment, count, destination):
        self.sent += [bytes(view[offset:min(offset + segment, size)]) for offset in range(0, size, segment)]

    def fileno(self):
        return self._sock.fileno()

    def describe(self, source):
        return "%s:%d" % source

    def receiver(self, deliver, wall, mono):
        def receive():
            datagrams, drained = self.batches.pop(0)
            for datagram in datagrams:
                deliver(datagram, PEER, NOW_MS, 1.0)
            return drained
        return receive


def scheduler():
    tun, transport = VnetTun(), ScriptedTransport()
    endpoint = PeerEndpoint(fixed=PEER)
    handshake = build_handshake(KEY_A, KEY_B, 10.0, endpoint, 25.0)
    handshake.keypairs.install(Keypair(1, 2, KEY_B, KEY_A, True, 1.0))     # as a completed handshake leaves it
    report = LinkReport("sock0", endpoint, 10.0, 60.0, transport.describe, now=0.0)
    s = Scheduler(tun, transport, handshake, endpoint, collections.Counter(), report,
                  wall=lambda: NOW_MS / 1000, mono=lambda: 1.0, apply=lambda actions: None)
    drain_net, settle = s._net_drainer(lambda deferred=False: True)     # no tun to drain
    scheduler.drain_tun = s._tun_drainer()

    def drain():
        drained = drain_net()
        settle()
        return drained
    return tun, transport, drain


PEER_KEYPAIR = Keypair(2, 1, KEY_A, KEY_B, False, 1.0)     # the peer's side of that keypair


def segments(count, size=1000):
    return [PEER_KEYPAIR.seal(tcp_packet(bytes([65 + i]) * size, 1 + i * size)) for i in range(count)]


def test_a_cut_short_drain_leaves_the_merge_open_and_a_drained_one_closes_it():
    tun, transport, drain_net = scheduler()
    datagrams = segments(6)
    transport.batches = [(datagrams[:3], False), (datagrams[3:], True)]
    assert drain_net() is False
    assert tun.frames() == []                           # the first three wait for the rest
    assert drain_net() is True
    (frame,) = tun.frames()
    assert VNET_HDR.unpack_from(frame)[3] == 1000 and len(frame) == 10 + 52 + 6000


def test_a_drain_of_forged_datagrams_only_closes_the_merge():
    tun, transport, drain_net = scheduler()
    transport.batches = [(segments(3), False), ([b"\x30" + b"\0" * 99] * 50, False)]     # forged data datagrams
    assert drain_net() is False
    assert drain_net() is False
    (frame,) = tun.frames()
    assert len(frame) == 10 + 52 + 3000


def test_udp_is_written_as_it_came_but_after_the_merge_that_precedes_it():
    tun, transport, drain_net = scheduler()
    dns, flagged = udp_packet(b"query"), udp_packet(b"partial", partial=True)
    transport.batches = [([PEER_KEYPAIR.seal(dns)] + segments(2) + [PEER_KEYPAIR.seal(dns),
                          PEER_KEYPAIR.seal(flagged, FLAG_CHECKSUM_PARTIAL)], True)]
    assert drain_net() is True
    first, merged, second, third = tun.frames()
    assert first == second == PLAIN_VNET_HDR + dns                  # nothing pending: written at once
    assert len(merged) == 10 + 52 + 2000                            # the two segments, before the second query
    assert third == partial_header(20, 6) + flagged                 # flagged: the kernel completes it


@pytest.mark.parametrize("packet", [udp_packet(b"v4", partial=True), udp_packet(b"v6", ipv6=True, partial=True),
                                    udp_packet(b"v4")[:27], tcp_packet(b"alone", 5, partial=True),
                                    tcp_packet(b"alone", 5, ipv6=True, partial=True), bytes([0x46]) + bytes(40),
                                    bytes(3)], ids=["udp4", "udp6", "udp4-truncated", "tcp4", "tcp6",
                                                    "ip-options", "junk"])
def test_a_flagged_packet_alone_gets_the_header_the_coalescer_would_give_it(packet):
    """deliver writes a flagged UDP packet itself; every flagged packet gets, either way, what
    TcpCoalescer.add gives a trusted packet alone (NEEDS_CSUM where checksum_layout finds it)."""
    from tomato_gevent.vpn.coalesce import TcpCoalescer

    expected = []
    alone = TcpCoalescer(lambda header, body: expected.append(bytes(header) + bytes(body)))
    alone.add(memoryview(bytearray(packet)), True)
    alone.flush()
    tun, transport, drain_net = scheduler()
    transport.batches = [([PEER_KEYPAIR.seal(packet, FLAG_CHECKSUM_PARTIAL)], True)]
    drain_net()
    assert tun.frames() == expected


@pytest.mark.parametrize("packet, csum_start", [
    (udp_packet(b"v4", partial=True), 20), (udp_packet(b"v6", ipv6=True, partial=True), 40),
    (udp_packet(b"v4")[:27], 20), (tcp_packet(b"single", 5, partial=True), 20),
    (udp_packet(b"elsewhere", partial=True), 24)], ids=["udp4", "udp6", "udp4-truncated", "tcp4", "not-locatable"])
def test_drain_tun_seals_a_partial_checksum_read_as_offload_split_says(packet, csum_start):
    """drain_tun answers a local UDP socket's packet (NEEDS_CSUM, no GSO) itself; whatever
    the read, the datagram carries the flag and the bytes offload.split gives (or, where split
    refuses the read, nothing is sent)."""
    from tomato_gevent.vpn.keypair import Keypairs
    from tomato_gevent.vpn.offload import OffloadError, split
    from tomato_gevent.vpn.vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM

    udp = packet[9 if packet[0] == 0x45 else 6] == 17
    header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, csum_start, 6 if udp else 16)
    buf = bytearray(packet)
    try:
        partial, ((start, end),) = split(buf, 0, len(buf), header)
        expected = [(FLAG_CHECKSUM_PARTIAL if partial else 0, bytes(buf[start:end]))]
    except OffloadError:
        expected = []
    tun, transport, _ = scheduler()
    tun.host.send(header + packet)
    scheduler.drain_tun()
    peer = Keypairs()
    peer.install(Keypair(2, 1, KEY_A, KEY_B, False, 1.0))
    assert [peer.open(datagram, 1.0)[1::-1] for datagram in transport.sent] == expected


def test_an_answer_forwarded_in_the_same_drain_leaves_no_keepalive_due():
    """drain_net sends what the tun answers at once before its bookkeeping; settle() then
    tells the handshake that data came and, after it, that the answer went: no keepalive is
    due (one is, when data came and nothing went back)."""
    from tomato_gevent.vpn.handshake import KEEPALIVE_TIMEOUT_SECONDS, SendKeepalive

    def keepalive_due(answer):
        tun, transport = VnetTun(), ScriptedTransport()
        endpoint = PeerEndpoint(fixed=PEER)
        handshake = build_handshake(KEY_A, KEY_B, 10.0, endpoint, 25.0)
        handshake.keypairs.install(Keypair(1, 2, KEY_B, KEY_A, True, 1.0))
        report = LinkReport("sock0", endpoint, 10.0, 60.0, transport.describe, now=0.0)
        s = Scheduler(tun, transport, handshake, endpoint, collections.Counter(), report,
                      wall=lambda: NOW_MS / 1000, mono=lambda: 1.0, apply=lambda actions: None)
        drain_net, settle = s._net_drainer(s._tun_drainer())
        if answer:                      # as the kernel's echo reply waits in the tun after the write
            tun.host.send(PLAIN_VNET_HDR + udp_packet(b"answer"))
        transport.batches = [([PEER_KEYPAIR.seal(udp_packet(b"request"))], True)]
        drain_net()
        settle()
        assert (s.received, len(transport.sent)) == (1, 1 if answer else 0)
        actions = handshake.tick(1.0 + KEEPALIVE_TIMEOUT_SECONDS + 0.5, NOW_MS + 11_000)
        return any(type(a) is SendKeepalive for a in actions)

    assert keepalive_due(answer=False) is True
    assert keepalive_due(answer=True) is False

"""Hardening of the running link (issue 10), without root, with vpn_doubles' stand-ins:
the tun read path with a virtio header (10.3), reflected datagrams (10.2), the line that
names another protocol version (over UDP and TCP)."""
import logging
import socket
import threading

from tests.support import wait_for
from tests.unit.vpn_doubles import KEY_A, KEY_B, SocketTun
from tomato_gevent.vpn.offload import partial_header
from tomato_gevent.vpn.vnet import (PLAIN_VNET_HDR, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                    VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR)


class VnetSocketTun(SocketTun):
    vnet_hdr = True


def header(flags=0, gso_type=0, gso_size=0, csum_start=0, csum_offset=0):
    return VNET_HDR.pack(flags, gso_type, 0, gso_size, csum_start, csum_offset)


def test_data_valid_packets_are_forwarded_malformed_offloaded_ones_dropped(sides):
    """A SOCK_SEQPACKET stand-in for a tun opened with IFF_VNET_HDR carries header + packet
    per read, as the kernel hands them over. DATA_VALID (a forwarded packet whose checksum
    a NIC verified) is an ordinary packet; a partial checksum or a super-packet whose
    headers do not describe the read is dropped (offload.py)."""
    b = sides(KEY_B, KEY_A)
    a = sides(KEY_A, KEY_B, peer=b.address, tun=VnetSocketTun())
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A from its first keepalive")
    a.tun.host.send(header(flags=VIRTIO_NET_HDR_F_DATA_VALID) + b"forwarded, checksum verified by a NIC")
    assert b.tun.host.recv(65536) == b"forwarded, checksum verified by a NIC"
    a.tun.host.send(header(flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=20, csum_offset=16) + b"partial")
    a.tun.host.send(header(flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type=VIRTIO_NET_HDR_GSO_TCPV4,
                           gso_size=1000) + b"super-packet")
    a.tun.host.send(PLAIN_VNET_HDR + b"plain")
    assert b.tun.host.recv(65536) == b"plain"
    assert a.link.drops["offloaded packet from tun"] == 2


def test_a_super_packet_read_from_the_tun_reaches_a_plain_tun_as_the_kernels_segments(sides):
    """Issue 19: A reads a 5 000-byte TCP super-packet (GSO, partial checksum); B, whose tun
    takes no virtio header, writes the five segments tcp_gso_segment would make, each with
    its checksum completed (A flagged them "checksum partial")."""
    from .ip_packets import kernel_segments, tcp_packet

    b = sides(KEY_B, KEY_A)
    a = sides(KEY_A, KEY_B, peer=b.address, tun=VnetSocketTun())
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A from its first keepalive")
    packet = tcp_packet(bytes(range(250)) * 20, 77, ident=9, partial=True)
    a.tun.host.send(header(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1000, 20, 16) + packet)
    assert [b.tun.host.recv(65536) for _ in range(5)] == kernel_segments(packet, 1000)


def test_a_super_packet_is_merged_again_on_a_vnet_tun_without_a_check(sides):
    """B's tun takes virtio headers: the flagged segments are merged as they are, into frames
    with NEEDS_CSUM whose payloads are the super-packet's (one frame when all five arrive in
    one receive); a partial-checksum SYN alone is written with NEEDS_CSUM at its checksum."""
    from .ip_packets import TCP_SYN, tcp_packet

    b = sides(KEY_B, KEY_A, tun=VnetSocketTun())
    a = sides(KEY_A, KEY_B, peer=b.address, tun=VnetSocketTun())
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A from its first keepalive")
    payload = bytes(range(250)) * 20
    a.tun.host.send(header(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1000, 20, 16)
                    + tcp_packet(payload, 77, ident=9, partial=True))
    got = b""
    while len(got) < len(payload):
        frame = b.tun.host.recv(65536)
        flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
        assert (flags, csum_start, csum_offset) == (VIRTIO_NET_HDR_F_NEEDS_CSUM, 20, 16)
        assert gso_type in (0, VIRTIO_NET_HDR_GSO_TCPV4) and gso_size in (0, 1000)
        got += frame[10 + 52:]
    assert got == payload
    syn = tcp_packet(b"", 5, TCP_SYN, partial=True)
    a.tun.host.send(header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 20, 16) + syn)
    assert b.tun.host.recv(65536) == partial_header(20, 16) + syn


class Reflector:
    """Sends every datagram back where it came from: someone on the path reflecting."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.reflected = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, source = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.sock.sendto(data, source)
            self.reflected += 1

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.sock.close()


def test_own_messages_reflected_back_are_refused(sides):
    """Someone on the path sends A's initiations back to it: A refuses them before any work
    (it knows its own recent initiations), gets no keys, and so never seals a packet."""
    reflector = Reflector()
    try:
        a = sides(KEY_A, KEY_B, peer=reflector.address)
        wait_for(lambda: a.link.drops["own initiation (reflected)"] >= 1, what="A refusing its reflected initiation")
        a.tun.host.send(b"my own packet")
        wait_for(lambda: len(a.link.scheduler.staged) == 1, what="A holding a packet it has no keys for")
        assert a.link.received == 0 and a.link.keypairs.current is None
        a.tun.host.settimeout(0.2)
        try:
            leaked = a.tun.host.recv(65536)
        except socket.timeout:
            leaked = None
        assert leaked is None, "a reflected packet reached the tun"
    finally:
        reflector.close()


def test_a_version_2_peer_is_named_in_one_line(sides, caplog):
    """A v2 end (its datagrams start with a session id: 48-bit start time in ms) gets one line
    naming both versions, not a password hint."""
    import struct
    import time

    caplog.set_level(logging.WARNING, logger="tomato_gevent.vpn")
    a = sides(KEY_A, KEY_B)             # dynamic: anyone's refusals are diagnosed until a peer is known
    v2_keepalive = struct.pack(">QI", int(time.time() * 1000) << 16 | 0xBEEF, 0) + bytes(24)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as old_peer:
        for _ in range(3):
            old_peer.sendto(v2_keepalive, a.address)
        wait_for(lambda: a.link.drops["protocol version 2"] >= 3, what="A refusing the v2 datagrams")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "speaks tomato-vpn v2, this end speaks tomato-vpn v3" in lines[0], lines


def test_a_version_2_peer_over_tcp_is_named_in_one_line(sides, caplog):
    """The same over the TCP transport: v2 framed its datagrams as v3 does (2-byte length), so
    each connection's first frame is named, and the connection, never trusted, is closed."""
    import struct
    import time

    from tomato_gevent.vpn.framing import frame

    caplog.set_level(logging.WARNING, logger="tomato_gevent.vpn")
    a = sides(KEY_A, KEY_B, transport="tcp")
    v2_keepalive = struct.pack(">QI", int(time.time() * 1000) << 16 | 0xBEEF, 0) + bytes(24)
    for _ in range(3):
        with socket.create_connection(a.address, timeout=5) as old_peer:
            old_peer.sendall(frame(v2_keepalive))
            assert old_peer.recv(100) == b"", "the connection is closed, nothing is sent on it"
    wait_for(lambda: a.link.drops["protocol version 2"] >= 3, what="A refusing the v2 frames")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "speaks tomato-vpn v2, this end speaks tomato-vpn v3" in lines[0], lines

"""offload.py: super-packets cut into exactly the segments the kernel would put on a wire."""
import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.vpn.coalesce import TcpCoalescer
from tomato_gevent.vpn.offload import (TUN_F_TSO_ECN, TUN_OFFLOADS, TUNSETOFFLOAD, OffloadError, checksum_layout, cut,
                                       finish_checksum, ones_sum, parse_header, partial_header, split)
from tomato_gevent.vpn.tun import set_offloads
from tomato_gevent.vpn.vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM, VNET_HDR

from .ip_packets import (ROUTER_ALERT, SACK_40, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_URG, TIMESTAMPS,
                         checksum, complete_checksum, kernel_segments, layout, pseudo_sum, tcp_checksum_ok, tcp_packet,
                         udp_packet)

PREFIX = bytes(range(1, 10))     # stands in for the timestamp slot and the flags byte


def cut_all(packet, mss, prefix=PREFIX, room=None):
    """The segments cut() yields, each copied when yielded (they are overwritten later)."""
    room = len(prefix) if room is None else room
    buf = bytearray(room) + bytearray(packet)
    csum_start = layout(packet)[0]
    out = []
    for start, end in cut(buf, room, len(buf), mss, csum_start, prefix):
        assert buf[start:start + len(prefix)] == prefix
        out.append(bytes(buf[start + len(prefix):end]))
    return out


def payload_of(size):
    return bytes((7 * i + 3) & 0xFF for i in range(size))


FLAGS = [TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_PSH | TCP_FIN, TCP_ACK | TCP_CWR | TCP_ECE | TCP_PSH,
         TCP_ACK | TCP_URG]


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("options", [b"", TIMESTAMPS, SACK_40], ids=["no-options", "timestamps", "40-bytes"])
@pytest.mark.parametrize("flags", FLAGS, ids=["ack", "psh", "psh-fin", "cwr-ece-psh", "urg"])
@pytest.mark.parametrize("mss, size", [
    (1348, 1), (1348, 1347), (1348, 1348), (1348, 1349), (1348, 2 * 1348), (1348, 2 * 1348 + 1),
    (1348, 65535 - 100), (999, 5000), (1, 7), (536, 536 * 3 - 1), (1388, 1388 * 47)])
def test_every_segment_is_what_the_kernel_puts_on_the_wire(ipv6, options, flags, mss, size):
    packet = tcp_packet(payload_of(size), 0xFFFFF000, flags, ipv6=ipv6, options=options, ident=0xFFFE, partial=True)
    if len(packet) > 65535 + (40 if ipv6 else 0):
        pytest.skip("larger than an IP packet")
    segments = cut_all(packet, mss)
    expected = kernel_segments(packet, mss)
    assert len(segments) == len(expected)
    for i, (got, want) in enumerate(zip(segments, expected)):
        # The checksum field holds the partial sum for the segment's own length (a kernel
        # or NIC completes it: NEEDS_CSUM); completed, the segment is the kernel's byte for byte.
        ip_size, _ = layout(got)
        src, dst = (got[8:24], got[24:40]) if ipv6 else (got[12:16], got[16:20])
        assert struct.unpack_from(">H", got, ip_size + 16)[0] == pseudo_sum(ipv6, src, dst, len(got) - ip_size), i
        assert complete_checksum(got) == want, i
        assert tcp_checksum_ok(want)


def test_ipv4_options_and_sequence_and_id_wrap():
    packet = tcp_packet(payload_of(4000), 2 ** 32 - 1500, TCP_ACK | TCP_PSH, ip_options=ROUTER_ALERT, ident=0xFFFF,
                        partial=True)
    segments = cut_all(packet, 1000)
    assert [complete_checksum(s) for s in segments] == kernel_segments(packet, 1000)
    assert [struct.unpack_from(">H", s, 4)[0] for s in segments] == [0xFFFF, 0, 1, 2]
    assert [struct.unpack_from(">I", s, 24 + 4)[0] for s in segments] == [2 ** 32 - 1500, 2 ** 32 - 500, 500, 1500]


def test_ecn_cwr_only_on_the_first_push_and_fin_only_on_the_last():
    flags = TCP_ACK | TCP_CWR | TCP_ECE | TCP_PSH | TCP_FIN
    segments = cut_all(tcp_packet(payload_of(3000), 1, flags, partial=True, tos=0x02), 1000)
    assert [s[20 + 13] for s in segments] == [TCP_ACK | TCP_CWR | TCP_ECE, TCP_ACK | TCP_ECE,
                                              TCP_ACK | TCP_ECE | TCP_PSH | TCP_FIN]
    assert {s[1] for s in segments} == {0x02}               # ECT(0) in every segment's TOS


def test_no_payload_byte_is_moved_each_segment_sits_in_front_of_its_payload():
    packet = tcp_packet(payload_of(5000), 1, partial=True)
    buf = bytearray(len(PREFIX)) + bytearray(packet)
    ends = []
    for start, end in cut(buf, len(PREFIX), len(buf), 1200, 20, PREFIX):
        ends.append(end)
        assert buf[start + len(PREFIX) + 52:end] == packet[52 + 1200 * (len(ends) - 1):52 + 1200 * len(ends)]
    assert ends == [len(PREFIX) + 52 + 1200 * i for i in range(1, 5)] + [len(buf)]


def test_a_packet_within_one_segment_is_left_as_it_is():
    packet = tcp_packet(payload_of(100), 5, TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR, partial=True)
    assert cut_all(packet, 1400) == [packet]
    assert cut_all(packet, 100) == [packet]


@pytest.mark.parametrize("mangle, why", [
    (lambda p: p[:30], "shorter than its TCP header"),
    (lambda p: p[:2] + struct.pack(">H", len(p) + 1) + p[4:], "total length"),
    (lambda p: p[:9] + b"\x11" + p[10:], "not TCP"),
    (lambda p: p[:32] + b"\xf0" + p[33:], "data offset"),
    (lambda p: b"\x55" + p[1:], "version"),
])
def test_headers_that_do_not_describe_the_read_are_refused(mangle, why):
    packet = mangle(tcp_packet(b"x" * 10, 1, options=b"", partial=True))
    buf = bytearray(9) + bytearray(packet)
    with pytest.raises(OffloadError):
        cut(buf, 9, len(buf), 4, 20, PREFIX)


def test_ipv6_payload_length_must_match():
    packet = bytearray(tcp_packet(b"x" * 10, 1, ipv6=True, partial=True))
    packet[5] += 1
    with pytest.raises(OffloadError):
        cut(bytearray(9) + packet, 9, 9 + len(packet), 4, 40, PREFIX)


def test_room_for_the_prefix_is_required():
    packet = tcp_packet(b"x" * 10, 1, partial=True)
    with pytest.raises(OffloadError):
        cut(bytearray(packet), 0, len(packet), 4, 20, PREFIX)


def merge(packets):
    """What coalesce.py writes for (packet, trusted) pairs: [(vnet header, body)]."""
    frames = []
    coalescer = TcpCoalescer(lambda header, body: frames.append((bytes(header), bytes(body))))
    for packet, trusted in packets:
        coalescer.add(memoryview(bytearray(packet)), trusted)
    coalescer.flush()
    return frames


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 60000), mss=st.integers(1, 1460), ipv6=st.booleans(), push=st.booleans(),
       seq=st.integers(0, 2 ** 32 - 1), ident=st.integers(0, 0xFFFF), options=st.sampled_from([b"", TIMESTAMPS]),
       trust=st.sampled_from(["all", "none", "mixed"]))
def test_split_then_merge_is_the_identity(size, mss, ipv6, push, seq, ident, options, trust):
    """coalesce.py merges what cut() made back into the super-packet the kernel handed over,
    with the same vnet header (gso_size, type, partial checksum at the same place). Trusted
    segments join as they are (partial checksum); the others have their checksum completed
    first, as a segment forwarded from elsewhere arrives, and are verified."""
    flags = TCP_ACK | (TCP_PSH if push else 0)
    packet = tcp_packet(payload_of(size), seq, flags, ipv6=ipv6, options=options, ident=ident, partial=True)
    if len(packet) > 65535:
        return
    ip_size, tcp_size = layout(packet)
    given_packets = []
    for i, segment in enumerate(cut_all(packet, mss)):
        trusted = trust == "all" or trust == "mixed" and i % 2 == 0
        if not trusted:
            segment = complete_checksum(segment)
        given_packets.append((segment, trusted))
    frames = merge(given_packets)
    if len(given_packets) == 1:
        trusted = given_packets[0][1]
        assert frames == [(partial_header(ip_size, 16), packet) if trusted else (bytes(10), complete_checksum(packet))]
        return
    assert frames == [(VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 4 if ipv6 else 1, ip_size + tcp_size, mss, ip_size,
                                     16), packet)]


def test_trusted_segments_are_merged_without_a_check_untrusted_ones_are_checked():
    """A trusted segment's partial checksum would fail verification: merging it shows that
    nothing was computed. An untrusted corrupt segment among them stays out, unchanged."""
    segments = cut_all(tcp_packet(payload_of(5000), 1, partial=True), 1000)
    bad = bytearray(complete_checksum(segments[2]))
    bad[-1] ^= 0x40
    frames = merge([(segments[0], True), (segments[1], True), (bytes(bad), False), (segments[3], True),
                    (complete_checksum(segments[4]), False)])
    assert [len(body) for _, body in frames] == [52 + 2000, len(bad), 52 + 2000]
    assert frames[1] == (bytes(10), bytes(bad))
    assert frames[0][0][0] == frames[2][0][0] == VIRTIO_NET_HDR_F_NEEDS_CSUM


def test_a_trusted_first_segment_is_not_checked_when_an_untrusted_one_joins():
    segments = cut_all(tcp_packet(payload_of(2000), 1, partial=True), 1000)
    frames = merge([(segments[0], True), (complete_checksum(segments[1]), False)])
    assert len(frames) == 1 and frames[0][0][1] == 1


@pytest.mark.parametrize("packet, header", [
    (tcp_packet(payload_of(10), 1, partial=True), partial_header(20, 16)),
    (tcp_packet(b"", 1, TCP_ACK | 2, partial=True), partial_header(20, 16)),              # SYN: never merged
    (tcp_packet(payload_of(10), 1, ipv6=True, partial=True), partial_header(40, 16)),
    (tcp_packet(payload_of(10), 1, ip_options=ROUTER_ALERT, partial=True), partial_header(24, 16)),
    (udp_packet(payload_of(10), partial=True), partial_header(20, 6)),
    (udp_packet(payload_of(10), ipv6=True, partial=True), partial_header(40, 6)),
    (bytes.fromhex("4500001c0001400040010000") + bytes(16), bytes(10)),                  # ICMP: nowhere to put it
], ids=["tcp4", "syn", "tcp6", "tcp4-options", "udp4", "udp6", "icmp"])
def test_a_trusted_packet_alone_is_written_with_needs_csum(packet, header):
    assert merge([(packet, True)]) == [(header, packet)]


# -- finishing partial checksums, and where they are ---------------------------------------
@pytest.mark.parametrize("size", [0, 1, 2, 3, 383, 384, 385, 1399, 1400, 9001])
@pytest.mark.parametrize("ipv6", [False, True])
def test_finish_checksum_completes_tcp_and_udp(size, ipv6):
    tcp = bytearray(tcp_packet(payload_of(size), 9, ipv6=ipv6, partial=True))
    finish_checksum(tcp, 40 if ipv6 else 20, 16)
    assert bytes(tcp) == tcp_packet(payload_of(size), 9, ipv6=ipv6)
    udp = bytearray(udp_packet(payload_of(size), ipv6=ipv6, partial=True))
    finish_checksum(udp, 40 if ipv6 else 20, 6)
    assert bytes(udp) == udp_packet(payload_of(size), ipv6=ipv6)


def test_a_udp_checksum_of_zero_is_sent_as_ffff():
    # Find a payload whose UDP checksum comes out 0: then the field must say 0xFFFF.
    for n in range(70000):
        payload = struct.pack(">I", n)
        if checksum(b"".join([bytes([10, 0, 1, 1, 10, 0, 1, 2]), struct.pack(">BBH", 0, 17, 12),
                              struct.pack(">HHHH", 5353, 53, 12, 0), payload])) == 0:
            break
    packet = bytearray(udp_packet(payload, partial=True))
    finish_checksum(packet, 20, 6)
    assert packet[26:28] == b"\xff\xff"


@pytest.mark.parametrize("data", [b"", b"\0\0", b"\x01", b"\xff\xff", b"\xff\xff\xff\xff", bytes(range(256)) * 9,
                                  b"\x12\x34\x56"])
def test_ones_sum_matches_rfc_1071(data):
    assert ones_sum(data) == (~checksum(data) & 0xFFFF if any(data) else 0)


def test_finish_checksum_refuses_an_offset_outside_the_packet():
    with pytest.raises(OffloadError):
        finish_checksum(bytearray(30), 20, 16)


@pytest.mark.parametrize("packet, where", [
    (tcp_packet(b"x", 1), (20, 16)),
    (tcp_packet(b"x", 1, ip_options=ROUTER_ALERT), (24, 16)),
    (tcp_packet(b"x", 1, ipv6=True), (40, 16)),
    (udp_packet(b"x"), (20, 6)),
    (udp_packet(b"x", ipv6=True), (40, 6)),
    (bytes.fromhex("4500001c0001400040010000") + bytes(16), None),     # ICMP
    (tcp_packet(b"", 1, options=b"")[:35], None),                      # cut short of the checksum
    (b"\x45" + bytes(10), None),
    (b"\x60" + bytes(30), None),
    (b"\x41" + bytes(30), None),                                       # IHL below 5
], ids=["tcp4", "tcp4-options", "tcp6", "udp4", "udp6", "icmp", "short", "tiny4", "tiny6", "bad-ihl"])
def test_checksum_layout(packet, where):
    assert checksum_layout(packet) == where


def test_headers_parse_and_build():
    assert parse_header(VNET_HDR.pack(1, 0x81, 66, 1388, 20, 16)) == (1, 1, True, 1388, 20, 16)
    assert parse_header(VNET_HDR.pack(0, 4, 0, 1200, 40, 16)) == (0, 4, False, 1200, 40, 16)
    assert partial_header(20, 16) == VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 16)


# -- asking the tun for offloads (tun.set_offloads) -------------------------------------------
class FakeIoctl:
    def __init__(self, accepts):
        self.accepts = accepts
        self.calls = []

    def __call__(self, fd, request, value):
        assert request == TUNSETOFFLOAD
        self.calls.append(value)
        if not self.accepts(value):
            raise OSError(errno.EINVAL, "Invalid argument")


NO_ECN = TUN_OFFLOADS & ~TUN_F_TSO_ECN


@pytest.mark.parametrize("accepts, granted, calls", [
    (lambda flags: True, TUN_OFFLOADS, [TUN_OFFLOADS]),
    (lambda flags: not flags & TUN_F_TSO_ECN, NO_ECN, [TUN_OFFLOADS, NO_ECN]),
    (lambda flags: flags == 0, 0, [TUN_OFFLOADS, NO_ECN, 0]),
    (lambda flags: False, 0, [TUN_OFFLOADS, NO_ECN, 0]),
], ids=["all", "no-ecn", "refused", "refused-even-zero"])
def test_offloads_fall_back_when_the_kernel_refuses(accepts, granted, calls):
    ioctl = FakeIoctl(accepts)
    assert set_offloads(7, TUN_OFFLOADS, ioctl) == granted
    assert ioctl.calls == calls


def test_no_offloads_wanted_clears_what_a_predecessor_left():
    ioctl = FakeIoctl(lambda flags: True)
    assert set_offloads(7, 0, ioctl) == 0
    assert ioctl.calls == [0]


# -- split: what to seal of one read ---------------------------------------------------------------
PARTIAL, COMPLETE = "partial", "complete"


def split_all(packet, header):
    """[(PARTIAL or COMPLETE, segment)] of one read; the read starts at 9 as the pieces may."""
    buf = bytearray(9) + bytearray(packet)
    partial, pieces = split(buf, 9, len(buf), header)
    return [(PARTIAL if partial else COMPLETE, bytes(buf[s:e])) for s, e in pieces]


def vnet(flags=0, gso_type=0, gso_size=0, csum_start=0, csum_offset=0):
    return VNET_HDR.pack(flags, gso_type, 0, gso_size, csum_start, csum_offset)


@pytest.mark.parametrize("ipv6", [False, True])
def test_split_a_super_packet_into_partial_segments(ipv6):
    packet = tcp_packet(payload_of(4000), 10, TCP_ACK | TCP_PSH, ipv6=ipv6, partial=True)
    ip_size = 40 if ipv6 else 20
    pieces = split_all(packet, vnet(1, 4 if ipv6 else 1, 1300, ip_size, 16))
    assert [p for p, _ in pieces] == [PARTIAL] * 4
    assert [complete_checksum(s) for _, s in pieces] == kernel_segments(packet, 1300)


def test_split_needs_csum_without_gso_keeps_it_partial():
    for packet, start, offset in ((tcp_packet(b"abc", 1, partial=True), 20, 16),
                                  (udp_packet(b"abc", ipv6=True, partial=True), 40, 6)):
        assert split_all(packet, vnet(1, 0, 0, start, offset)) == [(PARTIAL, packet)]


@pytest.mark.parametrize("header", [vnet(), vnet(2)], ids=["plain", "data-valid"])
def test_split_a_complete_packet_is_sealed_as_it_is(header):
    packet = tcp_packet(b"abc", 1)
    assert split_all(packet, header) == [(COMPLETE, packet)]


def test_split_completes_what_a_receiver_could_not_locate():
    """A partial checksum the receiver would look for elsewhere (here: the kernel says it
    starts 4 bytes further than the IP header) is completed here and sent complete."""
    packet = udp_packet(b"abcdefgh", partial=True)
    inner = packet[:20] + b"\0" * 4 + packet[20:]       # pretend 4 bytes of extension header
    inner = inner[:2] + struct.pack(">H", len(inner)) + inner[4:]
    (prefix, got), = split_all(inner, vnet(1, 0, 0, 24, 6))
    assert prefix == COMPLETE
    assert got[24:] == udp_packet(b"abcdefgh")[20:]       # the UDP datagram with its checksum complete


@pytest.mark.parametrize("header", [vnet(0, 1, 1300, 20, 16), vnet(1, 3, 1300, 20, 16), vnet(1, 4, 1300, 20, 16),
                                    vnet(1, 1, 1300, 20, 6)], ids=["gso-no-csum", "gso-udp", "v6-type-v4-packet",
                                                                  "wrong-offset"])
def test_split_refuses_what_it_cannot_cut(header):
    with pytest.raises(OffloadError):
        split_all(tcp_packet(payload_of(3000), 1, partial=True), header)

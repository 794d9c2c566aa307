"""coalesce.py: merged GSO packets carry exactly the segments' bytes, in order, with valid headers."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.vpn.coalesce import (PLAIN_VNET_HDR, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, TcpCoalescer,
                                        ipv4_header_checksum, segment_checksums_ok)

from .ip_packets import DST4 as B, DST6 as B6, SRC4 as A, SRC6 as A6, TIMESTAMPS, checksum


def tcp(payload, seq, flags=TCP_ACK, src=A, dst=B, sport=40000, dport=5201, options=TIMESTAMPS, ack=77, df=True,
        ident=1):
    header_size = 20 + len(options)
    tcp_header = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (header_size // 4) << 4, flags, 500, 0, 0) + options
    pseudo = src + dst + struct.pack(">BBH", 0, 6, header_size + len(payload))
    tcp_sum = checksum(pseudo + tcp_header + payload)
    tcp_header = tcp_header[:16] + struct.pack(">H", tcp_sum) + tcp_header[18:]
    total = 20 + header_size + len(payload)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000 if df else 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    return ip + tcp_header + payload




def tcp6(payload, seq, flags=TCP_ACK, sport=40000, dport=5201, options=TIMESTAMPS, ack=77, hop_limit=64):
    header_size = 20 + len(options)
    tcp_header = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (header_size // 4) << 4, flags, 500, 0, 0) + options
    pseudo = A6 + B6 + struct.pack(">IxxxB", header_size + len(payload), 6)
    tcp_sum = checksum(pseudo + tcp_header + payload)
    tcp_header = tcp_header[:16] + struct.pack(">H", tcp_sum) + tcp_header[18:]
    ip = struct.pack(">IHBB16s16s", 6 << 28, header_size + len(payload), 6, hop_limit, A6, B6)
    return ip + tcp_header + payload


def udp(payload):
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0x4000, 64, 17, 0, A, B)
    return ip + struct.pack(">HHHH", 1, 2, 8 + len(payload), 0) + payload


class Sink:
    def __init__(self):
        self.frames = []

    def __call__(self, header, body):
        self.frames.append((bytes(header), bytes(body)))


def run(packets):
    sink = Sink()
    coalescer = TcpCoalescer(sink)
    for p in packets:
        coalescer.add(memoryview(bytearray(p)))     # the caller's buffer is reused: copy semantics matter
    coalescer.flush()
    return sink.frames


def segment(header, body):
    """What the kernel does with a frame: the list of (seq, flags, payload) segments it stands for."""
    flags_field, gso_type, header_len, gso_size, csum_start, csum_offset = struct.unpack("<BBHHHH", header)
    ihl = 40 if body[0] >> 4 == 6 else (body[0] & 15) * 4
    thl = (body[ihl + 12] >> 4) * 4
    seq = struct.unpack_from(">I", body, ihl + 4)[0]
    payload = body[ihl + thl:]
    if gso_type == 0:
        return [(seq, body[ihl + 13], payload)]
    assert header_len == ihl + thl and (csum_start, csum_offset) == (ihl, 16) and flags_field == 1
    assert gso_type == (4 if ihl == 40 else 1)
    pieces = [payload[i:i + gso_size] for i in range(0, len(payload), gso_size)]
    return [(seq + i * gso_size, body[ihl + 13], piece) for i, piece in enumerate(pieces)]


def test_consecutive_segments_become_one_gso_packet():
    payloads = [b"a" * 1000, b"b" * 1000, b"c" * 1000, b"d" * 300]
    seqs = [5000, 6000, 7000, 8000]
    frames = run([tcp(p, s) for p, s in zip(payloads, seqs)])
    assert len(frames) == 1
    header, body = frames[0]
    flags, gso_type, header_len, gso_size, csum_start, csum_offset = struct.unpack("<BBHHHH", header)
    assert (flags, gso_type, header_len, gso_size, csum_start, csum_offset) == (1, 1, 52, 1000, 20, 16)
    assert struct.unpack_from(">H", body, 2)[0] == len(body) == 52 + 3300
    assert checksum(body[:20]) == 0 and ipv4_header_checksum(body[:20]) == 0
    assert body[52:] == b"".join(payloads)
    # Checksum field holds the pseudo-header sum: completing it over the segment gives a valid packet.
    pseudo = A + B + struct.pack(">BBH", 0, 6, len(body) - 20)
    tcp_part = bytearray(body[20:])
    partial = struct.unpack_from(">H", tcp_part, 16)[0]
    assert partial == (~checksum(pseudo) & 0xFFFF)
    tcp_part[16:18] = b"\0\0"
    tcp_part[16:18] = struct.pack(">H", checksum(pseudo + bytes(tcp_part)))
    assert checksum(pseudo + bytes(tcp_part)) == 0


def test_ipv6_segments_become_one_gso_packet():
    payloads = [b"a" * 1200, b"b" * 1200, b"c" * 10]
    frames = run([tcp6(p, 100 + i * 1200) for i, p in enumerate(payloads)])
    assert len(frames) == 1
    header, body = frames[0]
    assert struct.unpack("<BBHHHH", header) == (1, 4, 72, 1200, 40, 16)
    assert struct.unpack_from(">H", body, 4)[0] == len(body) - 40 == 32 + 2410
    assert body[72:] == b"".join(payloads)
    pseudo = A6 + B6 + struct.pack(">IxxxB", len(body) - 40, 6)
    assert struct.unpack_from(">H", body, 56)[0] == (~checksum(pseudo) & 0xFFFF)
    tcp_part = bytearray(body[40:])
    tcp_part[16:18] = b"\0\0"
    tcp_part[16:18] = struct.pack(">H", checksum(pseudo + bytes(tcp_part)))
    assert checksum(pseudo + bytes(tcp_part)) == 0


def test_ipv4_and_ipv6_never_merge():
    frames = run([tcp(b"a" * 100, 0), tcp6(b"b" * 100, 100)])
    assert len(frames) == 2 and all(h == PLAIN_VNET_HDR for h, _ in frames)


def test_single_segment_passes_unchanged():
    packet = tcp(b"x" * 100, 1)
    assert run([packet]) == [(PLAIN_VNET_HDR, packet)]


def test_other_packets_pass_through_in_order():
    first, second = tcp(b"1" * 500, 100), tcp(b"2" * 500, 600)
    datagram = udp(b"hello")
    syn = tcp(b"", 0, flags=TCP_SYN)
    fin = tcp(b"z", 1100, flags=TCP_FIN | TCP_ACK)
    pure_ack = tcp(b"", 1101)
    frames = run([first, second, datagram, syn, fin, pure_ack])
    assert [body for _, body in frames[1:]] == [datagram, syn, fin, pure_ack]
    assert all(header == PLAIN_VNET_HDR for header, _ in frames[1:])
    assert frames[0][1][52:] == b"1" * 500 + b"2" * 500


def test_what_does_not_continue_is_not_merged():
    base = tcp(b"a" * 100, 1000)
    cases = {
        "gap in seq": tcp(b"b" * 100, 1200),
        "other flow": tcp(b"b" * 100, 1100, sport=40001),
        "other ack": tcp(b"b" * 100, 1100, ack=78),
        "other options": tcp(b"b" * 100, 1100, options=bytes([1, 1, 8, 10]) + struct.pack(">II", 1001, 2000)),
        "larger than first": tcp(b"b" * 101, 1100),
        "no DF": tcp(b"b" * 100, 1100, df=False),
    }
    for name, other in cases.items():
        frames = run([base, other])
        assert [body for _, body in frames] == [base, other], name


def test_push_ends_the_merged_packet_and_is_kept():
    frames = run([tcp(b"a" * 100, 0), tcp(b"b" * 100, 100, flags=TCP_ACK | TCP_PSH), tcp(b"c" * 100, 200)])
    assert len(frames) == 2
    assert frames[0][1][33] & TCP_PSH and frames[0][1][52:] == b"a" * 100 + b"b" * 100
    assert frames[1][1][52:] == b"c" * 100


def test_merged_packet_stays_within_64k():
    frames = run([tcp(b"p" * 1400, i * 1400) for i in range(100)])
    assert all(len(body) <= 65535 for _, body in frames)
    assert b"".join(body[52:] for _, body in frames) == b"p" * 140000


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(1, 1500), st.booleans(), st.booleans()),
                max_size=60))
def test_segmenting_the_output_gives_back_the_input(spec):
    """Three interleaved flows (two IPv4, one IPv6), random sizes, PSH and the odd lost
    segment: after the kernel cuts each frame at gso_size, every flow's segments are the
    input's, in order."""
    next_seq = [1000, 50000, 2 ** 32 - 3000]     # the IPv6 flow wraps its sequence numbers
    packets, expected = [], {0: [], 1: [], 2: []}
    for flow, size, push, skip in spec:
        if skip:
            next_seq[flow] = (next_seq[flow] + 7) % 2 ** 32     # a lost segment: the next one does not continue
        payload = bytes([flow + 65]) * size
        flags = TCP_ACK | (TCP_PSH if push else 0)
        build = tcp6 if flow == 2 else tcp
        packets.append(build(payload, next_seq[flow], flags=flags, sport=40000 + flow))
        expected[flow].append((next_seq[flow], payload))
        next_seq[flow] = (next_seq[flow] + size) % 2 ** 32
    got = {0: [], 1: [], 2: []}
    for header, body in run(packets):
        ip_size = 40 if body[0] >> 4 == 6 else 20
        flow = struct.unpack_from(">H", body, ip_size)[0] - 40000
        got[flow].extend((seq % 2 ** 32, payload) for seq, _, payload in segment(header, body))
    assert got == expected


def test_merging_off_passes_everything_through():
    sink = Sink()
    coalescer = TcpCoalescer(sink)
    coalescer.merging = False
    packets = [tcp(b"a" * 100, 0), tcp(b"b" * 100, 100)]
    for p in packets:
        coalescer.add(p)
    coalescer.flush()
    assert sink.frames == [(PLAIN_VNET_HDR, p) for p in packets]


# -- item 10.4: segments with a bad checksum are never merged --------------------------
def corrupt(packet, offset, xor=0x01):
    bad = bytearray(packet)
    bad[offset] ^= xor
    return bytes(bad)


def merged_payloads(frames, header_size=52):
    """(is_merged, payload) per frame."""
    return [(header != PLAIN_VNET_HDR, body[header_size:]) for header, body in frames]


def test_segment_with_bad_tcp_checksum_is_written_alone_unchanged():
    packets = [tcp(bytes([65 + i]) * 1000, 1000 * i) for i in range(5)]
    bad = corrupt(packets[2], 52 + 500)                 # one payload bit flipped on the way
    frames = run(packets[:2] + [bad] + packets[3:])
    assert frames[1] == (PLAIN_VNET_HDR, bad)
    assert merged_payloads([frames[0], frames[2]]) == [(True, b"A" * 1000 + b"B" * 1000),
                                                        (True, b"D" * 1000 + b"E" * 1000)]
    assert len(frames) == 3


def test_bad_first_segment_is_written_alone_and_the_rest_merge():
    packets = [tcp(bytes([65 + i]) * 700, 700 * i) for i in range(3)]
    bad = corrupt(packets[0], 52 + 3)
    frames = run([bad] + packets[1:])
    assert frames[0] == (PLAIN_VNET_HDR, bad)
    assert merged_payloads(frames[1:]) == [(True, b"B" * 700 + b"C" * 700)]


def test_bad_ipv4_header_checksum_is_written_alone():
    packets = [tcp(b"x" * 500, 500 * i, ident=7) for i in range(3)]
    bad = corrupt(packets[1], 4)                         # IP id: not part of the merge key
    frames = run([packets[0], bad, packets[2]])
    assert [body for _, body in frames] == [packets[0], bad, packets[2]]
    assert all(header == PLAIN_VNET_HDR for header, _ in frames)


def test_bad_ipv6_segment_is_written_alone():
    packets = [tcp6(bytes([97 + i]) * 1200, 1200 * i) for i in range(4)]
    bad = corrupt(packets[3], 72 + 1199, xor=0x80)
    frames = run(packets[:3] + [bad])
    assert merged_payloads(frames[:1], 72) == [(True, b"a" * 1200 + b"b" * 1200 + b"c" * 1200)]
    assert frames[1] == (PLAIN_VNET_HDR, bad)


def test_odd_sized_segments_verify_and_merge():
    """An odd last byte is checksummed as a zero-padded word."""
    frames = run([tcp(bytes([i]) * 999, 999 * i) for i in range(3)])
    assert merged_payloads(frames) == [(True, b"\0" * 999 + b"\1" * 999 + b"\2" * 999)]


@settings(max_examples=150, deadline=None)
@given(count=st.integers(2, 8), size=st.integers(1, 1400), ipv6=st.booleans(), data=st.data())
def test_a_corrupted_byte_anywhere_keeps_its_segment_out_of_every_merge(count, size, ipv6, data):
    """Flip bits of one byte of one segment outside the fields the merge compares: that
    segment comes out alone and unchanged, every byte of every other segment is kept."""
    build, ip_size = (tcp6, 40) if ipv6 else (tcp, 20)
    packets = [build(bytes([65 + i]) * size, size * i) for i in range(count)]
    victim = data.draw(st.integers(0, count - 1), label="segment")
    # Checksummed bytes that are not part of the merge key: IPv4 id and checksum,
    # TCP window, checksum, urgent pointer, payload.
    offsets = ([4, 5, 10, 11] if not ipv6 else []) + [ip_size + o for o in (14, 15, 16, 17, 18, 19)]
    offsets += list(range(ip_size + 32, ip_size + 32 + size))
    offset = data.draw(st.sampled_from(offsets), label="offset")
    bad = corrupt(packets[victim], offset, data.draw(st.integers(1, 255), label="xor"))
    frames = run(packets[:victim] + [bad] + packets[victim + 1:])
    assert (PLAIN_VNET_HDR, bad) in frames
    kept = b"".join(body[ip_size + 32:] for header, body in frames if body != bad)
    assert kept == b"".join(p[ip_size + 32:] for i, p in enumerate(packets) if i != victim)


@pytest.mark.parametrize("size", [1, 330, 331, 332, 1400, 1484, 1485, 9000, 65000])
@pytest.mark.parametrize("ipv6", [False, True])
def test_checksums_verify_at_every_size_and_a_changed_byte_fails(size, ipv6):
    """Around where the folds start (TCP part > 384 bytes) and end (1536), and jumbo sizes."""
    packet = bytearray((tcp6 if ipv6 else tcp)(bytes(range(256)) * (size // 256) + b"\xff" * (size % 256), 7))
    assert segment_checksums_ok(memoryview(packet), ipv6)
    for offset in (len(packet) - 1, len(packet) // 2, (40 if ipv6 else 20) + 16):
        bad = corrupt(bytes(packet), offset, 0x5a)
        assert not segment_checksums_ok(memoryview(bytearray(bad)), ipv6)

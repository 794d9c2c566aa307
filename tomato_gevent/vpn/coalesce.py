"""Merge consecutive TCP segments into one GSO packet for the tun device (pure).

Why: on the receiving side most CPU goes to writing packets to the tun, one
system call and one pass through the TCP stack per 1400-byte packet. The tun
device opened with IFF_VNET_HDR accepts one "super-packet" of up to 64 KiB
with a virtio_net_hdr that says "TCP, cut into gso_size segments, checksum to
be completed"; the kernel then handles it as it handles GRO-merged packets
(wireguard-go's tun/offload_linux.go does the same).

TcpCoalescer(emit).add(packet) for every decrypted IP packet, flush() at the end
of each receive batch. emit(vnet_header, body) is called with frames to write:
  - packets that cannot be merged (not TCP with payload over IPv4 or IPv6;
    other flags than ACK/PSH; IPv4 options, fragments or no DF; IPv6 extension
    headers) pass through unchanged with a zero header, after the pending
    merged packet (order within a flow is kept);
  - a segment joins the pending packet only if it continues it exactly: same
    addresses, ports, TOS/TTL (traffic class/flow label/hop limit), ack number,
    header length and TCP options,
    seq == the next expected byte, payload not larger than the first segment's;
    a shorter segment or one with PSH ends the packet (as Linux GRO does);
  - and only if its checksums verify (TCP, and the IPv4 header): the merged packet
    gets a fresh checksum from the kernel, which must not bless a segment that
    arrived corrupt. A segment that fails is written alone, unchanged, so the
    kernel drops it as usual. The first segment is checked when a second one
    would join it: a packet that stays alone costs no check. Except a trusted
    segment (add(packet, trusted=True)): one the peer's kernel built with a
    partial checksum (offload.py), which never crossed a wire unprotected, so
    nothing is computed for it; its checksum field holds the partial sum, and
    alone it is written with NEEDS_CSUM (offload.partial_header) for the kernel
    to complete;
  - a packet of one segment is emitted as it arrived, byte for byte; a merged
    one gets a fixed-up IP length (and IPv4 checksum), PSH if any segment had
    it, and the TCP pseudo-header sum in its checksum field (the kernel
    finishes the checksum: VIRTIO_NET_HDR_F_NEEDS_CSUM). The payload bytes
    themselves are exactly the segments' payloads, concatenated.
"""
import struct

from .offload import checksum_layout, partial_header
from .vnet import (PLAIN_VNET_HDR, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
                   VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR)

MAX_IP_PACKET = 65535
IPV4_HEADER_SIZE = 20
IPV6_HEADER_SIZE = 40
TCP_CHECKSUM_OFFSET = 16
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_MERGEABLE_FLAGS = TCP_ACK | TCP_PSH

# version/IHL+TOS, total length, [id], flags/fragment, TTL, [protocol, checksum],
# addresses+ports, seq, ack, data offset, TCP flags
_HEADERS = struct.Struct(">2sH2xHB3x12sI4sBB")
_DONT_FRAGMENT = 0x4000
# IPv6: version/traffic class/flow label, payload length, next header, hop limit,
# addresses; TCP: ports, seq, ack, data offset, flags
_HEADERS6 = struct.Struct(">4sHBB32s4sI4sBB")
_U16 = struct.Struct(">H")
_IPV4_WORDS = struct.Struct(">10H")
_ADDRESSES4 = struct.Struct(">4H")      # source and destination as 16-bit words
_ADDRESSES6 = struct.Struct(">16H")


def ipv4_header_checksum(header):
    total = sum(_IPV4_WORDS.unpack_from(header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _fold(total):
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def pseudo_header_sum(header, tcp_length):
    """Folded (not complemented) sum of the IPv4/TCP pseudo header."""
    return _fold(sum(struct.unpack_from(">4H", header, 12)) + 6 + tcp_length)


def pseudo_header_sum6(header, tcp_length):
    """Folded (not complemented) sum of the IPv6/TCP pseudo header."""
    return _fold(sum(struct.unpack_from(">16H", header, 8)) + 6 + tcp_length)


# Folds before the remainder: x % 0xFFFF costs a hardware division per 30-bit digit of x
# (2 us for a 1400-byte segment), while adding x's high and low parts, split at a multiple
# of 16 bits, keeps x modulo 0xFFFF (2**16 is 1 there) for a shift, a mask and an add. Five
# folds bring a segment of up to 1536 bytes under 400 bits: 1.9 instead of 3.1 us in all.
_FOLDS = tuple((shift, (1 << shift) - 1) for shift in (6144, 3072, 1536, 768, 384))
_FOLD_ABOVE_BYTES = 384
_IPV4_HEADER_BITS = (1 << 8 * IPV4_HEADER_SIZE) - 1


def segment_checksums_ok(packet, ipv6):
    """True if the TCP checksum (and for IPv4 the header checksum) of a segment verify.

    The one's complement sum of 16-bit words is their sum modulo 0xFFFF (2**16 is 1
    there), so the TCP part is summed as one integer, in C, where summing struct-unpacked
    words costs 13 us for 1400 bytes. Read little-endian (the faster direction), each word
    is byte-swapped, i.e. multiplied by 256 modulo 0xFFFF, and an odd last byte is already
    the zero-padded word; so the big-endian pseudo-header sum is multiplied by 256 too.
    Data with a correct checksum sums to 0 modulo 0xFFFF.
    """
    if ipv6:
        tcp_length = len(packet) - IPV6_HEADER_SIZE
        total = int.from_bytes(packet[IPV6_HEADER_SIZE:], "little")
        pseudo = sum(_ADDRESSES6.unpack_from(packet, 8))
    else:
        # One integer for the whole packet: its low 20 bytes are the IPv4 header, which
        # must sum to 0 on its own, and then the whole sums like the TCP part alone.
        tcp_length = len(packet) - IPV4_HEADER_SIZE
        total = int.from_bytes(packet, "little")
        if (total & _IPV4_HEADER_BITS) % 0xFFFF:
            return False
        pseudo = sum(_ADDRESSES4.unpack_from(packet, 12))
    total += (pseudo + 6 + tcp_length) << 8         # protocol TCP, TCP length
    if tcp_length > _FOLD_ABOVE_BYTES:
        for shift, mask in _FOLDS:
            total = (total >> shift) + (total & mask)
    return total % 0xFFFF == 0


class TcpCoalescer:
    def __init__(self, emit, max_packet=MAX_IP_PACKET):
        self._emit = emit
        self._max_packet = max_packet
        self._buf = bytearray(max_packet)
        self._view = memoryview(self._buf)
        self.pending = 0            # bytes pending in _buf; 0 = nothing pending (the caller may
                                    # then write what add() would not merge past it, as add() would)
        self._key = None            # what must match for a segment to join
        self._next_seq = 0
        self._segment = 0           # payload size of the first segment = gso_size
        self._segments = 0
        self._header_size = 0
        self._ipv6 = False
        self._closed = False        # a short or PSH segment ended the packet
        self._push = False
        self._trusted = False       # the first segment's checksum is partial (offload.py)
        self.merging = True         # False: every packet passes through unchanged

    def add(self, packet, trusted=False):
        """One IP packet (a buffer valid only during the call); trusted: built by the
        peer's kernel, its checksum field holds the partial sum (see the docstring)."""
        if type(packet) is not memoryview:
            packet = memoryview(packet)
        size = packet.nbytes            # an attribute, not a len() call per packet
        mergeable = False
        if size >= 40 and packet[0] == 0x45 and packet[9] == 6 and self.merging:
            (version_tos, total_length, fragment, ttl, addresses_ports, seq, ack, data_offset,
             flags) = _HEADERS.unpack_from(packet)
            ip_size = IPV4_HEADER_SIZE
            header_size = ip_size + (data_offset >> 4) * 4
            payload = size - header_size
            mergeable = (flags | TCP_PSH == _MERGEABLE_FLAGS and fragment == _DONT_FRAGMENT
                         and total_length == size and payload > 0 and header_size >= ip_size + 20)
        elif size >= 60 and packet[0] >> 4 == 6 and packet[6] == 6 and self.merging:
            (version_tos, payload_length, _, ttl, addresses, ports, seq, ack, data_offset,
             flags) = _HEADERS6.unpack_from(packet)
            addresses_ports = addresses + ports
            ip_size = IPV6_HEADER_SIZE
            header_size = ip_size + (data_offset >> 4) * 4
            payload = size - header_size
            mergeable = (flags | TCP_PSH == _MERGEABLE_FLAGS and payload_length + ip_size == size
                         and payload > 0 and header_size >= ip_size + 20)
        if not mergeable or size > self._max_packet:
            if self.pending:
                self.flush()
            self._emit(self._alone_header(packet) if trusted else PLAIN_VNET_HDR, packet)
            return
        options_start = ip_size + 20
        key = (addresses_ports, ack, version_tos, ttl, data_offset,
               bytes(packet[options_start:header_size]) if header_size > options_start else b"")
        if (self.pending and key == self._key and seq == self._next_seq and not self._closed
                and payload <= self._segment and self.pending + payload <= self._max_packet):
            # Checksums are verified before merging, since the merged packet gets a fresh
            # one; the first segment only now, as a packet that stays alone needs none.
            if not trusted and not segment_checksums_ok(packet, ip_size == IPV6_HEADER_SIZE):
                self.flush()
                self._emit(PLAIN_VNET_HDR, packet)      # as it came: the kernel judges it
                return
            if (self._segments == 1 and not self._trusted
                    and not segment_checksums_ok(self._view[:self.pending], self._ipv6)):
                self.flush()                            # the bad first segment alone ...
                self._start(packet, size, key, seq, payload, header_size, ip_size, flags, trusted)  # ... then this
                return
            end = self.pending + payload
            self._buf[self.pending:end] = packet[header_size:]
            self.pending = end
            self._segments += 1
            self._next_seq = (seq + payload) & 0xFFFFFFFF
            if flags & TCP_PSH:
                self._push = self._closed = True
            elif payload < self._segment:
                self._closed = True
            return
        self.flush()
        self._start(packet, size, key, seq, payload, header_size, ip_size, flags, trusted)

    @staticmethod
    def _alone_header(packet):
        """The header of a trusted packet written as it is: NEEDS_CSUM where its checksum is."""
        layout = checksum_layout(packet)
        return PLAIN_VNET_HDR if layout is None else partial_header(*layout)

    def _start(self, packet, size, key, seq, payload, header_size, ip_size, flags, trusted):
        """Make packet the pending one (nothing is pending)."""
        self._buf[:size] = packet
        self.pending = size
        self._key = key
        self._next_seq = (seq + payload) & 0xFFFFFFFF
        self._segment = payload
        self._segments = 1
        self._header_size = header_size
        self._ipv6 = ip_size == IPV6_HEADER_SIZE
        self._push = self._closed = bool(flags & TCP_PSH)
        self._trusted = trusted

    def flush(self):
        size = self.pending
        if not size:
            return
        self.pending = 0
        view = self._view[:size]
        if self._segments == 1:
            if self._trusted:
                ip_size = IPV6_HEADER_SIZE if self._ipv6 else IPV4_HEADER_SIZE
                self._emit(partial_header(ip_size, TCP_CHECKSUM_OFFSET), view)
            else:
                self._emit(PLAIN_VNET_HDR, view)
            return
        buf = self._buf
        if self._ipv6:
            ip_size, gso_type = IPV6_HEADER_SIZE, VIRTIO_NET_HDR_GSO_TCPV6
            _U16.pack_into(buf, 4, size - IPV6_HEADER_SIZE)
            partial = pseudo_header_sum6(buf, size - IPV6_HEADER_SIZE)
        else:
            ip_size, gso_type = IPV4_HEADER_SIZE, VIRTIO_NET_HDR_GSO_TCPV4
            _U16.pack_into(buf, 2, size)
            buf[10] = buf[11] = 0
            _U16.pack_into(buf, 10, ipv4_header_checksum(buf))
            partial = pseudo_header_sum(buf, size - IPV4_HEADER_SIZE)
        if self._push:
            buf[ip_size + 13] |= TCP_PSH
        _U16.pack_into(buf, ip_size + TCP_CHECKSUM_OFFSET, partial)
        header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type, self._header_size, self._segment, ip_size,
                               TCP_CHECKSUM_OFFSET)
        self._emit(header, view)

"""What a tun with the kernel's offloads on hands over, and how to cut it to segments (pure).

With TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) each read returns,
behind its virtio_net_hdr (vnet.py; the kernel writes it in virtio_net_hdr_from_skb):
  - gso_type TCPV4/TCPV6 (ECN bit: the first segment carries CWR): a TCP super-packet of
    up to 64 KiB, one flow, built by this kernel with a partial checksum (NEEDS_CSUM);
    cut(...) makes the segments a NIC would put on the wire;
  - NEEDS_CSUM without GSO: one packet whose checksum field at csum_start + csum_offset
    holds the pseudo-header sum only (partial): complete it (finish_checksum), or keep
    it partial and let the next kernel complete it (vnet header partial_header(...));
  - otherwise (flags 0 or DATA_VALID) an ordinary, complete packet.
A partial checksum means the packet was built by a kernel and never crossed a wire: it
cannot be corrupt. A packet forwarded from elsewhere arrives with its checksum complete
(verified or not); GRO, which makes forwarded super-packets, verifies before it merges.

hdr_len is the length of the skb's linear part, a hint (virtio_net_hdr_from_skb); the
header length is csum_start + the TCP data offset (wireguard-go tun_linux.go does the
same). Malformed headers raise OffloadError; the caller drops the read.

split(buf, start, end, header) says what to seal of one read: (partial, pieces), pieces
being (piece_start, piece_end) pairs over buf, each one packet. partial is True when the
packets' checksum fields hold the partial sum where checksum_layout finds it (so the
receiver can find it too): the sender seals them with the "checksum partial" flag
(keypair.py). Otherwise partial is False and any partial checksum was completed here
(per byte: only for what a receiver could not locate, e.g. IPv6 extension headers).

cut(buf, start, end, gso_size, csum_start, prefix) cuts the super-packet buf[start:end]
in place, the way tcp_gso_segment / inet_gso_segment / ipv6_gso_segment do: every
segment gets the headers with IPv4 total length, id (+1 per segment) and header
checksum, or the IPv6 payload length; sequence number + i * gso_size; FIN and PSH only
on the last segment, CWR only on the first; the TCP checksum field the partial sum for
the segment's own length (the caller completes it, or a kernel does: NEEDS_CSUM). Each
segment is laid out as prefix + headers + payload directly in front of its payload, in
buf: the bytes it overwrites are the end of the previous segment, which the caller is
done with when it asks for the next. So no payload byte is copied; only headers are.
"""
import struct

from ..errors import TomatoError
from .vnet import (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
                   VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR)

# -- kernel constants (include/uapi/linux/if_tun.h, virtio_net.h) ---------------
TUNSETOFFLOAD = 0x400454D0                      # _IOW('T', 208, unsigned int)
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
TUN_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
VIRTIO_NET_HDR_GSO_ECN = 0x80

IPPROTO_TCP, IPPROTO_UDP = 6, 17
TCP_CHECKSUM_OFFSET, UDP_CHECKSUM_OFFSET = 16, 6
IPV4_HEADER_SIZE, IPV6_HEADER_SIZE, TCP_HEADER_SIZE = 20, 40, 20
TCP_FIN, TCP_PSH, TCP_CWR = 0x01, 0x08, 0x80

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class OffloadError(TomatoError):
    """A read whose virtio header does not describe a packet we can handle."""


def parse_header(header):
    """(flags, gso_type without the ECN bit, ecn, gso_size, csum_start, csum_offset) of a vnet header."""
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(header)
    return (flags, gso_type & ~VIRTIO_NET_HDR_GSO_ECN, bool(gso_type & VIRTIO_NET_HDR_GSO_ECN), gso_size,
            csum_start, csum_offset)


def partial_header(csum_start, csum_offset):
    """The vnet header that writes a packet with a partial checksum (the kernel completes it)."""
    return VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, csum_start, csum_offset)


def checksum_layout(packet):
    """(csum_start, csum_offset) of the TCP or UDP checksum of an IP packet whose transport
    header follows the IP header directly; None for anything else. The receiver of a
    packet marked "checksum partial" finds the field this way, so the sender marks only
    packets for which this answer equals what its kernel said."""
    size = len(packet)
    if size < IPV4_HEADER_SIZE:
        return None
    version = packet[0] >> 4
    if version == 4:
        start, protocol = (packet[0] & 0x0F) * 4, packet[9]
        if start < IPV4_HEADER_SIZE:
            return None
    elif version == 6 and size >= IPV6_HEADER_SIZE:
        start, protocol = IPV6_HEADER_SIZE, packet[6]
    else:
        return None
    if protocol == IPPROTO_TCP:
        offset = TCP_CHECKSUM_OFFSET
    elif protocol == IPPROTO_UDP:
        offset = UDP_CHECKSUM_OFFSET
    else:
        return None
    if start + offset + 2 > size:
        return None
    return start, offset


def ones_sum(data):
    """One's complement sum of data as big-endian 16-bit words (odd end zero-padded), folded
    to 1..0xFFFF (0 only for all-zero data). Summed as one integer, in C (see
    coalesce.segment_checksums_ok for the little-endian trick)."""
    total = int.from_bytes(data, "little") % 0xFFFF
    if total == 0:
        return 0xFFFF if any(data) else 0
    return total * 256 % 0xFFFF or 0xFFFF


def finish_checksum(packet, csum_start, csum_offset):
    """Complete a partial checksum in place (what a NIC does for NEEDS_CSUM); per byte, so
    only for what cannot be handed on partial. A UDP checksum that comes out 0 is sent
    as 0xFFFF (0 means "none" there)."""
    at = csum_start + csum_offset
    if csum_start >= len(packet) or at + 2 > len(packet):
        raise OffloadError("checksum offset %d+%d outside a %d-byte packet" % (csum_start, csum_offset, len(packet)))
    value = ~ones_sum(memoryview(packet)[csum_start:]) & 0xFFFF
    if value == 0 and csum_offset == UDP_CHECKSUM_OFFSET:
        value = 0xFFFF
    _U16.pack_into(packet, at, value)


def complete_partial(packet):
    """Complete the checksum of a packet received with a partial one, where checksum_layout
    finds it (a receiver whose tun cannot take NEEDS_CSUM); a packet without one is left."""
    layout = checksum_layout(packet)
    if layout is not None:
        finish_checksum(packet, *layout)


def split(buf, start, end, header):
    """(partial, pieces) of the packet buf[start:end] read behind the vnet header `header`
    (see the module docstring)."""
    flags, gso_type, _ecn, gso_size, csum_start, csum_offset = parse_header(header)
    if not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            raise OffloadError("super-packet without a partial checksum")
        return False, ((start, end),)
    partial = checksum_layout(memoryview(buf)[start:end]) == (csum_start, csum_offset)
    if gso_type == VIRTIO_NET_HDR_GSO_NONE:
        if not partial:
            finish_checksum(memoryview(buf)[start:end], csum_start, csum_offset)
        return partial, ((start, end),)
    if gso_type not in (VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6) or csum_offset != TCP_CHECKSUM_OFFSET:
        raise OffloadError("super-packet of gso_type %d" % gso_type)
    if (gso_type == VIRTIO_NET_HDR_GSO_TCPV6) != (buf[start] >> 4 == 6):
        raise OffloadError("gso_type %d for an IPv%d packet" % (gso_type, buf[start] >> 4))
    pieces = cut(buf, start, end, gso_size, csum_start)
    return partial, (pieces if partial else _completed(buf, pieces, csum_start))


def _completed(buf, pieces, csum_start):
    view = memoryview(buf)
    for piece_start, piece_end in pieces:
        finish_checksum(view[piece_start:piece_end], csum_start, TCP_CHECKSUM_OFFSET)
        yield piece_start, piece_end


def _fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def segment_count(payload_size, gso_size):
    return -(-payload_size // gso_size)


def cut(buf, start, end, gso_size, csum_start, prefix=b""):
    """Cut the TCP super-packet buf[start:end] (a bytearray) into segments of gso_size
    payload bytes; a generator of (seg_start, seg_end): buf[seg_start:seg_end] is prefix +
    one segment, valid until the next one is asked for (see the module docstring).
    start must be >= len(prefix). Raises OffloadError (before yielding anything) for
    headers that do not describe a TCP packet of that length."""
    size = end - start
    pre = len(prefix)
    if start < pre or size < IPV4_HEADER_SIZE + TCP_HEADER_SIZE or gso_size <= 0:
        raise OffloadError("super-packet too short (%d bytes) or gso_size %d" % (size, gso_size))
    version = buf[start] >> 4
    ipv6 = version == 6
    if version == 4:
        ip_size = (buf[start] & 0x0F) * 4
        if csum_start != ip_size or buf[start + 9] != IPPROTO_TCP:
            raise OffloadError("IPv4 super-packet that is not TCP right after the IP header")
        if _U16.unpack_from(buf, start + 2)[0] != size:
            raise OffloadError("IPv4 total length is not the read's length")
    elif ipv6:
        if csum_start < IPV6_HEADER_SIZE or _U16.unpack_from(buf, start + 4)[0] != size - IPV6_HEADER_SIZE:
            raise OffloadError("IPv6 super-packet whose payload length is not the read's")
    else:
        raise OffloadError("super-packet of IP version %d" % version)
    tcp = start + csum_start
    if tcp + TCP_HEADER_SIZE > end:
        raise OffloadError("super-packet shorter than its TCP header")
    header_size = csum_start + (buf[tcp + 12] >> 4) * 4
    if header_size < csum_start + TCP_HEADER_SIZE or start + header_size > end:
        raise OffloadError("TCP data offset outside the super-packet")
    return _segments(buf, start, end, gso_size, csum_start, header_size, ipv6, prefix)


def _segments(buf, start, end, gso_size, csum_start, header_size, ipv6, prefix):
    pre = len(prefix)
    payload = end - start - header_size
    last = max(segment_count(payload, gso_size), 1) - 1
    if last == 0:               # nothing to cut: the packet as it is (the kernel sends it so)
        buf[start - pre:start] = prefix
        yield start - pre, end
        return
    tcp = pre + csum_start      # offsets inside a template
    template = bytearray(prefix)
    template += buf[start:start + header_size]
    seq = _U32.unpack_from(template, tcp + 4)[0]
    flags = template[tcp + 13]
    if ipv6:
        address_sum = sum(struct.unpack_from(">16H", template, pre + 8))
    else:
        address_sum = sum(struct.unpack_from(">4H", template, pre + 12))
        ident = _U16.unpack_from(template, pre + 4)[0]
        middle_bytes = bytes(template[pre + 6:pre + 10])     # flags/fragment, TTL, protocol
        template[pre + 10:pre + 12] = b"\0\0"
        # The IP header's sum without id and checksum, for each segment's length.
        template[pre + 4:pre + 6] = b"\0\0"

    def headers(segment_payload, tcp_flags):
        """The template of a segment with segment_payload bytes and these TCP flags; for
        IPv4 also the header's sum without the id."""
        head = bytearray(template)
        tcp_length = header_size - csum_start + segment_payload
        if ipv6:
            _U16.pack_into(head, pre + 4, header_size - IPV6_HEADER_SIZE + segment_payload)
            ip_sum = 0
        else:
            _U16.pack_into(head, pre + 2, header_size + segment_payload)
            ip_sum = _fold(sum(struct.unpack_from(">%dH" % (csum_start // 2), head, pre)))
        head[tcp + 13] = tcp_flags
        _U16.pack_into(head, tcp + TCP_CHECKSUM_OFFSET, _fold(address_sum + IPPROTO_TCP + tcp_length))
        return bytes(head), ip_sum

    inner = flags & ~(TCP_FIN | TCP_PSH | TCP_CWR)
    first_head, first_sum = headers(gso_size, flags & ~(TCP_FIN | TCP_PSH))
    middle_head, middle_sum = headers(gso_size, inner)
    last_payload = payload - last * gso_size
    last_head, last_sum = headers(last_payload, flags & ~TCP_CWR)
    head_size = pre + header_size
    payload_at = start + header_size
    if ipv6:
        seq_at = tcp + 4
        pack_seq = _U32.pack_into
        for i in range(last + 1):
            at = payload_at - head_size
            buf[at:payload_at] = first_head if i == 0 else middle_head if i < last else last_head
            pack_seq(buf, at + seq_at, (seq + i * gso_size) & 0xFFFFFFFF)
            payload_at += gso_size
            yield at, payload_at if i < last else end
        return
    # IPv4: one pack per segment, from the IP id to the TCP sequence number; what lies
    # between (flags/fragment/TTL/protocol, the checksum's neighbours) is constant.
    id_at = pre + 4
    between = bytes(template[pre + 12:tcp + 4])         # addresses, IP options, ports
    pack_ids = struct.Struct(">H4sH%dsI" % len(between)).pack_into
    for i in range(last + 1):
        at = payload_at - head_size
        if i == 0:
            head, ip_sum = first_head, first_sum
        elif i < last:
            head, ip_sum = middle_head, middle_sum
        else:
            head, ip_sum = last_head, last_sum
        buf[at:payload_at] = head
        segment_id = (ident + i) & 0xFFFF
        total = ip_sum + segment_id                     # both below 2**16: one fold is enough
        pack_ids(buf, at + id_at, segment_id, middle_bytes, ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF, between,
                 (seq + i * gso_size) & 0xFFFFFFFF)
        payload_at += gso_size
        yield at, payload_at if i < last else end

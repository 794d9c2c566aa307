"""MSS clamping, as OpenVPN's --mssfix (pure): TCP SYNs crossing the tunnel get an MSS that fits it.

Why: a TCP endpoint announces in its SYN the largest segment it accepts, from its own
interface's MTU (1460 on Ethernet). Through the tunnel, whose MTU is smaller, such
segments are too big: they rely on path-MTU discovery, which firewalls that drop ICMP
break. Lowering the MSS option of every SYN and SYN-ACK that crosses the tunnel makes
both ends send segments that fit from the start.

  ceilings(packet_size) -> (mss4, mss6)   the largest MSS for an IPv4 / IPv6 packet of
                                          packet_size bytes
  ceilings_for(mss_fix, device_mtu)       those of --mss-fix: None (the default) the
                                          device's MTU, 0 off (None), N packets of N bytes
  clamp_mss(packet, mss4, mss6) -> bool   lower the MSS option of a TCP SYN in place

What is touched: an IPv4 packet (any header length, first fragment only) or an IPv6
packet whose next header is TCP (extension headers are left alone, as OpenVPN does),
carrying a TCP header with SYN set and an MSS option (kind 2, length 4) above the
ceiling. The MSS is only ever lowered, never raised, and the TCP checksum is updated
incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), also for an MSS field at an
odd offset (RFC 1071: a byte-swapped word adds up byte-swapped). With
fix_checksum=False (a packet whose checksum field holds a partial sum that the kernel
completes later, VIRTIO_NET_HDR_F_NEEDS_CSUM) only the value changes.
Refused (returns False, never raises): anything truncated or malformed (option lengths
0, 1 or past the header, a data offset past the packet, a length field that disagrees
with the buffer), non-first fragments, packets without SYN or without an MSS option.
"""
import struct

IPV4_HEADER_SIZE = 20
IPV6_HEADER_SIZE = 40
TCP_HEADER_SIZE = 20
IPV4_TCP_OVERHEAD = IPV4_HEADER_SIZE + TCP_HEADER_SIZE     # MSS = packet size - 40
IPV6_TCP_OVERHEAD = IPV6_HEADER_SIZE + TCP_HEADER_SIZE     # MSS = packet size - 60
PROTOCOL_TCP = 6
TCP_SYN = 0x02
TCP_FLAGS_OFFSET = 13
TCP_CHECKSUM_OFFSET = 16
OPTION_END, OPTION_NOP, OPTION_MSS = 0, 1, 2
OPTION_MSS_SIZE = 4
MIN_MSS = 48                    # Linux's tcp_min_snd_mss: a lower ceiling would be raised again anyway
MIN_MSS_FIX = MIN_MSS + IPV4_TCP_OVERHEAD   # the smallest --mss-fix N that means something
FRAGMENT_OFFSET_MASK = 0x1FFF

# Offsets of the SYN test for the common case, an IPv4 header without options:
# the first byte is 0x45 and the TCP flags are at 20 + 13.
SYN_FLAGS_OFFSET_IPV4 = IPV4_HEADER_SIZE + TCP_FLAGS_OFFSET
SYN_FLAGS_OFFSET_IPV6 = IPV6_HEADER_SIZE + TCP_FLAGS_OFFSET

_U16 = struct.Struct(">H")


def ceilings(packet_size):
    """(IPv4 MSS, IPv6 MSS) for TCP packets of at most packet_size bytes, at least MIN_MSS."""
    return max(packet_size - IPV4_TCP_OVERHEAD, MIN_MSS), max(packet_size - IPV6_TCP_OVERHEAD, MIN_MSS)


def ceilings_for(mss_fix, device_mtu):
    """The ceilings of --mss-fix: None = the device MTU's, 0 = no clamping (None), N = N's.
    device_mtu() is asked only when needed."""
    if mss_fix == 0:
        return None
    return ceilings(device_mtu() if mss_fix is None else mss_fix)


def may_be_syn(packet):
    """The cheap test before clamp_mss: False for most packets that are no TCP SYN, at the
    cost of two byte reads for IPv4 without options (the common case). True is a maybe."""
    first = packet[0]
    if first == 0x45:
        return len(packet) > SYN_FLAGS_OFFSET_IPV4 and bool(packet[SYN_FLAGS_OFFSET_IPV4] & TCP_SYN)
    if first >> 4 == 6:
        return len(packet) > SYN_FLAGS_OFFSET_IPV6 and bool(packet[SYN_FLAGS_OFFSET_IPV6] & TCP_SYN)
    return first >> 4 == 4          # IPv4 with options: rare, let clamp_mss look


def update_checksum(checksum, old, new):
    """RFC 1624 eqn. 3: the checksum after a 16-bit word changed from old to new."""
    total = (~checksum & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _swap(word):
    return ((word & 0xFF) << 8) | (word >> 8)


def _tcp_start(packet, size, mss4, mss6):
    """(offset of the TCP header, ceiling) of a TCP packet that may carry a SYN, else None."""
    if size < 1:
        return None
    version = packet[0] >> 4
    if version == 4:
        header = (packet[0] & 0x0F) * 4
        if (header < IPV4_HEADER_SIZE or size < header + TCP_HEADER_SIZE or packet[9] != PROTOCOL_TCP
                or _U16.unpack_from(packet, 2)[0] != size or _U16.unpack_from(packet, 6)[0] & FRAGMENT_OFFSET_MASK):
            return None
        return header, mss4
    if version == 6:
        if (size < IPV6_HEADER_SIZE + TCP_HEADER_SIZE or packet[6] != PROTOCOL_TCP
                or _U16.unpack_from(packet, 4)[0] + IPV6_HEADER_SIZE != size):
            return None
        return IPV6_HEADER_SIZE, mss6
    return None


def clamp_mss(packet, mss4, mss6, fix_checksum=True):
    """Lower the MSS option of the TCP SYN in packet (a writable buffer holding exactly one
    IP packet) to mss4 (IPv4) or mss6 (IPv6) if it is above; True if packet changed."""
    size = len(packet)
    found = _tcp_start(packet, size, mss4, mss6)
    if found is None:
        return False
    tcp, ceiling = found
    if not packet[tcp + TCP_FLAGS_OFFSET] & TCP_SYN:
        return False
    end = tcp + (packet[tcp + 12] >> 4) * 4
    if end < tcp + TCP_HEADER_SIZE or end > size:
        return False
    changed = False
    i = tcp + TCP_HEADER_SIZE
    while i < end:
        kind = packet[i]
        if kind == OPTION_END:
            break
        if kind == OPTION_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        length = packet[i + 1]
        if length < 2 or i + length > end:
            break                               # malformed: leave the rest alone
        if kind == OPTION_MSS and length == OPTION_MSS_SIZE:
            field = i + 2
            mss = _U16.unpack_from(packet, field)[0]
            if mss > ceiling:
                _U16.pack_into(packet, field, ceiling)
                if fix_checksum:
                    checksum_at = tcp + TCP_CHECKSUM_OFFSET
                    odd = (field - tcp) & 1
                    old, new = (_swap(mss), _swap(ceiling)) if odd else (mss, ceiling)
                    _U16.pack_into(packet, checksum_at, update_checksum(_U16.unpack_from(packet, checksum_at)[0],
                                                                         old, new))
                changed = True
        i += length
    return changed


__all__ = ["ceilings", "ceilings_for", "clamp_mss", "may_be_syn", "update_checksum", "MIN_MSS"]

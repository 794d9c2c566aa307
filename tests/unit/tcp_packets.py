"""IPv4/IPv6 TCP packets with valid checksums, for the MSS clamping tests (shared helper)."""
import ipaddress
import struct

SRC4, DST4 = ipaddress.ip_address("10.0.1.1").packed, ipaddress.ip_address("10.0.1.2").packed
SRC6, DST6 = ipaddress.ip_address("fd01::1").packed, ipaddress.ip_address("fd01::2").packed
SYN, ACK = 0x02, 0x10

LINUX_SYN_OPTIONS = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01" "030307")  # MSS 1460 first


def mss_option(value):
    return struct.pack(">BBH", 2, 4, value)


def ones_complement_sum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_segment(options=b"", flags=SYN, payload=b"", data_offset=None):
    options += b"\0" * (-len(options) % 4)
    offset = data_offset if data_offset is not None else 5 + len(options) // 4
    return struct.pack(">HHIIBBHHH", 40000, 443, 1, 0, offset << 4, flags, 64240, 0, 0) + options + payload


def with_tcp_checksum(packet, tcp_start, pseudo):
    packet = bytearray(packet)
    packet[tcp_start + 16:tcp_start + 18] = b"\0\0"
    checksum = ~ones_complement_sum(pseudo + bytes(packet[tcp_start:])) & 0xFFFF
    struct.pack_into(">H", packet, tcp_start + 16, checksum)
    return packet


def ipv4(segment, protocol=6, ip_options=b"", fragment=0x4000, total=None):
    header_size = 20 + len(ip_options)
    header = struct.pack(">BBHHHBBH4s4s", 0x40 | header_size // 4, 0, total or header_size + len(segment), 1,
                         fragment, 64, protocol, 0, SRC4, DST4) + ip_options
    pseudo = SRC4 + DST4 + struct.pack(">BBH", 0, protocol, len(segment))
    return with_tcp_checksum(header + segment, header_size, pseudo)


def ipv6(segment, next_header=6):
    header = struct.pack(">IHBB16s16s", 0x60000000, len(segment), next_header, 64, SRC6, DST6)
    pseudo = SRC6 + DST6 + struct.pack(">II", len(segment), 6)
    return with_tcp_checksum(header + segment, 40, pseudo)


def tcp_checksum_ok(packet):
    """Full recomputation over the pseudo header and the whole segment."""
    packet = bytes(packet)
    if packet[0] >> 4 == 4:
        start = (packet[0] & 15) * 4
        pseudo = packet[12:20] + struct.pack(">BBH", 0, 6, len(packet) - start)
    else:
        start = 40
        pseudo = packet[8:40] + struct.pack(">II", len(packet) - 40, 6)
    return ones_complement_sum(pseudo + packet[start:]) == 0xFFFF


def mss_values(packet):
    """Every MSS option value in packet's TCP header, up to the first malformed option."""
    start = (packet[0] & 15) * 4 if packet[0] >> 4 == 4 else 40
    end, i, found = min(start + (packet[start + 12] >> 4) * 4, len(packet)), start + 20, []
    while i < end and packet[i] != 0:
        if packet[i] == 1:
            i += 1
            continue
        if i + 1 >= end or packet[i + 1] < 2 or i + packet[i + 1] > end:
            break
        if packet[i] == 2 and packet[i + 1] == 4:
            found.append(struct.unpack_from(">H", packet, i + 2)[0])
        i += packet[i + 1]
    return found

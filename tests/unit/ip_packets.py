"""IP/TCP packets built and segmented the slow, obvious way: the reference the offload tests
compare vpn/offload.py and vpn/coalesce.py against (written from RFC 791/793/8200 and the
kernel's tcp_gso_segment, not from the code under test)."""
import struct

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = 1, 2, 4, 8, 16, 32, 64, 128
SRC4, DST4 = bytes([10, 0, 1, 1]), bytes([10, 0, 1, 2])
SRC6, DST6 = bytes.fromhex("fd000000000000000000000000000001"), bytes.fromhex("fd000000000000000000000000000002")
TIMESTAMPS = bytes([1, 1, 8, 10]) + struct.pack(">II", 1000, 2000)
SACK_40 = bytes([1, 1, 8, 10]) + struct.pack(">II", 1, 2) + bytes([1, 1, 5, 26]) + bytes(range(24))   # 40 bytes
ROUTER_ALERT = bytes([148, 4, 0, 0])                    # a 4-byte IPv4 option: IHL 6


def checksum(data):
    """RFC 1071, word by word."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(ipv6, src, dst, length, protocol=6):
    if ipv6:
        return src + dst + struct.pack(">IxxxB", length, protocol)
    return src + dst + struct.pack(">BBH", 0, protocol, length)


def pseudo_sum(ipv6, src, dst, length, protocol=6):
    """The folded, uncomplemented pseudo-header sum: what a partial checksum field holds."""
    return ~checksum(pseudo_header(ipv6, src, dst, length, protocol)) & 0xFFFF


def tcp_packet(payload, seq, flags=TCP_ACK, ipv6=False, sport=40000, dport=5201, options=TIMESTAMPS, ack=77,
               ident=1, ip_options=b"", tos=0, partial=False, window=500):
    """An IPv4 (DF) or IPv6 TCP packet. partial: the TCP checksum field holds the pseudo-header
    sum (as a kernel hands it over with NEEDS_CSUM) instead of the checksum."""
    src, dst = (SRC6, DST6) if ipv6 else (SRC4, DST4)
    header_size = 20 + len(options)
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (header_size // 4) << 4, flags, window, 0, 0) + options
    length = header_size + len(payload)
    if partial:
        value = pseudo_sum(ipv6, src, dst, length)
    else:
        value = checksum(pseudo_header(ipv6, src, dst, length) + tcp + payload)
    tcp = tcp[:16] + struct.pack(">H", value) + tcp[18:]
    if ipv6:
        ip = struct.pack(">IHBB16s16s", 6 << 28 | tos << 20, length, 6, 64, src, dst)
    else:
        ihl = (20 + len(ip_options)) // 4
        ip = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + length, ident, 0x4000, 64, 6, 0, src, dst)
        ip += ip_options
        ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    return ip + tcp + payload


def udp_packet(payload, ipv6=False, partial=False):
    src, dst = (SRC6, DST6) if ipv6 else (SRC4, DST4)
    length = 8 + len(payload)
    udp = struct.pack(">HHHH", 5353, 53, length, 0)
    value = pseudo_sum(ipv6, src, dst, length, 17) if partial else checksum(pseudo_header(ipv6, src, dst, length, 17)
                                                                            + udp + payload) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", value)
    if ipv6:
        return struct.pack(">IHBB16s16s", 6 << 28, length, 17, 64, src, dst) + udp + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 17, 0, src, dst)
    return ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:] + udp + payload


def layout(packet):
    """(ip header size, tcp header size) of a TCP packet."""
    ip_size = 40 if packet[0] >> 4 == 6 else (packet[0] & 15) * 4
    return ip_size, (packet[ip_size + 12] >> 4) * 4


def kernel_segments(packet, mss):
    """The segments tcp_gso_segment + inet_gso_segment/ipv6_gso_segment make of a
    super-packet, each with complete checksums, as they would go on a wire."""
    ipv6 = packet[0] >> 4 == 6
    ip_size, tcp_size = layout(packet)
    header_size = ip_size + tcp_size
    payload = packet[header_size:]
    chunks = [payload[i:i + mss] for i in range(0, len(payload), mss)] or [b""]
    if len(chunks) == 1:
        return [complete_checksum(packet)]
    seq = struct.unpack_from(">I", packet, ip_size + 4)[0]
    ident = struct.unpack_from(">H", packet, 4)[0]
    src, dst = (packet[8:24], packet[24:40]) if ipv6 else (packet[12:16], packet[16:20])
    out = []
    for i, chunk in enumerate(chunks):
        ip = bytearray(packet[:ip_size])
        if ipv6:
            struct.pack_into(">H", ip, 4, tcp_size + len(chunk))
        else:
            struct.pack_into(">HH", ip, 2, header_size + len(chunk), (ident + i) & 0xFFFF)
            struct.pack_into(">H", ip, 10, 0)
            struct.pack_into(">H", ip, 10, checksum(ip))
        tcp = bytearray(packet[ip_size:header_size])
        struct.pack_into(">I", tcp, 4, (seq + i * mss) % 2 ** 32)
        if i != len(chunks) - 1:
            tcp[13] &= ~(TCP_FIN | TCP_PSH)
        if i != 0:
            tcp[13] &= ~TCP_CWR
        struct.pack_into(">H", tcp, 16, 0)
        struct.pack_into(">H", tcp, 16, checksum(pseudo_header(ipv6, src, dst, tcp_size + len(chunk)) + tcp + chunk))
        out.append(bytes(ip + tcp + chunk))
    return out


def complete_checksum(packet):
    """A packet whose TCP checksum field holds the partial (pseudo-header) sum, completed as
    a NIC completes it: the one's complement of the sum from the TCP header on."""
    ip_size, _ = layout(packet)
    out = bytearray(packet)
    struct.pack_into(">H", out, ip_size + 16, checksum(out[ip_size:]))
    return bytes(out)


def tcp_checksum_ok(packet):
    ipv6 = packet[0] >> 4 == 6
    ip_size, _ = layout(packet)
    src, dst = (packet[8:24], packet[24:40]) if ipv6 else (packet[12:16], packet[16:20])
    ok = checksum(pseudo_header(ipv6, src, dst, len(packet) - ip_size) + packet[ip_size:]) == 0
    return ok and (ipv6 or checksum(packet[:ip_size]) == 0)

"""The ICMP echo codec: checksum vectors, building, parsing v4/v6 replies and errors, bad input."""
import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.netutil import internet_checksum
from tomato_gevent.ping import icmp
from tomato_gevent.ping.icmp import EchoReply, IcmpError, LocalError

PAYLOAD = icmp.make_payload(56)


# -- helpers: packets as a remote host / the kernel would produce them ----------
def with_checksum(message):
    message = bytes(message[:2]) + b"\0\0" + bytes(message[4:])
    return message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]


def echo_reply(version, ident, seq, payload=PAYLOAD, checksum_ok=True):
    kind = icmp.ECHO_REPLY_TYPE[version]
    message = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    if version == 4 and checksum_ok:
        message = with_checksum(message)
    return message


def ipv4_header(protocol, source="10.9.0.1", destination="10.9.0.2", ttl=64, payload_size=0, ihl=5):
    options = b"\x01" * ((ihl - 5) * 4)  # NOP options
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + payload_size, 0, 0, ttl, protocol, 0,
                         ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(destination).packed)
    return header + options


def ipv6_header(next_header, source="fd00::1", destination="fd00::2", payload_size=0):
    return struct.pack("!IHBB16s16s", 6 << 28, payload_size, next_header, 64,
                       ipaddress.IPv6Address(source).packed, ipaddress.IPv6Address(destination).packed)


def icmp_error(version, kind, code, quote, rest=0):
    message = struct.pack("!BBHI", kind, code, 0, rest) + quote
    return with_checksum(message) if version == 4 else message


def quoted_request(version, ident, seq, payload=PAYLOAD[:8]):
    request = icmp.build_echo_request(version, ident, seq, payload)
    if version == 4:
        return ipv4_header(icmp.IPPROTO_ICMP, "10.9.0.2", "10.9.0.7", payload_size=len(request)) + request
    return ipv6_header(icmp.IPPROTO_ICMPV6, "fd00::2", "fd00::7", payload_size=len(request)) + request


# -- checksum ------------------------------------------------------------------
def test_checksum_rfc1071_example():
    # RFC 1071 section 3: the one's complement sum of these bytes is 0xddf2.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2 & 0xFFFF) == 0x220D


def test_checksum_odd_length_pads_with_zero():
    assert internet_checksum(b"\x01") == internet_checksum(b"\x01\x00") == 0xFEFF


def test_checksum_end_around_carry():
    assert internet_checksum(b"\xff\xff\x00\x01") == 0xFFFE  # 0xffff + 1 = 0x10000 -> 0x0001


def test_checksum_of_a_checksummed_message_is_zero():
    assert internet_checksum(icmp.build_echo_request(4, 0x1234, 1, PAYLOAD)) == 0


@given(st.binary(max_size=300))
def test_checksum_verifies_any_message(data):
    message = with_checksum(b"\x08\x00\x00\x00" + data)
    assert internet_checksum(message) == 0


# -- building ------------------------------------------------------------------
def test_build_echo_request_v4_vector():
    # 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364 = 0xdefb, complement 0x2104
    assert icmp.build_echo_request(4, 0x1234, 1, b"abcd") == bytes.fromhex("080021041234000161626364")


def test_build_echo_request_v6_leaves_checksum_to_the_kernel():
    assert icmp.build_echo_request(6, 0x1234, 0xBEEF, b"xy") == bytes.fromhex("800000001234beef7879")


def test_build_rejects_unknown_version():
    with pytest.raises(ValueError):
        icmp.build_echo_request(5, 1, 1, b"")


def test_make_payload_is_a_fixed_pattern():
    assert icmp.make_payload(3) == b"\x00\x01\x02"
    assert len(icmp.make_payload(300)) == 300


# -- parsing replies -------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 6])
def test_parse_echo_reply(version):
    message = icmp.parse_icmp_message(version, echo_reply(version, 0xABCD, 7))
    assert message == EchoReply(0xABCD, 7, PAYLOAD)
    assert message.size == 64


@given(version=st.sampled_from([4, 6]), ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF),
       payload=st.binary(max_size=200))
def test_reply_to_a_built_request_parses_back(version, ident, seq, payload):
    request = icmp.build_echo_request(version, ident, seq, payload)
    reply = bytes([icmp.ECHO_REPLY_TYPE[version]]) + request[1:]
    if version == 4:
        reply = with_checksum(reply)
    assert icmp.parse_icmp_message(version, reply) == EchoReply(ident, seq, payload)


def test_parse_ipv4_packet_strips_the_header_and_reads_ttl_and_source():
    reply = echo_reply(4, 1, 2)
    source, ttl, message = icmp.parse_ipv4_packet(ipv4_header(1, "10.9.0.7", ttl=57, payload_size=len(reply)) + reply)
    assert (source, ttl, message) == (ipaddress.IPv4Address("10.9.0.7"), 57, reply)


def test_parse_ipv4_packet_with_options():
    reply = echo_reply(4, 1, 2)
    _, _, message = icmp.parse_ipv4_packet(ipv4_header(1, ihl=7) + reply)
    assert message == reply


@pytest.mark.parametrize("packet, reason", [
    (b"", "truncated IPv4 header"),
    (ipv4_header(1)[:19], "truncated IPv4 header"),
    (b"\x60" + ipv4_header(1)[1:], "not an IPv4 packet"),
    (b"\x44" + ipv4_header(1)[1:], "bad IPv4 header length"),
    (b"\x4f" + ipv4_header(1)[1:] + b"\0" * 8, "bad IPv4 header length"),  # claims 60 bytes
    (ipv4_header(17) + b"\0" * 8, "not ICMP"),
], ids=["empty", "19-bytes", "version-6", "ihl-4", "ihl-past-end", "udp"])
def test_parse_ipv4_packet_rejects(packet, reason):
    with pytest.raises(BadPacket, match=reason):
        icmp.parse_ipv4_packet(packet)


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("size", [0, 1, 7])
def test_truncated_icmp_header_is_bad(version, size):
    with pytest.raises(BadPacket, match="truncated ICMP header"):
        icmp.parse_icmp_message(version, echo_reply(version, 1, 1)[:size])


def test_bad_ipv4_checksum_is_bad():
    reply = bytearray(echo_reply(4, 1, 1))
    reply[-1] ^= 0xFF
    with pytest.raises(BadPacket, match="checksum"):
        icmp.parse_icmp_message(4, bytes(reply))


def test_truncated_reply_payload_still_parses_and_keeps_what_arrived():
    # A reply cut short is still a reply; the tracker notices the payload differs.
    reply = icmp.parse_icmp_message(6, echo_reply(6, 1, 1)[:20])
    assert reply.payload == PAYLOAD[:12]


@pytest.mark.parametrize("version, message", [
    (4, icmp.build_echo_request(4, 1, 1, PAYLOAD)),  # our own request, seen by a raw socket
    (6, icmp.build_echo_request(6, 1, 1, PAYLOAD)),
    (4, with_checksum(struct.pack("!BBHI", icmp.ICMP_REDIRECT, 1, 0, 0) + quoted_request(4, 1, 1))),
    (4, with_checksum(struct.pack("!BBHI", 13, 0, 0, 0) + b"\0" * 12)),  # timestamp request
    (6, struct.pack("!BBHI", 134, 0, 0, 0) + b"\0" * 8),  # router advertisement
    (6, struct.pack("!BBHI", 135, 0, 0, 0) + b"\0" * 16),  # neighbour solicitation
])
def test_messages_not_about_echo_are_none(version, message):
    assert icmp.parse_icmp_message(version, message) is None


def test_version_must_be_4_or_6():
    with pytest.raises(ValueError):
        icmp.parse_icmp_message(5, echo_reply(4, 1, 1))


# -- parsing ICMP errors (raw sockets: the quote names the request) -----------------
@pytest.mark.parametrize("version, kind, code, destination, reason", [
    (4, 3, 1, "10.9.0.7", "Destination Host Unreachable"),
    (6, 1, 3, "fd00::7", "Destination unreachable: Address unreachable"),
])
def test_unreachable_quotes_ident_seq_and_destination(version, kind, code, destination, reason):
    message = icmp.parse_icmp_message(version, icmp_error(version, kind, code, quoted_request(version, 0x4242, 9)))
    assert message == IcmpError(version, kind, code, 0, 0x4242, 9, ipaddress.ip_address(destination))
    assert message.reason == reason


def test_ipv4_frag_needed_reports_mtu():
    message = icmp.parse_icmp_message(4, icmp_error(4, 3, 4, quoted_request(4, 1, 2), rest=1400))
    assert message.info == 1400
    assert message.reason == "Frag needed and DF set (mtu = 1400)"


def test_ipv4_time_exceeded_and_parameter_problem():
    exceeded = icmp.parse_icmp_message(4, icmp_error(4, 11, 0, quoted_request(4, 1, 2)))
    assert exceeded.reason == "Time to live exceeded"
    problem = icmp.parse_icmp_message(4, icmp_error(4, 12, 0, quoted_request(4, 1, 2), rest=20 << 24))
    assert problem.reason == "Parameter problem: pointer = 20"


def test_ipv4_error_quote_with_ip_options():
    request = icmp.build_echo_request(4, 77, 5, PAYLOAD[:8])
    quote = ipv4_header(icmp.IPPROTO_ICMP, ihl=6) + request
    assert icmp.parse_icmp_message(4, icmp_error(4, 3, 0, quote)).seq == 5


def test_ipv6_packet_too_big_reports_mtu():
    message = icmp.parse_icmp_message(6, icmp_error(6, 2, 0, quoted_request(6, 1, 2), rest=1280))
    assert message.reason == "Packet too big: mtu=1280"


def test_ipv6_time_exceeded():
    assert icmp.parse_icmp_message(6, icmp_error(6, 3, 0, quoted_request(6, 1, 2))).reason \
        == "Time exceeded: Hop limit"


@pytest.mark.parametrize("version, quote", [
    (4, ipv4_header(17) + b"\0" * 8),  # someone's UDP datagram
    (6, ipv6_header(17) + b"\0" * 8),
    (4, ipv4_header(1) + echo_reply(4, 1, 1)),  # an error about a reply someone sent
    (6, ipv6_header(58) + echo_reply(6, 1, 1)),
])
def test_errors_about_foreign_packets_are_none(version, quote):
    assert icmp.parse_icmp_message(version, icmp_error(version, 3 if version == 4 else 1, 1, quote)) is None


@pytest.mark.parametrize("version, quote, reason", [
    (4, b"", "truncated IPv4 header"),
    (4, ipv4_header(1)[:12], "truncated IPv4 header"),
    (4, b"\x65" + ipv4_header(1)[1:] + b"\0" * 8, "malformed IPv4 header"),
    (4, ipv4_header(1) + b"\x08\x00\x00", "less than an ICMP header"),
    (6, ipv6_header(58)[:39], "truncated IPv6 header"),
    (6, b"\x40" + ipv6_header(58)[1:] + b"\0" * 8, "malformed IPv6 header"),
    (6, ipv6_header(58) + b"\x80\x00", "less than an ICMP header"),
])
def test_errors_with_a_cut_off_quote_are_bad(version, quote, reason):
    with pytest.raises(BadPacket, match=reason):
        icmp.parse_icmp_message(version, icmp_error(version, 3 if version == 4 else 1, 1, quote))


# -- error queue of datagram sockets ---------------------------------------------
def sockaddr_in(address):
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + ipaddress.IPv4Address(address).packed + b"\0" * 8


def sockaddr_in6(address):
    return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + ipaddress.IPv6Address(address).packed
            + struct.pack("=I", 0))


def extended_error(err, origin, kind, code, info=0, offender=b""):
    return icmp.SOCK_EXTENDED_ERR.pack(err, origin, kind, code, 0, info, 0) + offender


def test_extended_error_v4_host_unreachable():
    ee = extended_error(errno.EHOSTUNREACH, icmp.SO_EE_ORIGIN_ICMP, 3, 1, offender=sockaddr_in("10.9.0.1"))
    destination = ipaddress.ip_address("10.9.0.7")
    message, offender = icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 555, 4, PAYLOAD), destination)
    assert message == IcmpError(4, 3, 1, 0, 555, 4, destination)
    assert message.reason == "Destination Host Unreachable"
    assert offender == ipaddress.IPv4Address("10.9.0.1")


def test_extended_error_v6_packet_too_big():
    ee = extended_error(errno.EMSGSIZE, icmp.SO_EE_ORIGIN_ICMP6, 2, 0, info=1280, offender=sockaddr_in6("fd00::1"))
    message, offender = icmp.parse_extended_error(6, ee, icmp.build_echo_request(6, 9, 10, b""),
                                                  ipaddress.ip_address("fd00::7"))
    assert message.reason == "Packet too big: mtu=1280"
    assert (message.ident, message.seq) == (9, 10)
    assert offender == ipaddress.IPv6Address("fd00::1")


def test_extended_error_without_offender():
    ee = extended_error(errno.EHOSTUNREACH, icmp.SO_EE_ORIGIN_ICMP, 3, 1)
    assert icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 1, 1, b""), None)[1] is None


def test_extended_error_local_origin():
    ee = extended_error(errno.EMSGSIZE, icmp.SO_EE_ORIGIN_LOCAL, 0, 0, info=1400)
    message, offender = icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 1, 3, b""), None)
    assert message == LocalError(1, 3, errno.EMSGSIZE, 1400)
    assert message.reason == "local error: %s (mtu = 1400)" % __import__("os").strerror(errno.EMSGSIZE)
    assert offender is None
    # ip_local_error() returns no payload: nothing names the request.
    assert icmp.parse_extended_error(4, ee, b"", None) == (None, None)


def test_extended_error_of_another_origin_is_not_reported():
    ee = extended_error(errno.EHOSTUNREACH, 0, 3, 1, offender=sockaddr_in("10.9.0.1"))  # SO_EE_ORIGIN_NONE
    message, offender = icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 1, 1, b""), None)
    assert (message, offender) == (None, ipaddress.IPv4Address("10.9.0.1"))


@pytest.mark.parametrize("offender", [
    sockaddr_in("10.9.0.1")[:6], sockaddr_in6("fd00::1")[:20], b"\xff\xff" + bytes(14),
], ids=["short-v4", "short-v6", "unknown-family"])
def test_extended_error_with_an_unreadable_offender(offender):
    ee = extended_error(errno.EHOSTUNREACH, icmp.SO_EE_ORIGIN_ICMP, 3, 1, offender=offender)
    message, reported = icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 1, 1, b""), None)
    assert message.reason == "Destination Host Unreachable" and reported is None


def test_extended_error_redirect_is_not_reported():
    ee = extended_error(0, icmp.SO_EE_ORIGIN_ICMP, icmp.ICMP_REDIRECT, 1)
    assert icmp.parse_extended_error(4, ee, icmp.build_echo_request(4, 1, 1, b""), None)[0] is None


@pytest.mark.parametrize("ee, original, reason", [
    (b"\0" * 15, icmp.build_echo_request(4, 1, 1, b""), "truncated sock_extended_err"),
    (extended_error(113, icmp.SO_EE_ORIGIN_ICMP, 3, 1), b"\x08\x00", "truncated request"),
    (extended_error(113, icmp.SO_EE_ORIGIN_ICMP, 3, 1), echo_reply(4, 1, 1), "not an echo request"),
])
def test_extended_error_rejects(ee, original, reason):
    with pytest.raises(BadPacket, match=reason):
        icmp.parse_extended_error(4, ee, original, None)


# -- reasons -------------------------------------------------------------------------
@pytest.mark.parametrize("version, kind, code, info, text", [
    (4, 3, 0, 0, "Destination Net Unreachable"),
    (4, 3, 3, 0, "Destination Port Unreachable"),
    (4, 3, 13, 0, "Packet filtered"),
    (4, 3, 99, 0, "Dest Unreachable, Bad Code: 99"),
    (4, 11, 1, 0, "Frag reassembly time exceeded"),
    (6, 1, 0, 0, "Destination unreachable: No route"),
    (6, 1, 1, 0, "Destination unreachable: Administratively prohibited"),
    (6, 1, 42, 0, "Destination unreachable: Unknown code 42"),
    (6, 4, 1, 40, "Parameter problem: Unknown header at 40"),
    (4, 11, 9, 0, "Time exceeded, Bad Code: 9"),
    (4, 99, 0, 0, "Bad ICMP type: 99"),
    (6, 200, 0, 0, "Unknown ICMPv6 type: 200"),
])
def test_describe_icmp_error(version, kind, code, info, text):
    assert icmp.describe_icmp_error(version, kind, code, info) == text

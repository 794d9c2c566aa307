"""Fuzz the ICMP reply parsers: any bytes give a message, None or BadPacket, nothing else.

Random bytes rarely pass the IPv4 checksum or reach the quote of an ICMP error, so
most inputs are mutations of well-formed replies and errors, with the IPv4 checksum
repaired after mutating (else the checksum check would reject them all).
"""
import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.netutil import internet_checksum
from tomato_gevent.ping import icmp
from tomato_gevent.ping.icmp import EchoReply, IcmpError, LocalError

VERSIONS = st.sampled_from([4, 6])


def fix_checksum(message):
    message = message[:2] + b"\0\0" + message[4:]
    return message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]


def quote_of_request(version, ident, seq):
    request = icmp.build_echo_request(version, ident, seq, icmp.make_payload(8))
    if version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(request), 0, 0, 64, icmp.IPPROTO_ICMP, 0,
                             bytes(4), bytes(4))
    else:
        header = struct.pack("!IHBB16s16s", 6 << 28, len(request), icmp.IPPROTO_ICMPV6, 64, bytes(16), bytes(16))
    return header + request


@st.composite
def well_formed_messages(draw, version):
    ident, seq = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
    reply = icmp.build_echo_request(version, ident, seq, draw(st.binary(max_size=64)))
    reply = bytes([icmp.ECHO_REPLY_TYPE[version]]) + reply[1:]
    error_type = draw(st.sampled_from(sorted(icmp.ERROR_TYPES[version])))
    error = struct.pack("!BBHI", error_type, draw(st.integers(0, 255)), 0, draw(st.integers(0, 2**32 - 1))) \
        + quote_of_request(version, ident, seq)
    return draw(st.sampled_from([reply, error]))


@st.composite
def mutated(draw, message):
    data = bytearray(message)
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    data = data[:draw(st.integers(0, len(data)))] + draw(st.binary(max_size=8))
    return bytes(data)


@st.composite
def icmp_inputs(draw):
    version = draw(VERSIONS)
    data = draw(st.one_of(st.binary(max_size=120), well_formed_messages(version).flatmap(mutated)))
    if version == 4 and len(data) >= icmp.ECHO_HEADER_SIZE and draw(st.booleans()):
        data = fix_checksum(data)
    return version, data


@given(icmp_inputs())
def test_icmp_message_parser_returns_a_message_none_or_bad_packet(version_and_data):
    version, data = version_and_data
    try:
        result = icmp.parse_icmp_message(version, data)
    except BadPacket:
        return
    assert result is None or isinstance(result, (EchoReply, IcmpError))
    if isinstance(result, EchoReply):
        assert (result.ident, result.seq, result.payload) == (*struct.unpack_from("!HH", data, 4), data[8:])


@given(st.binary(max_size=80))
def test_ipv4_packet_parser_returns_header_fields_or_bad_packet(packet):
    try:
        source, ttl, message = icmp.parse_ipv4_packet(packet)
    except BadPacket:
        return
    header_size = (packet[0] & 0x0F) * 4
    assert (source, ttl, message) == (ipaddress.IPv4Address(packet[12:16]), packet[8], packet[header_size:])


@given(version=VERSIONS, extended_error=st.binary(max_size=48), original=st.one_of(
    st.binary(max_size=24),
    st.tuples(VERSIONS, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)).map(
        lambda v_i_s: icmp.build_echo_request(v_i_s[0], v_i_s[1], v_i_s[2], b""))))
def test_error_queue_parser_returns_a_message_none_or_bad_packet(version, extended_error, original):
    try:
        result, offender = icmp.parse_extended_error(version, extended_error, original, None)
    except BadPacket:
        return
    assert result is None or isinstance(result, (IcmpError, LocalError))
    assert offender is None or isinstance(offender, (ipaddress.IPv4Address, ipaddress.IPv6Address))

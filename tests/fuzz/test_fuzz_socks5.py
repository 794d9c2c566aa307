"""Fuzz the SOCKS5 codec: any bytes give a message, None (need more) or SocksError, nothing else.

Inputs are mostly mutations of well-formed greetings, credentials and requests (a
byte flipped, inserted, dropped, the message cut short), so the parsers are driven
deep, plus arbitrary bytes. Every result is also checked for consistency: a parsed
message never claims more bytes than it was given, and re-parsing exactly those
bytes gives the same message.
"""
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.proxy import socks5
from tomato_gevent.proxy.socks5 import SocksError

PARSERS = [socks5.parse_greeting, socks5.parse_credentials, socks5.parse_request, socks5.parse_reply]

WELL_FORMED = [
    b"\x05\x01\x00", b"\x05\x02\x00\x02", socks5.render_credentials(b"alice", b"secret"),
    socks5.render_request(socks5.CMD_CONNECT, "example.com", 443),
    socks5.render_request(socks5.CMD_CONNECT, "10.0.0.1", 80),
    socks5.render_request(socks5.CMD_BIND, "2001:db8::1", 8080),
    socks5.render_reply(0, ("10.0.0.2", 4000)), socks5.render_reply(4),
    socks5.render_udp_header("example.com", 53) + b"query", socks5.render_udp_header("::1", 443) + b"x",
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(WELL_FORMED)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        elif kind == "delete":
            del data[at]
        else:
            del data[at:]
    return bytes(data)


@given(st.sampled_from(PARSERS), st.one_of(mutated(), st.binary(max_size=300)))
def test_codec_gives_a_message_need_more_or_socks_error(parse, data):
    try:
        message = parse(data)
    except SocksError as e:
        assert e.reply is None or 0 <= e.reply <= 0xFF
        assert "\n" not in str(e)
        return
    if message is None:
        return
    assert 0 < message.length <= len(data)
    assert parse(bytearray(data[:message.length])) == message


@given(st.sampled_from(["example.com", "10.1.2.3", "::1", "faß.de", "a" * 255]), st.integers(0, 65535),
       st.sampled_from([socks5.CMD_CONNECT, socks5.CMD_BIND, socks5.CMD_UDP_ASSOCIATE]))
def test_render_then_parse_round_trips(host, port, command):
    request = socks5.parse_request(socks5.render_request(command, host, port))
    assert (request.command, request.host, request.port) == (command, host, port)


@given(st.one_of(mutated(), st.binary(max_size=300)))
def test_a_udp_datagram_parses_whole_or_is_a_socks_error(data):
    # A UDP datagram is never "incomplete": it parses, header and payload, or is dropped.
    try:
        datagram = socks5.parse_udp_datagram(data)
    except SocksError as e:
        assert "\n" not in str(e)
        return
    assert data.endswith(datagram.payload)
    header = data[:len(data) - len(datagram.payload)]
    assert socks5.parse_udp_datagram(header + b"other") == datagram._replace(payload=b"other")

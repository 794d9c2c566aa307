"""proxy/socks5.py: the SOCKS5 / RFC 1929 codecs, whole and a byte at a time, and every bad input."""
import pytest

from tomato_gevent.proxy import socks5
from tomato_gevent.proxy.socks5 import (Credentials, Greeting, Request, SocksError, choose_method,
                                        parse_credentials, parse_greeting, parse_reply, parse_request,
                                        render_auth_reply, render_credentials, render_method_choice,
                                        render_reply, render_request)


def fed_byte_by_byte(parse, message):
    """parse() on every proper prefix must say "need more" (None); the whole gives a value."""
    for end in range(len(message)):
        assert parse(message[:end]) is None, message[:end]
    return parse(message)


# --- greeting / method choice -------------------------------------------------------

def test_greeting_incremental_and_trailing_bytes_left():
    message = b"\x05\x02\x00\x02"
    assert fed_byte_by_byte(parse_greeting, message) == Greeting(frozenset({0, 2}), 4)
    assert parse_greeting(bytearray(message + b"\x05\x01\x00")).length == 4


@pytest.mark.parametrize("data, reply", [
    (b"\x04\x01\x00", None),                 # SOCKS4
    (b"\x05\x00", socks5.METHOD_NONE_ACCEPTABLE),
])
def test_bad_greetings(data, reply):
    with pytest.raises(SocksError) as info:
        parse_greeting(data)
    assert info.value.reply == reply


@pytest.mark.parametrize("methods, required, chosen", [
    ({0}, False, 0x00), ({0, 2}, False, 0x00), ({2}, False, 0x02), ({1}, False, 0xFF),
    ({0}, True, 0xFF), ({0, 2}, True, 0x02), ({0x80}, True, 0xFF),
])
def test_choose_method(methods, required, chosen):
    assert choose_method(frozenset(methods), required) == chosen
    assert render_method_choice(chosen) == bytes((5, chosen))


# --- RFC 1929 -------------------------------------------------------------------------

def test_credentials_incremental():
    message = render_credentials(b"alice", b"s3cret")
    assert message == b"\x01\x05alice\x06s3cret"
    assert fed_byte_by_byte(parse_credentials, message) == Credentials(b"alice", b"s3cret", len(message))
    assert parse_credentials(b"\x01\x01u\x00") == Credentials(b"u", b"", 4)     # empty password tolerated
    assert render_auth_reply(True) == b"\x01\x00" and render_auth_reply(False) == b"\x01\x01"


@pytest.mark.parametrize("data", [b"\x05\x01u\x01p", b"\x00", b"\x01\x00\x01p"])
def test_bad_credentials_answer_failure(data):
    with pytest.raises(SocksError) as info:
        parse_credentials(data)
    assert info.value.reply == socks5.AUTH_FAILURE


# --- requests -------------------------------------------------------------------------

@pytest.mark.parametrize("message, request_", [
    (b"\x05\x01\x00\x03\x0bexample.com\x01\xbb", Request(1, "example.com", 443, 3, 18)),
    (b"\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x50", Request(1, "10.0.0.1", 80, 1, 10)),
    (b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x1f\x90", Request(1, "::1", 8080, 4, 22)),
    (b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x00", Request(2, "127.0.0.1", 0, 1, 10)),
    (b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00", Request(3, "0.0.0.0", 0, 1, 10)),
    (b"\x05\x01\x00\x03\x07fa\xc3\x9f.de\x00\x50", Request(1, "faß.de", 80, 3, 14)),
])
def test_request_incremental(message, request_):
    assert fed_byte_by_byte(parse_request, message) == request_
    assert parse_request(bytearray(message) + b"GET / HTTP/1.1\r\n").length == len(message)


@pytest.mark.parametrize("data, reply", [
    (b"\x04\x01\x00\x01", None),
    (b"\x05\x00\x00\x01", socks5.COMMAND_NOT_SUPPORTED),
    (b"\x05\x04\x00\x01", socks5.COMMAND_NOT_SUPPORTED),
    (b"\x05\x01\x01\x01", socks5.GENERAL_FAILURE),
    (b"\x05\x01\x00\x02", socks5.ADDRESS_TYPE_NOT_SUPPORTED),
    (b"\x05\x01\x00\x00", socks5.ADDRESS_TYPE_NOT_SUPPORTED),
    (b"\x05\x01\x00\x03\x00\x00\x50", socks5.HOST_UNREACHABLE),
    (b"\x05\x01\x00\x03\x02\xff\xfe\x00\x50", socks5.HOST_UNREACHABLE),
])
def test_bad_requests_carry_their_reply_code(data, reply):
    with pytest.raises(SocksError) as info:
        parse_request(data)
    assert info.value.reply == reply
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("host, port", [("example.com", 443), ("10.1.2.3", 80), ("2001:db8::1", 8443),
                                        ("faß.de", 1)])
def test_render_request_round_trips(host, port):
    parsed = parse_request(render_request(socks5.CMD_CONNECT, host, port))
    assert (parsed.command, parsed.host, parsed.port) == (socks5.CMD_CONNECT, host, port)


def test_render_request_refuses_names_too_long():
    with pytest.raises(ValueError):
        render_request(socks5.CMD_CONNECT, "a" * 256, 80)


# --- replies --------------------------------------------------------------------------

@pytest.mark.parametrize("code, bound, wire", [
    (0x00, ("10.0.0.2", 40000), b"\x05\x00\x00\x01\x0a\x00\x00\x02\x9c\x40"),
    (0x02, None, b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"),
    (0x00, ("2001:db8::2", 1),
     b"\x05\x00\x00\x04" + bytes.fromhex("20010db8000000000000000000000002") + b"\x00\x01"),
    (0x00, ("fe80::1%eth0", 2),             # getsockname's text of a link-local address
     b"\x05\x00\x00\x04" + bytes.fromhex("fe800000000000000000000000000001") + b"\x00\x02"),
    (0x00, ("::ffff:10.0.0.2", 3),
     b"\x05\x00\x00\x04" + bytes.fromhex("00000000000000000000ffff0a000002") + b"\x00\x03"),
])
def test_render_reply(code, bound, wire):
    assert render_reply(code, bound) == wire
    reply = fed_byte_by_byte(parse_reply, wire)
    assert (reply.code, reply.length) == (code, len(wire))


# -- UDP ASSOCIATE datagrams -------------------------------------------------------------
def test_udp_datagram_round_trip():
    for host, port in [("10.1.2.3", 53), ("2001:db8::1", 443), ("example.com", 8080)]:
        datagram = socks5.parse_udp_datagram(socks5.render_udp_header(host, port) + b"payload")
        assert (datagram.host, datagram.port, datagram.payload) == (host, port, b"payload")


@pytest.mark.parametrize("data, why", [
    (b"\x00\x00\x00", "shorter than its header"),
    (b"\x00\x01\x00\x01\x7f\x00\x00\x01\x00\x35", "reserved"),
    (b"\x00\x00\x02\x01\x7f\x00\x00\x01\x00\x35x", "fragmented"),
    (b"\x00\x00\x00\x01\x7f\x00", "truncated"),
    (b"\x00\x00\x00\x03\x05ab", "truncated"),
    (b"\x00\x00\x00\x09\x7f\x00\x00\x01\x00\x35", "address type"),
])
def test_bad_udp_datagrams_are_refused(data, why):
    with pytest.raises(socks5.SocksError, match=why):
        socks5.parse_udp_datagram(data)

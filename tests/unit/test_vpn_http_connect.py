"""http_connect.py: the CONNECT exchange with an HTTP proxy (pure)."""
import pytest

from tomato_gevent.errors import RemoteProtocolError
from tomato_gevent.vpn.http_connect import connect_request, parse_connect_reply


def test_connect_request():
    assert connect_request("peer.example", 5000) == (b"CONNECT peer.example:5000 HTTP/1.1\r\n"
                                                     b"Host: peer.example:5000\r\n\r\n")
    assert connect_request("2001:db8::1", 443).startswith(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n")
    assert connect_request("bücher.example", 1).startswith(b"CONNECT xn--bcher-kva.example:1 ")


def test_reply_byte_by_byte():
    reply = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\n"
    for cut in range(len(reply)):
        assert parse_connect_reply(reply[:cut]) is None
    assert parse_connect_reply(reply) == len(reply)
    assert parse_connect_reply(reply + b"extra") == len(reply)     # the caller sees what follows


@pytest.mark.parametrize("reply,message", [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "407 Proxy Authentication Required"),
    (b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"),
    (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "502"),
])
def test_refusals(reply, message):
    with pytest.raises(RemoteProtocolError, match=message):
        parse_connect_reply(reply)


@pytest.mark.parametrize("reply", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/2 200\r\n\r\n", b"X" * 70000])
def test_not_http_refused(reply):
    with pytest.raises(RemoteProtocolError):
        parse_connect_reply(reply)

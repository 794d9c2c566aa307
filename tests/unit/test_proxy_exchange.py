"""proxy/exchange.py and proxy/stats.py: the exchange policy as plain tables, no sockets."""
import ipaddress

import pytest

from tomato_gevent.errors import NextHopError, Refused, RemoteProtocolError
from tomato_gevent.http1.http import Framing, parse_request_head, parse_response_head
from tomato_gevent.proxy import exchange
from tomato_gevent.proxy.resolver import ResolveError
from tomato_gevent.proxy.stats import Stats


def request(text):
    return parse_request_head(text.encode("latin-1").replace(b"\n", b"\r\n") + b"\r\n")


def response(text, method="GET"):
    return parse_response_head(text.encode("latin-1").replace(b"\n", b"\r\n") + b"\r\n", method)


GET11 = request("GET http://a.test/ HTTP/1.1\n")
GET10 = request("GET http://a.test/ HTTP/1.0\n")
POST_EMPTY = request("POST http://a.test/ HTTP/1.1\nContent-Length: 0\n")
PUT_BODY = request("PUT http://a.test/ HTTP/1.1\nContent-Length: 3\nExpect: 100-continue\n")
PUT_BODY10 = request("PUT http://a.test/ HTTP/1.0\nContent-Length: 3\nExpect: 100-continue\n")


@pytest.mark.parametrize("host,port,client_authority,expected", [
    ("a.test", 80, b"A.test.", b"a.test"),
    ("a.test", 8080, b"A.test.:8080", b"a.test:8080"),
    ("2001:db8::1", 443, b"[2001:db8::1]:443", b"[2001:db8::1]:443"),
    ("2001:db8::1", 80, b"[2001:db8::1]", b"[2001:db8::1]"),
])
def test_authority_keeps_the_clients_port_spelling(host, port, client_authority, expected):
    assert exchange.authority_for(host, port, client_authority) == expected


def test_retry_only_idempotent_bodyless_requests_on_a_reused_connection():
    assert exchange.may_retry(GET11, reused=True)
    assert not exchange.may_retry(GET11, reused=False)
    assert not exchange.may_retry(POST_EMPTY, reused=True)            # RFC 9110 9.2.2
    assert not exchange.may_retry(PUT_BODY, reused=True)              # body already consumed
    for method in ("HEAD", "OPTIONS", "TRACE", "DELETE"):
        assert exchange.may_retry(request("%s http://a.test/ HTTP/1.1\n" % method), reused=True)
    assert not exchange.may_retry(request("PATCH http://a.test/ HTTP/1.1\n"), reused=True)


def test_continue_is_ours_for_http11_requests_with_a_body():
    assert exchange.answer_continue(PUT_BODY)
    assert not exchange.answer_continue(PUT_BODY10)
    assert not exchange.answer_continue(request("GET http://a.test/ HTTP/1.1\nExpect: 100-continue\n"))


def test_block_keeps_only_bodyless_keep_alive_connections():
    assert exchange.keep_client_after_block(GET11)
    assert not exchange.keep_client_after_block(GET10)
    assert not exchange.keep_client_after_block(PUT_BODY)


def test_informational_answers():
    early = response("HTTP/1.1 103 Early Hints\nLink: </s>\n")
    assert exchange.informational(GET11, early).startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert exchange.informational(GET10, early) is None
    assert exchange.informational(GET11, response("HTTP/1.1 100 Continue\n")) is None
    with pytest.raises(RemoteProtocolError) as e:
        exchange.informational(GET11, response("HTTP/1.1 101 Switching Protocols\n"))
    assert e.value.status_hint == 502


@pytest.mark.parametrize("req,resp,framing,keep", [
    (GET11, "HTTP/1.1 200 OK\nContent-Length: 3\n", Framing.LENGTH, True),
    (GET11, "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", Framing.CHUNKED, True),
    (GET11, "HTTP/1.1 200 OK\n", Framing.CHUNKED, True),             # until close, re-chunked
    (GET10, "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", Framing.UNTIL_CLOSE, False),
    (GET10, "HTTP/1.1 200 OK\n", Framing.UNTIL_CLOSE, False),
    (GET11, "HTTP/1.1 204 No Content\n", Framing.NONE, True),
])
def test_client_framing_and_keep_alive(req, resp, framing, keep):
    assert exchange.client_framing(req, response(resp)) is framing
    out, kept = exchange.to_client(req, response(resp))
    assert out is framing and kept is keep


def test_upstream_is_reused_only_after_a_complete_clean_answer():
    kept = response("HTTP/1.1 200 OK\nContent-Length: 3\n")
    closing = response("HTTP/1.1 200 OK\nContent-Length: 3\nConnection: close\n")
    assert exchange.keep_upstream(kept, leftover=False)
    assert not exchange.keep_upstream(kept, leftover=True)
    assert not exchange.keep_upstream(closing, leftover=False)
    assert not exchange.keep_upstream(response("HTTP/1.1 200 OK\n"), leftover=False)   # until close


A = ipaddress.ip_address


@pytest.mark.parametrize("client,destination,allowed", [
    ("10.0.1.2", "10.0.0.5", True),          # private ranges are fine
    ("10.0.1.2", "192.168.1.1", True),
    ("10.0.1.2", "93.184.216.34", True),
    ("10.0.1.2", "127.0.0.1", False),
    ("10.0.1.2", "127.1.2.3", False),
    ("10.0.1.2", "::1", False),
    ("10.0.1.2", "::ffff:127.0.0.1", False),
    ("10.0.1.2", "169.254.169.254", False),  # cloud metadata lives here
    ("10.0.1.2", "fe80::1", False),
    ("10.0.1.2", "0.0.0.0", False),
    ("127.0.0.1", "127.0.0.1", True),         # a client on the proxy host itself
    ("::1", "169.254.1.1", True),
    ("::ffff:127.0.0.1", "127.0.0.1", True),
])
def test_destination_policy(client, destination, allowed):
    assert exchange.destination_allowed(A(client), A(destination)) is allowed
    assert exchange.destination_allowed(A(client), A(destination), allow_private=True)


def test_client_ip_unwraps_mapped_addresses():
    assert exchange.client_ip(("::ffff:10.0.0.1", 1, 0, 0)) == A("10.0.0.1")
    assert exchange.client_ip(("fe80::1%eth0", 1, 0, 2)) == A("fe80::1")


@pytest.mark.parametrize("error,status", [
    (RemoteProtocolError("bad", 400), 400),
    (RemoteProtocolError("big", 431), 431),
    (RemoteProtocolError("bad answer", 502), 502),
    (Refused("blocked"), 403),
    (Refused("full", 503), 503),
    (NextHopError("refused"), 502),
    (NextHopError("timed out", 504), 504),
    (ResolveError("unknown host x.test"), 502),
])
def test_every_typed_error_has_its_answer(error, status):
    assert exchange.rejection(error) == (status, str(error))


def test_stats_summary_line():
    stats = Stats()
    assert stats.summary() == "requests none; bytes up=0 down=0; open connections 0"
    stats.opened()
    stats.opened()
    stats.closed()
    stats.record("direct", 200, 10, 100)
    stats.record("direct", 204)
    stats.record("direct", 502, 0, 50)
    stats.record("block", 403, 0, 20)
    stats.record("forward", 101)
    stats.record("-", 400)
    assert stats.summary() == ("requests direct 2xx=2 5xx=1, forward 1xx=1, block 4xx=1, - 4xx=1; "
                               "bytes up=10 down=170; open connections 1")

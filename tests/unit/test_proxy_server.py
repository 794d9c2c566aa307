"""proxy/server.py, http_session.py, bodies.py and outbound.py without root: the proxy on 127.0.0.1:0, names resolved by
an injected resolver to origins that are small gevent servers in this process.

Each origin is a script: it reads requests and answers them as the test says (including
wrong answers). A second ProxyServer stands in for the -f upstream proxy.
"""
import ipaddress
import logging

import gevent
import gevent.event
import pytest
from gevent import socket
from gevent.server import StreamServer

from tomato_gevent.errors import NextHopError
from tomato_gevent.http1 import chunked
from tomato_gevent.http1.http import Framing
from tomato_gevent.proxy import lean_socket
from tomato_gevent.proxy import server as server_mod
from tomato_gevent.rules import Action

from .proxy_clients import HttpClient, get
from .proxy_doubles import DEADLINE_SECONDS, LOOPBACK, FakeResolver, wait_for

# -- an origin server that speaks just enough HTTP -----------------------------------------
def read_head(sock, buf):
    """One head (bytes) from sock; buf keeps what follows. None on EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    return head


def read_body(sock, buf, head):
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        decoder = chunked.ChunkedDecoder()
        body = b""
        data = bytes(buf)
        buf.clear()
        while True:
            body += b"".join(bytes(p) for p in decoder.feed(data))
            if decoder.done:
                buf += decoder.unused
                return body
            data = sock.recv(65536)
            if not data:
                raise EOFError
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            n = int(line.split(b":")[1])
            while len(buf) < n:
                data = sock.recv(65536)
                if not data:
                    raise EOFError
                buf += data
            body = bytes(buf[:n])
            del buf[:n]
            return body
    return b""


class Origin:
    """answer(request_head, body) -> bytes to send (None: close without answering).
    Records every request and counts connections."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda head, body: ok(b"hello"))
        self.requests = []
        self.connections = 0
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, sock, address):
        self.connections += 1
        buf = bytearray()
        while True:
            head = read_head(sock, buf)
            if head is None:
                return
            body = read_body(sock, buf, head)
            self.requests.append((head, body))
            out = self.answer(head, body)
            if out is None:
                return
            sock.sendall(out)
            if b"connection: close" in out.lower():
                return

    def close(self):
        self.server.stop()


def ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture
def origins():
    made = []

    def make(answer=None):
        origin = Origin(answer)
        made.append(origin)
        return origin
    yield make
    for origin in made:
        origin.close()


@pytest.fixture
def tcp_servers():
    """serve(handler) -> port of a StreamServer running handler(sock, address); all stop at teardown."""
    started = []

    def serve(handler):
        server = StreamServer(("127.0.0.1", 0), handler)
        server.start()
        started.append(server)
        return server.server_port
    yield serve
    for server in started:
        server.stop()


def connect(proxy):
    sock = socket.create_connection(("127.0.0.1", proxy.server_port))
    sock.settimeout(DEADLINE_SECONDS)
    return sock


# -- direct, forward, block ------------------------------------------------------------------
def test_direct_get_reaches_the_origin_in_origin_form(origins, proxies):
    origin = origins()
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port, b"/a?b"))
    resp, body = client.response()
    assert (resp.status, body) == (200, b"hello")
    head = origin.requests[0][0]
    assert head.startswith(b"GET /a?b HTTP/1.1\r\nHost: www.test:%d\r\n" % origin.port)
    assert b"Via: 1.1 tomato" in head


def test_forward_goes_through_the_upstream_proxy_in_absolute_form(origins, proxies):
    origin = origins()
    upstream = proxies(resolver=FakeResolver({"far.test"}))
    proxy = proxies("forward\tfar.test", resolver=FakeResolver({"upstream.test"}),
                    upstream=("upstream.test", upstream.server_port))
    client = HttpClient(proxy.server_port)
    client.send(get("far.test", origin.port))
    resp, body = client.response()
    assert (resp.status, body) == (200, b"hello")
    # Only the upstream proxy resolved the origin's name.
    assert proxy.outbound.resolver.asked == ["upstream.test"]
    assert upstream.outbound.resolver.asked == ["far.test"]
    assert origin.requests[0][0].count(b"Via: 1.1 tomato-") == 2     # one per proxy, each its token


def test_block_is_403_and_keeps_a_bodyless_connection(origins, proxies):
    origin = origins()
    proxy = proxies("block\tads.test", resolver=FakeResolver({"ads.test", "www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("ads.test", origin.port))
    resp, body = client.response()
    assert resp.status == 403 and b"blocked by proxy rule: ads.test" in body
    client.send(get("www.test", origin.port))
    assert client.response()[0].status == 200
    assert len(origin.requests) == 1
    client.send(b"CONNECT sub.ads.test:443 HTTP/1.1\r\n\r\n")
    assert client.response("CONNECT")[0].status == 403


def test_a_zone_on_an_ip_literal_does_not_get_past_a_cidr_block(origins, proxies):
    origin = origins()
    proxy = proxies("block\tcidr:127.0.0.0/8")
    client = HttpClient(proxy.server_port)
    client.send(b"GET http://127.0.0.1%%1:%d/ HTTP/1.1\r\n\r\n" % origin.port)
    resp, body = client.response()
    # IPv4 has no zones: canonical_host refuses the host (as SOCKS5 does), so no rule is asked.
    assert resp.status == 400 and b"bad host name" in body
    assert origin.requests == []


def test_http_asks_for_the_canonical_spelling_of_a_literal(proxies):
    # canonical_host at both edges (test_socks_session has the SOCKS5 twin): 0:0::1 is ::1
    # for the resolver, the rules and Host.
    resolver = FakeResolver()
    proxy = proxies(resolver=resolver)
    client = HttpClient(proxy.server_port)
    client.send(b"GET http://[0:0::1]:80/ HTTP/1.1\r\n\r\n")
    assert client.response()[0].status == 502
    assert resolver.asked == ["::1"]


def test_block_with_a_body_closes_the_connection(proxies):
    proxy = proxies("block\tads.test")
    client = HttpClient(proxy.server_port)
    client.send(b"POST http://ads.test/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert client.response()[0].status == 403
    assert client.closed()


def test_unknown_name_is_502_unreachable_port_502(proxies):
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("nosuch.test", 80))
    resp, body = client.response()
    assert resp.status == 502 and b"unknown host nosuch.test" in body
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", port))
    resp, body = client.response()
    assert resp.status == 502 and b"cannot connect to www.test" in body


def test_bad_requests_get_their_status_and_one_log_line(proxies, caplog):
    proxy = proxies()
    for raw, status in [(b"GET / HTTP/1.1\r\n\r\n", 400),
                        (b"GET http://a.test/ HTTP/2.0\r\n\r\n", 505),
                        (b"GET http://a.test/ HTTP/1.1\r\nX: " + b"a" * 70000, 431)]:
        client = HttpClient(proxy.server_port)
        client.send(raw)
        assert client.response()[0].status == status
    assert not [r for r in caplog.records if r.exc_info]


# -- keep-alive, chunked, 100-continue --------------------------------------------------------
def test_keep_alive_reuses_client_and_origin_connections(origins, proxies):
    origin = origins()
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    for i in range(3):
        client.send(get("www.test", origin.port, b"/%d" % i))
        assert client.response()[1] == b"hello"
    assert origin.connections == 1 and len(origin.requests) == 3


def test_pipelined_requests_are_answered_in_order(origins, proxies):
    origin = origins(lambda head, body: ok(head.split(b" ")[1]))
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port, b"/1") + get("www.test", origin.port, b"/2"))
    assert client.response()[1] == b"/1"
    assert client.response()[1] == b"/2"


def test_chunked_both_ways_and_until_close_rechunked(origins, proxies):
    def answer(head, body):
        if head.startswith(b"POST"):
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nyou\r\n5;x=y\r\n sent\r\n0\r\nT: 1\r\n\r\n")
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close"
    origin = origins(answer)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(b"POST http://www.test:%d/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nbody\r\n0\r\n\r\n" % origin.port)
    resp, body = client.response()
    assert (resp.framing, body) == (Framing.CHUNKED, b"you sent")
    assert origin.requests[0][1] == b"body"
    client.send(get("www.test", origin.port))
    resp, body = client.response()
    # An HTTP/1.1 client gets the until-close body chunked and keeps its connection.
    assert (resp.framing, body, resp.keep_alive) == (Framing.CHUNKED, b"until close", True)
    client10 = HttpClient(proxy.server_port)
    client10.send(b"GET http://www.test:%d/ HTTP/1.0\r\n\r\n" % origin.port)
    resp, body = client10.response()
    assert (resp.framing, body) == (Framing.UNTIL_CLOSE, b"until close")


def test_content_length_body_arriving_later(origins, proxies):
    origin = origins(lambda head, body: ok(body))
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(b"POST http://www.test:%d/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc" % origin.port)
    gevent.sleep(0)
    client.send(b"defghij")
    assert client.response()[1] == b"abcdefghij"


def test_expect_100_continue_is_answered_by_the_proxy(origins, proxies):
    origin = origins(lambda head, body: ok(body))
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(b"PUT http://www.test:%d/ HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
                % origin.port)
    resp, _ = client.response()
    assert resp.status == 100
    client.send(b"data")
    assert client.response()[1] == b"data"
    assert b"expect" not in origin.requests[0][0].lower()


def test_informational_answers_go_to_http11_clients_only(origins, proxies):
    origin = origins(lambda head, body: b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + ok(b"x"))
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port))
    assert client.response()[0].status == 103
    assert client.response()[1] == b"x"
    client10 = HttpClient(proxy.server_port)
    client10.send(b"GET http://www.test:%d/ HTTP/1.0\r\n\r\n" % origin.port)
    assert client10.response()[0].status == 200


# -- CONNECT ----------------------------------------------------------------------------------
def echo_upper(sock, address):
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data.upper())


def test_connect_direct_and_through_the_upstream(proxies, tcp_servers):
    echo_port = tcp_servers(echo_upper)
    upstream = proxies(resolver=FakeResolver({"echo.test"}))
    proxy = proxies("forward\tfar.test", resolver=FakeResolver({"echo.test", "upstream.test"}),
                    upstream=("upstream.test", upstream.server_port))
    upstream.outbound.resolver.names.add("far.test")
    for name in ("echo.test", "far.test"):
        client = HttpClient(proxy.server_port)
        client.send(b"CONNECT %s:%d HTTP/1.1\r\n\r\nearly" % (name.encode(), echo_port))
        assert client.response("CONNECT")[0].status == 200
        client.send(b" late")
        got = bytes(client.buf)
        while len(got) < 10:
            got += client.sock.recv(100)
        assert got == b"EARLY LATE"
        client.sock.shutdown(socket.SHUT_WR)
        assert client.closed()
    wait_for(lambda: proxy.stats.requests["forward", "2xx"] == 1, "the forward tunnel's record")
    assert proxy.stats.requests["direct", "2xx"] == 1


def test_connect_refused_by_the_upstream_is_passed_on(proxies):
    upstream = proxies("block\tfar.test")
    proxy = proxies("forward\tfar.test", resolver=FakeResolver({"upstream.test"}),
                    upstream=("upstream.test", upstream.server_port))
    client = HttpClient(proxy.server_port)
    client.send(b"CONNECT far.test:443 HTTP/1.1\r\n\r\n")
    resp, body = client.response("GET")
    assert resp.status == 403 and b"blocked by proxy rule" in body


def test_idle_tunnel_is_closed_after_the_tunnel_idle_timeout(proxies, tcp_servers):
    echo_port = tcp_servers(echo_upper)
    proxy = proxies(resolver=FakeResolver({"echo.test"}), tunnel_idle_timeout=0.2)
    client = HttpClient(proxy.server_port)
    client.send(b"CONNECT echo.test:%d HTTP/1.1\r\n\r\n" % echo_port)
    assert client.response("CONNECT")[0].status == 200
    client.send(b"x")
    assert client.sock.recv(10) == b"X"
    # Nothing moves: the proxy ends the tunnel by itself (before: never).
    assert client.sock.recv(10) == b""


def test_a_busy_direction_keeps_the_tunnel_open(proxies, tcp_servers):
    def slow_talker(sock, address):
        for _ in range(8):
            sock.sendall(b".")
            gevent.sleep(0.05)
        sock.sendall(b"end")
    port = tcp_servers(slow_talker)
    proxy = proxies(resolver=FakeResolver({"talk.test"}), tunnel_idle_timeout=0.15)
    client = HttpClient(proxy.server_port)
    client.send(b"CONNECT talk.test:%d HTTP/1.1\r\n\r\n" % port)
    assert client.response("CONNECT")[0].status == 200
    got = bytes(client.buf)
    while not got.endswith(b"end"):
        data = client.sock.recv(100)
        assert data, "tunnel closed while the server was still talking"
        got += data


# -- the front door -----------------------------------------------------------------------
def test_socks5_first_byte_goes_to_the_socks5_handler(proxies):
    seen = []

    def handler(sock, first_bytes, context):
        seen.append((first_bytes, context.client, context.outbound.decide("ads.test")))
        sock.sendall(b"\x05\x00")
    proxy = proxies("block\tads.test", socks5_handler=handler)
    client = HttpClient(proxy.server_port)
    client.send(b"\x05\x01\x00")
    assert client.sock.recv(2) == b"\x05\x00"
    assert seen == [(b"\x05\x01\x00", LOOPBACK, Action.BLOCK)]


def test_accepted_connections_have_nodelay_without_a_call_per_connection(proxies, monkeypatch):
    """Heads and answers must not wait for Nagle; the option is set on the listener, and the
    kernel copies it into each accepted socket (no setsockopt per connection)."""
    seen, calls = [], []
    real = lean_socket.LeanSocket.setsockopt
    monkeypatch.setattr(lean_socket.LeanSocket, "setsockopt",
                        lambda sock, *args: calls.append(args) or real(sock, *args))

    def handler(sock, first_bytes, context):
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        sock.sendall(b"\x05\x00")
    proxy = proxies(socks5_handler=handler)
    client = HttpClient(proxy.server_port)
    client.send(b"\x05\x01\x00")
    assert client.sock.recv(2) == b"\x05\x00"
    assert seen == [1] and calls == []


def test_socks5_without_a_handler_is_closed(proxies):
    proxy = proxies()
    client = HttpClient(proxy.server_port)
    client.send(b"\x05\x01\x00")
    assert client.closed()


def test_max_clients_answers_503_beyond_it_and_logs_once(proxies, caplog):
    proxy = proxies(max_clients=2)
    held = [connect(proxy), connect(proxy)]
    wait_for(lambda: proxy.stats.open_connections == 2, "two open connections")
    with caplog.at_level(logging.WARNING, logger=server_mod.__name__):
        for _ in range(3):
            client = HttpClient(proxy.server_port)
            assert client.response()[0].status == 503
            assert client.closed()
    assert len([r for r in caplog.records if "max-clients" in r.getMessage()]) == 1
    for sock in held:
        sock.close()
    wait_for(lambda: proxy.stats.open_connections == 0, "the held connections to close")


# -- summary ---------------------------------------------------------------------------------
def test_summary_counts_requests_by_direction_and_class(origins, proxies, caplog):
    origin = origins()
    proxy = proxies("block\tads.test", resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port))
    client.response()
    client.send(get("ads.test", 80))
    client.response()
    client.send(get("nosuch.test", 80))
    client.response()
    wait_for(lambda: sum(proxy.stats.requests.values()) == 3, "three records")
    held = connect(proxy)               # the 502 closed the first one
    wait_for(lambda: proxy.stats.open_connections == 1, "one open connection")
    with caplog.at_level(logging.INFO, logger=server_mod.__name__):
        proxy.log_summary()
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("summary:")][0]
    assert "direct 2xx=1 5xx=1, block 4xx=1" in line
    assert "open connections 1" in line
    assert "bytes up=%d" % proxy.stats.bytes_up in line and proxy.stats.bytes_up > 0
    held.close()


# -- hardening (issue 10) ----------------------------------------------------------------------
@pytest.mark.parametrize("request_line", [
    b"GET http://www.example.test.../ HTTP/1.1",
    b"GET http://WWW.Example.TEST./ HTTP/1.1",
    b"CONNECT example.test..:443 HTTP/1.1",
    b"CONNECT example.test.:443 HTTP/1.1",
])
def test_trailing_dots_do_not_escape_the_rules(origins, proxies, request_line):
    # 10.5: the rules, the resolver and the request see the same normalised name. A name
    # the normalisation refuses is a 400; none of these may go direct.
    origin = origins()
    resolver = FakeResolver(addresses={
        name: [LOOPBACK] for name in ("example.test", "example.test.", "example.test..",
                                      "www.example.test", "www.example.test.",
                                      "www.example.test...")})
    proxy = proxies("block\texample.test", resolver=resolver)
    client = HttpClient(proxy.server_port)
    client.send(request_line + b"\r\nHost: x\r\n\r\n")
    resp = client.response("CONNECT" if request_line.startswith(b"CONNECT") else "GET")[0]
    assert resp.status in (400, 403)
    assert resolver.asked == [] and origin.requests == []


def test_the_normalised_name_goes_to_resolver_and_origin(origins, proxies):
    origin = origins()
    resolver = FakeResolver({"www.example.test"})
    proxy = proxies(resolver=resolver)
    client = HttpClient(proxy.server_port)
    client.send(b"GET http://WWW.Example.test.:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
    assert client.response()[0].status == 200
    assert resolver.asked == ["www.example.test"]
    assert b"\r\nHost: www.example.test:%d\r\n" % origin.port in origin.requests[0][0]


def test_informational_and_final_answer_in_one_read(origins, proxies):
    # 10.7: the 100 and the 200 arrive in one segment; the proxy must not wait for more.
    origin = origins(lambda head, body: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))
    proxy = proxies(resolver=FakeResolver({"www.test"}), idle_timeout=30)
    client = HttpClient(proxy.server_port)
    client.sock.settimeout(3)
    client.send(get("www.test", origin.port))
    resp, body = client.response()
    assert (resp.status, body) == (200, b"done")


def informational_flood(ended):
    """An origin that reads a request and answers 102 Processing every 20 ms until the proxy
    hangs up; then it appends True to ended."""
    def flood(sock, address):
        read_head(sock, bytearray())
        try:
            while True:
                sock.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
                gevent.sleep(0.02)
        except OSError:
            ended.append(True)
    return flood


def test_endless_informational_answers_are_abandoned(proxies, tcp_servers):
    # 10.7: one deadline for the whole answer head, however many 1xx come first.
    port = tcp_servers(informational_flood([]))
    proxy = proxies(resolver=FakeResolver({"www.test"}), idle_timeout=0.5)
    client = HttpClient(proxy.server_port)
    client.send(b"GET http://www.test:%d/ HTTP/1.0\r\n\r\n" % port)
    resp, body = client.response()
    assert resp.status == 504 and b"in time" in body


def test_stale_connection_retry_is_for_idempotent_requests_only(proxies, tcp_servers):
    # 10.9: a request that meets a kept-alive connection the origin closes without an
    # answer is repeated on a fresh connection only if it is idempotent (RFC 9110 9.2.2).
    # This origin answers the first request of each connection and closes the
    # connection on the second one after reading it: the race the retry is for.
    seen = []

    def origin(sock, address):
        number = len({c for _, c, _ in seen}) + 1
        buf = bytearray()
        for index in range(2):
            head = read_head(sock, buf)
            if head is None:
                return
            seen.append((head.split(b" ")[0], number, index))
            if index == 0:
                sock.sendall(ok(b"answered"))
    port = tcp_servers(origin)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", port))
    assert client.response()[1] == b"answered"
    client.send(get("www.test", port))
    assert client.response()[1] == b"answered"            # repeated on a fresh connection
    assert seen == [(b"GET", 1, 0), (b"GET", 1, 1), (b"GET", 2, 0)]
    client.send(b"POST http://www.test:%d/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n" % port)
    assert client.response()[0].status == 502
    assert seen[3:] == [(b"POST", 2, 1)]                  # sent once, never repeated


def test_a_kept_connection_the_origin_closed_is_not_used(proxies, tcp_servers):
    # The origin closed the idle kept connection (its FIN is there): even a POST then
    # goes out on a fresh connection instead of meeting the stale one (and a 502).
    seen, closed = [], []

    def origin(sock, address):
        head = read_head(sock, bytearray())
        seen.append(head.split(b" ")[0])
        sock.sendall(ok(b"answered"))                 # keep-alive by HTTP/1.1 default...
        sock.close()                                  # ...and yet gone (short idle timeout)
        closed.append(True)
    port = tcp_servers(origin)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", port))
    assert client.response()[1] == b"answered"
    wait_for(lambda: closed, "the origin to close")
    client.send(b"POST http://www.test:%d/ HTTP/1.1\r\nContent-Length: 1\r\n\r\nz" % port)
    assert client.response()[1] == b"answered"
    assert seen == [b"GET", b"POST"]


def test_a_timeout_notice_on_a_kept_connection_is_not_the_answer(proxies, tcp_servers):
    # Servers close idle connections with a 408 of their own. A GET meets it (kept
    # connections are not peeked before an idempotent request: a retry is cheaper) and is
    # repeated on a fresh connection; a POST, which could not be repeated, is only sent on a
    # kept connection with nothing waiting in it, so it goes out on a fresh one.
    seen, closed = [], []
    answered = gevent.event.Event()

    def origin(sock, address):
        buf = bytearray()
        head = read_head(sock, buf)
        seen.append(head.split(b" ")[0])
        body = read_body(sock, buf, head)
        sock.sendall(ok(b"answered " + body))
        answered.wait()                             # the connection is idle in the proxy now
        answered.clear()
        sock.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        closed.append(True)
        read_head(sock, buf)                        # what the proxy sends meets no reset
    port = tcp_servers(origin)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    for n, request in enumerate([get("www.test", port), get("www.test", port),
                                 b"POST http://www.test:%d/ HTTP/1.1\r\nContent-Length: 1\r\n\r\nz" % port]):
        client.send(request)
        resp, body = client.response()
        assert (resp.status, body) == (200, b"answered " + (b"z" if n == 2 else b"")), n
        answered.set()
        wait_for(lambda: len(closed) == n + 1, "the origin's notice")
    assert seen == [b"GET", b"GET", b"POST"]


@pytest.mark.parametrize("status", [200, 302, 404])
def test_an_empty_answer_keeps_its_content_length(origins, proxies, status):
    # Without "Content-Length: 0" a keep-alive client cannot tell where the answer ends and
    # waits for a close; the proxy keeps the connection for the next request: both wait.
    origin = origins(lambda head, body: b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    sock = connect(proxy)
    sock.sendall(get("www.test", origin.port))
    head = read_head(sock, bytearray())
    assert b"\r\ncontent-length: 0\r\n" in head.lower(), head
    sock.sendall(get("www.test", origin.port))         # and the connection serves the next one
    assert read_head(sock, bytearray()).startswith(b"HTTP/1.1 %d " % status)
    sock.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \x0b4\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n\x1f\x8b",
])
def test_bad_answers_are_502(origins, proxies, answer):
    origin = origins(lambda head, body: answer)
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port))
    resp, body = client.response()
    assert resp.status == 502, body


def test_control_characters_in_a_request_are_400(origins, proxies):
    origin = origins()
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    client = HttpClient(proxy.server_port)
    client.send(b"POST http://www.test:%d/ HTTP/1.1\r\nContent-Length: \x0b3\r\n\r\nabc" % origin.port)
    assert client.response()[0].status == 400
    assert origin.requests == []


def run_with_client_address(proxy, address, raw):
    """Serve one connection as if it came from `address`; returns what the client got."""
    ours, theirs = socket.socketpair()

    def serve():
        try:
            proxy.handle(theirs, address)
        finally:
            theirs.close()              # as StreamServer does after handle()
    job = gevent.spawn(serve)
    ours.sendall(raw)
    ours.shutdown(socket.SHUT_WR)
    got = b""
    ours.settimeout(DEADLINE_SECONDS)
    while True:
        data = ours.recv(65536)
        if not data:
            break
        got += data
    job.join()
    ours.close()
    return got


@pytest.mark.parametrize("destination", ["127.0.0.1", "127.9.9.9", "::1", "169.254.1.1",
                                         "fe80::1", "0.0.0.0", "::ffff:127.0.0.1"])
def test_remote_clients_may_not_reach_loopback_or_link_local(origins, proxies, destination, caplog):
    # 10.11: a peer over the VPN must not reach the proxy host's own services.
    origin = origins()
    resolver = FakeResolver(addresses={"inside.test": [ipaddress.ip_address(destination)]})
    proxy = proxies(resolver=resolver)
    with caplog.at_level(logging.INFO, logger=server_mod.__name__):
        got = run_with_client_address(proxy, ("10.0.1.2", 40000), get("inside.test", origin.port))
    assert got.startswith(b"HTTP/1.1 403 ")
    assert any("loopback or link-local" in r.getMessage() for r in caplog.records)
    got = run_with_client_address(proxy, ("10.0.1.2", 40000),
                                  b"CONNECT inside.test:%d HTTP/1.1\r\n\r\n" % origin.port)
    assert got.startswith(b"HTTP/1.1 403 ")
    assert origin.requests == []


def test_private_ranges_and_allow_private_are_allowed(origins, proxies):
    origin = origins()
    resolver = FakeResolver(addresses={"inside.test": [LOOPBACK]})
    proxy = proxies(resolver=resolver, allow_private=True)
    got = run_with_client_address(proxy, ("10.0.1.2", 40000), get("inside.test", origin.port))
    assert got.startswith(b"HTTP/1.1 200 ")
    # A loopback client reaches loopback without the flag (the fixtures above rely on it).
    proxy = proxies(resolver=resolver)
    got = run_with_client_address(proxy, ("::ffff:127.0.0.1", 40000), get("inside.test", origin.port))
    assert got.startswith(b"HTTP/1.1 200 ")


def test_connect_failure_is_a_typed_error_for_other_front_ends(proxies):
    proxy = proxies(resolver=FakeResolver(addresses={"gone.test": [LOOPBACK]}))
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with pytest.raises(NextHopError) as e:
        proxy.outbound.open_tunnel(Action.DIRECT, "gone.test", port, LOOPBACK)
    assert e.value.status_hint == 502


def test_informational_flood_stops_when_the_client_is_gone(proxies, tcp_servers):
    # 10.7: an HTTP/1.0 client gets no 1xx; when it hangs up, the proxy stops waiting for
    # the final answer at the next 1xx instead of at the (long) head deadline.
    ended = []
    port = tcp_servers(informational_flood(ended))
    proxy = proxies(resolver=FakeResolver({"www.test"}), idle_timeout=60)
    client = HttpClient(proxy.server_port)
    client.send(b"GET http://www.test:%d/ HTTP/1.0\r\n\r\n" % port)
    wait_for(lambda: proxy.stats.open_connections == 1, "the request to be in flight")
    client.close()
    wait_for(lambda: ended, "the proxy to drop the upstream connection")


def test_a_bug_in_a_front_end_is_reported_and_the_next_connection_is_served(origins, proxies, monkeypatch):
    # Each connection runs in a plain greenlet (server._Handlers): an error escaping the
    # front ends still gets gevent's report, the connection is closed, the server goes on.
    origin = origins()
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    reported = []
    monkeypatch.setattr(gevent.get_hub(), "handle_error", lambda context, kind, value, tb: reported.append(kind))
    real_handle = server_mod.http_session.handle
    calls = []

    def broken_once(sock, first, context):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_handle(sock, first, context)
    monkeypatch.setattr(server_mod.http_session, "handle", broken_once)
    broken = HttpClient(proxy.server_port)
    broken.send(get("www.test", origin.port))
    assert broken.sock.recv(100) == b""     # closed
    assert reported == [RuntimeError]
    assert proxy.stats.open_connections == 0
    client = HttpClient(proxy.server_port)
    client.send(get("www.test", origin.port))
    resp, body = client.response()
    assert (resp.status, body) == (200, b"hello")


def test_a_connection_greenlet_serves_the_next_connection_and_few_wait(origins, proxies, monkeypatch):
    # server._Handlers: a greenlet whose connection ended is parked for the next one (no new
    # greenlet, no new frame stack), and no more than IDLE_HANDLERS stay parked.
    origin = origins()
    proxy = proxies(resolver=FakeResolver({"www.test"}))
    real_handle = server_mod.http_session.handle
    served_by = []

    def recording(sock, first, context):
        served_by.append(gevent.getcurrent())
        return real_handle(sock, first, context)
    monkeypatch.setattr(server_mod.http_session, "handle", recording)
    monkeypatch.setattr(server_mod, "IDLE_HANDLERS", 2)
    for _ in range(2):                      # one after the other: the same greenlet
        client = HttpClient(proxy.server_port)
        client.send(get("www.test", origin.port))
        resp, body = client.response()
        assert (resp.status, body) == (200, b"hello")
        client.sock.close()
        wait_for(lambda: proxy.stats.open_connections == 0)
    assert served_by[0] is served_by[1]
    clients = [HttpClient(proxy.server_port) for _ in range(5)]     # five at once
    for client in clients:
        client.send(get("www.test", origin.port))
        assert client.response()[0].status == 200
    for client in clients:
        client.sock.close()
    wait_for(lambda: proxy.stats.open_connections == 0)
    assert len(set(served_by[2:])) == 5
    assert len(proxy.handlers.idle) == 2
    assert all(not handler.dead for handler in proxy.handlers.idle)

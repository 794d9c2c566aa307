"""proxy/socks_session.py without root: the proxy on 127.0.0.1:0 with its SOCKS5 front end,
names resolved by an injected resolver, origins and a second proxy (the -f upstream) in
this process (helpers of test_proxy_server.py)."""
import logging
import time

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from tomato_gevent.proxy import socks5, socks_session
from tomato_gevent.proxy.auth import parse_auth_lines
from tomato_gevent.proxy.socks5 import CMD_BIND, CMD_CONNECT, CMD_UDP_ASSOCIATE

from .proxy_doubles import DEADLINE_SECONDS, FakeResolver, wait_for


@pytest.fixture
def echo():
    """A TCP server that answers every chunk with b"echo:" + chunk."""
    def handle(sock, address):
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(b"echo:" + data)
    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    yield server.server_port
    server.stop()


def socks_proxy(proxies, rules="", users=None, **kwargs):
    authenticator = parse_auth_lines(users, "users") if users else None
    return proxies(rules, resolver=kwargs.pop("resolver", FakeResolver({"echo.test", "blocked.test"})),
                   socks5_handler=socks_session.handle, authenticator=authenticator,
                   **kwargs)


class SocksClient:
    def __init__(self, proxy):
        self.sock = socket.create_connection(("127.0.0.1", proxy.server_port))
        self.sock.settimeout(DEADLINE_SECONDS)
        self.buf = bytearray()

    def read(self, parse):
        while True:
            message = parse(self.buf)
            if message is not None:
                del self.buf[:message.length]
                return message
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def method(self, offer=b"\x00"):
        self.sock.sendall(bytes((5, len(offer))) + offer)
        return self.read(lambda b: _Choice(b[1], 2) if len(b) >= 2 else None).method

    def request(self, host, port, command=CMD_CONNECT, extra=b""):
        self.sock.sendall(socks5.render_request(command, host, port) + extra)
        return self.read(socks5.parse_reply)

    def exactly(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def rest(self):
        """Everything until the proxy closes."""
        data = bytes(self.buf)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk


class _Choice:
    def __init__(self, method, length):
        self.method, self.length = method, length


def test_connect_by_name_relays_both_ways_and_passes_early_data(proxies, echo):
    proxy = socks_proxy(proxies)
    client = SocksClient(proxy)
    assert client.method() == socks5.METHOD_NO_AUTH
    reply = client.request("ECHO.test.", echo, extra=b"early")     # data before our reply: kept
    assert reply.code == socks5.SUCCEEDED and reply.host == "127.0.0.1" and reply.port > 0
    assert client.exactly(10) == b"echo:early"
    client.sock.sendall(b"more")
    assert client.exactly(9) == b"echo:more"
    client.sock.shutdown(socket.SHUT_WR)
    assert client.rest() == b""


def test_a_next_hop_that_speaks_first_is_heard_before_the_client_sends(proxies):
    # The tunnel waits for the next hop's first bytes rather than reading right away (it has
    # been asked nothing): a banner (SSH, SMTP) still comes through at once.
    def banner(sock, address):
        sock.sendall(b"SSH-2.0-test\r\n")
        sock.recv(10)
    server = StreamServer(("127.0.0.1", 0), banner)
    server.start()
    try:
        client = SocksClient(socks_proxy(proxies))
        client.method()
        assert client.request("127.0.0.1", server.server_port).code == socks5.SUCCEEDED
        assert client.exactly(14) == b"SSH-2.0-test\r\n"
    finally:
        server.stop()


@pytest.mark.parametrize("rules, host, code", [
    ("block\tblocked.test\n", "blocked.test", socks5.NOT_ALLOWED),
    ("block\tcidr:127.0.0.0/8\n", "127.0.0.1", socks5.NOT_ALLOWED),
    ("", "unknown.test", socks5.HOST_UNREACHABLE),
    ("", "a..b", socks5.HOST_UNREACHABLE),
])
def test_refusals_have_their_reply_codes(proxies, rules, host, code):
    proxy = socks_proxy(proxies, rules)
    client = SocksClient(proxy)
    client.method()
    assert client.request(host, 80).code == code
    assert client.rest() == b""


def test_connection_refused_is_0x05(proxies):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()                        # nothing listens there now
    client = SocksClient(socks_proxy(proxies))
    client.method()
    assert client.request("echo.test", port).code == socks5.CONNECTION_REFUSED


def test_bind_is_not_supported_and_logged(proxies, caplog):
    client = SocksClient(socks_proxy(proxies))
    client.method()
    with caplog.at_level(logging.INFO):
        assert client.request("127.0.0.1", 80, command=CMD_BIND).code == socks5.COMMAND_NOT_SUPPORTED
        assert client.rest() == b""
    assert "SOCKS5 BIND 127.0.0.1:80 - 501" in caplog.text and "reply 0x07" in caplog.text


def test_forward_is_an_http_connect_to_the_upstream(proxies, echo):
    upstream = proxies("", resolver=FakeResolver({"echo.test"}))
    proxy = socks_proxy(proxies, "forward\techo.test\n", upstream=("127.0.0.1", upstream.server_port),
                        resolver=FakeResolver())           # this proxy cannot resolve echo.test itself
    client = SocksClient(proxy)
    client.method()
    assert client.request("echo.test", echo).code == socks5.SUCCEEDED
    client.sock.sendall(b"via upstream")
    assert client.sock.recv(100) == b"echo:via upstream"


@pytest.mark.parametrize("offer, credentials, accepted", [
    (b"\x02", (b"alice", b"pw:1"), True),
    (b"\x00\x02", (b"alice", b"wrong"), False),
    (b"\x02", (b"bob", b"pw:1"), False),
])
def test_username_password(proxies, echo, offer, credentials, accepted):
    client = SocksClient(socks_proxy(proxies, users=["alice:pw:1\n"]))
    assert client.method(offer) == socks5.METHOD_USERNAME_PASSWORD
    client.sock.sendall(socks5.render_credentials(*credentials))
    status = client.read(lambda b: _Choice(b[1], 2) if len(b) >= 2 else None).method
    assert status == (socks5.AUTH_SUCCESS if accepted else socks5.AUTH_FAILURE)
    if accepted:
        assert client.request("echo.test", echo).code == socks5.SUCCEEDED
    else:
        assert client.rest() == b""


def test_no_auth_offer_is_refused_when_credentials_are_required(proxies):
    client = SocksClient(socks_proxy(proxies, users=["alice:pw\n"]))
    assert client.method(b"\x00") == socks5.METHOD_NONE_ACCEPTABLE
    assert client.rest() == b""


def test_a_stalled_handshake_is_closed_after_the_idle_timeout(proxies):
    client = SocksClient(socks_proxy(proxies, idle_timeout=0.5))
    assert client.method() == socks5.METHOD_NO_AUTH
    client.sock.sendall(b"\x05\x01\x00\x03")        # a request cut short, then silence
    started = time.monotonic()
    assert client.rest() == b""
    assert time.monotonic() - started < DEADLINE_SECONDS


def test_reply_for_maps_outbound_errors():
    from tomato_gevent.errors import NextHopError, Refused
    assert socks_session.reply_for(Refused("x")) == socks5.NOT_ALLOWED
    assert socks_session.reply_for(NextHopError("x", 504)) == socks5.TTL_EXPIRED
    assert socks_session.reply_for(NextHopError("x", 502)) == socks5.HOST_UNREACHABLE
    assert socks_session.reply_for(ValueError("x")) == socks5.GENERAL_FAILURE


def test_a_unicode_name_is_decided_and_resolved_as_its_idna_2008_a_label(proxies, echo):
    resolver = FakeResolver({"xn--fa-hia.de"})
    proxy = socks_proxy(proxies, "block\tfass.de\n", resolver=resolver)
    client = SocksClient(proxy)
    client.method()
    assert client.request("FAß.de.", echo).code == socks5.SUCCEEDED     # not fass.de (IDNA 2003)
    assert resolver.asked == ["xn--fa-hia.de"]


def test_a_literal_spelled_as_a_name_is_asked_for_in_its_canonical_spelling(proxies):
    # The HTTP twin is in test_proxy_server: both edges say ::1 for 0:0::1.
    resolver = FakeResolver()
    proxy = socks_proxy(proxies, resolver=resolver)
    client = SocksClient(proxy)
    client.method()
    client.sock.sendall(b"\x05\x01\x00\x03\x060:0::1\x00\x50")     # ATYP domain name "0:0::1", port 80
    assert client.read(socks5.parse_reply).code != socks5.SUCCEEDED
    assert resolver.asked == ["::1"]


# -- UDP ASSOCIATE --------------------------------------------------------------------------
@pytest.fixture
def udp_echo():
    """A UDP server on 127.0.0.1 answering every datagram with b"echo:" + datagram; .got lists them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    got = []

    def serve():
        while True:
            data, address = sock.recvfrom(65535)
            got.append(data)
            sock.sendto(b"echo:" + data, address)
    server = gevent.spawn(serve)
    server.port, server.got = sock.getsockname()[1], got
    yield server
    server.kill()
    sock.close()


def associate(proxy, client_port=0):
    """(control connection, UDP socket of the client, the relay's (ip, port))."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", client_port))
    udp.settimeout(DEADLINE_SECONDS)
    control = SocksClient(proxy)
    assert control.method() == socks5.METHOD_NO_AUTH
    reply = control.request("0.0.0.0", 0, command=CMD_UDP_ASSOCIATE)
    assert reply.code == socks5.SUCCEEDED and reply.host == "127.0.0.1" and reply.port > 0
    return control, udp, (reply.host, reply.port)


def test_udp_associate_relays_datagrams_both_ways(proxies, udp_echo):
    proxy = socks_proxy(proxies, resolver=FakeResolver({"echo.test"}))
    control, udp, relay = associate(proxy)
    for host, payload in [("127.0.0.1", b"one"), ("echo.test", b"two"), ("ECHO.test.", b"x" * 1400)]:
        udp.sendto(socks5.render_udp_header(host, udp_echo.port) + payload, relay)
        data, source = udp.recvfrom(65535)
        assert source == relay
        answer = socks5.parse_udp_datagram(data)
        assert (answer.host, answer.port, answer.payload) == ("127.0.0.1", udp_echo.port, b"echo:" + payload)
    assert udp_echo.got == [b"one", b"two", b"x" * 1400]


def test_udp_datagrams_the_rules_do_not_send_direct_are_dropped_and_counted(proxies, udp_echo, caplog):
    proxy = socks_proxy(proxies, "block\tblocked.test\nforward\tfar.test\n",
                        resolver=FakeResolver({"echo.test", "blocked.test", "far.test"}),
                        upstream=("127.0.0.1", 9))
    control, udp, relay = associate(proxy)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with caplog.at_level(logging.INFO):
        udp.sendto(socks5.render_udp_header("echo.test", udp_echo.port) + b"first", relay)
        assert udp.recvfrom(65535)[0].endswith(b"echo:first")          # the client's port is known now
        for datagram in [socks5.render_udp_header("blocked.test", udp_echo.port) + b"no",
                         socks5.render_udp_header("far.test", udp_echo.port) + b"no",
                         b"\x00\x00\x01\x01\x7f\x00\x00\x01\x00\x07fragment",      # FRAG 1
                         b"\x00\x00"]:                                          # truncated header
            udp.sendto(datagram, relay)
        stranger.sendto(socks5.render_udp_header("echo.test", udp_echo.port) + b"no", relay)
        udp.sendto(socks5.render_udp_header("echo.test", udp_echo.port) + b"last", relay)
        assert udp.recvfrom(65535)[0].endswith(b"echo:last")            # still relaying
        control.sock.close()                                            # ends the association
        wait_for(lambda: "UDP-ASSOCIATE" in caplog.text, "the association's log line")
    stranger.close()
    assert udp_echo.got == [b"first", b"last"]
    assert ("dropped 1 blocked, 1 forward (no UDP through -f), 1 from strangers, 2 malformed"
            in caplog.text), caplog.text
    assert proxy.stats.requests["direct", "2xx"] == 1


def test_only_endpoints_the_client_sent_to_may_answer(proxies, udp_echo):
    proxy = socks_proxy(proxies)
    control, udp, relay = associate(proxy)
    udp.sendto(socks5.render_udp_header("127.0.0.1", udp_echo.port) + b"hi", relay)
    assert udp.recvfrom(65535)[0].endswith(b"echo:hi")
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.sendto(b"unasked", relay)                     # not an endpoint the client sent to
    udp.sendto(socks5.render_udp_header("127.0.0.1", udp_echo.port) + b"again", relay)
    data = udp.recvfrom(65535)[0]
    assert data.endswith(b"echo:again")                 # the stranger's datagram never came first
    other.close()


def test_the_association_ends_with_its_tcp_connection(proxies, udp_echo):
    proxy = socks_proxy(proxies)
    control, udp, relay = associate(proxy)
    control.sock.close()
    wait_for(lambda: proxy.stats.requests["direct", "2xx"] == 1, "the association to end")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(relay)
    probe.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):         # the port is closed: ICMP port unreachable
        probe.recv(100)
    probe.close()


def test_an_idle_association_ends_after_the_tunnel_idle_timeout(proxies):
    proxy = socks_proxy(proxies, tunnel_idle_timeout=0.2)
    control, udp, relay = associate(proxy)
    assert control.rest() == b""                        # the proxy closes the TCP connection

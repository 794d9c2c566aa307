"""Credentials (issue 24 item 4): --auth-file re-read on SIGHUP (a revoked user refused at once,
open tunnels stay), refusals name the user tried, and credentials for an upstream proxy: the
proxy's -f user:password@host:port (or --forward-auth-file) and the VPN's --http-proxy, whose
407 is an error of its own. The password never reaches a log line."""
import base64
import io
import os
import signal
import subprocess
import sys

import pytest
from gevent import socket
from gevent.server import StreamServer

from tomato_gevent.errors import ConfigError, RemoteProtocolError
from tomato_gevent.http1 import upstream_auth
from tomato_gevent.proxy import socks5, socks_session
from tomato_gevent.proxy.access_log import AccessLog
from tomato_gevent.proxy.auth import parse_auth_lines
from tomato_gevent.rules import Action
from tomato_gevent.http1.upstream_auth import basic_authorization, split_userinfo
from tomato_gevent.vpn.http_connect import ProxyAuthRequired, connect_request, parse_connect_reply
from tomato_gevent.vpn.tcp import TcpTransport, open_tcp_listener

from .proxy_clients import HttpClient, SocksClient, get
from .proxy_doubles import FakeResolver, wait_for
from .proxy_process import REPO, ProxyProcess, free_port

SECRET = "pa:ss@w0rd"                           # ':' and '@' inside: the last '@' ends it


def basic(userinfo):
    return b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(userinfo.encode())


@pytest.mark.parametrize("text,expected", [
    ("10.0.1.2:1080", (None, "10.0.1.2:1080")),
    ("alice:%s@10.0.1.2:1080" % SECRET, ("alice:" + SECRET, "10.0.1.2:1080")),
    ("bob:x@[2001:db8::1]:3128", ("bob:x", "[2001:db8::1]:3128")),
])
def test_split_userinfo(text, expected):
    assert split_userinfo(text) == expected


@pytest.mark.parametrize("text", ["alice@host:1", ":pw@host:1"])
def test_userinfo_needs_a_user_and_a_password(text):
    with pytest.raises(ValueError):
        split_userinfo(text)


# -- the proxy's -f -----------------------------------------------------------------------------
@pytest.fixture
def echo_port():
    def echo(sock, address):
        while True:
            data = sock.recv(65536)
            if not data:
                return
            if data.startswith(b"GET "):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\norigin")
            else:
                sock.sendall(b"echo:" + data)
    server = StreamServer(("127.0.0.1", 0), echo)
    server.start()
    yield server.server_port
    server.stop()


def chained(proxies, authorization):
    """A forwards everything to B, which wants alice's credentials."""
    b = proxies(resolver=FakeResolver({"origin.test"}),
                authenticator=parse_auth_lines(["alice:" + SECRET], "users"))
    out = io.StringIO()
    a = proxies(resolver=FakeResolver({"origin.test"}), upstream=("127.0.0.1", b.server_port),
                default_action=Action.FORWARD,
                upstream_authorization=authorization, socks5_handler=socks_session.handle,
                access_log=AccessLog(stream=out))
    a.lines = lambda: out.getvalue().splitlines()
    return a, b


def test_f_credentials_go_with_requests_connects_and_socks5_tunnels(proxies, echo_port):
    a, b = chained(proxies, basic_authorization("alice:" + SECRET))
    client = HttpClient(a.server_port)
    client.send(get("origin.test", echo_port))
    head, body = client.response()
    assert head.status == 200 and body == b"origin"
    client.close()
    client = HttpClient(a.server_port)
    client.send(b"CONNECT origin.test:%d HTTP/1.1\r\n\r\n" % echo_port)
    assert client.response("CONNECT")[0].status == 200
    client.send(b"through")
    assert client.sock.recv(100) == b"echo:through"
    client.close()
    socks = SocksClient(a.server_port)
    assert socks.method() == socks5.METHOD_NO_AUTH
    assert socks.request("origin.test", echo_port).code == socks5.SUCCEEDED
    socks.sock.sendall(b"socks")
    assert socks.sock.recv(100) == b"echo:socks"
    socks.close()
    wait_for(lambda: b.stats.requests["direct", "2xx"] == 3, "B to serve all three")
    assert b.stats.requests["-", "4xx"] == 0


def test_without_credentials_the_upstream_407_reaches_the_client(proxies, echo_port):
    a, b = chained(proxies, None)
    client = HttpClient(a.server_port)
    client.send(get("origin.test", echo_port))
    assert client.response()[0].status == 407
    client.send(b"CONNECT origin.test:%d HTTP/1.1\r\n\r\n" % echo_port)
    assert client.response("CONNECT")[0].status == 407
    socks = SocksClient(a.server_port)
    assert socks.method() == socks5.METHOD_NO_AUTH
    assert socks.request("origin.test", echo_port).code == socks5.NOT_ALLOWED
    wait_for(lambda: len(a.lines()) == 3, "three access lines")
    assert all(" forward " in line and " 407 " in line for line in a.lines())


def test_bin_proxy_sends_f_credentials_and_never_logs_them(tmp_path):
    seen = []

    def upstream(sock, address):
        seen.append(sock.recv(65536))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    fake = StreamServer(("127.0.0.1", 0), upstream)
    fake.start()
    credentials = tmp_path / "upstream"
    credentials.write_text("carol:%s\n" % SECRET)
    credentials.chmod(0o600)
    try:
        for extra in (["-f", "alice:%s@127.0.0.1:%d" % (SECRET, fake.server_port)],
                      ["-f", "127.0.0.1:%d" % fake.server_port, "--forward-auth-file", str(credentials)]):
            port = free_port()
            proxy = ProxyProcess("-a", "127.0.0.1:%d" % port, "-d", "forward", "--workers", "1", *extra)
            try:
                proxy.wait_line(lambda line: "listening on" in line, "the listening line")
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(get("far.test", 80, b"/x"))
                    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
                proxy.wait_line(lambda line: "far.test:80/x forward" in line, "the access line")
            finally:
                proxy.stop()
            assert SECRET not in "\n".join(proxy.lines)
    finally:
        fake.stop()
    assert basic("alice:" + SECRET) in seen[0] and basic("carol:" + SECRET) in seen[1]


# -- the VPN's --http-proxy ---------------------------------------------------------------------
def test_vpn_connect_request_carries_the_credentials_and_a_407_is_its_own_error():
    request = connect_request("peer.example", 5000, basic_authorization("alice:" + SECRET))
    assert request.endswith(b"\r\n" + basic("alice:" + SECRET) + b"\r\n")
    with pytest.raises(ProxyAuthRequired, match="407 Proxy Authentication Required: it wants credentials"):
        parse_connect_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as refused:
        parse_connect_reply(b"HTTP/1.1 403 Forbidden\r\n\r\n")
    assert not isinstance(refused.value, ProxyAuthRequired)


def test_vpn_dialler_sends_the_credentials_to_the_http_proxy():
    seen = []

    def proxy(sock, address):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        seen.append(head)
        ok = basic("alice:" + SECRET) in head
        sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n" if ok else b"HTTP/1.1 407 Who\r\n\r\n")
        sock.recv(1)
    server = StreamServer(("127.0.0.1", 0), proxy)
    server.start()
    transports = []
    try:
        for authorization in (basic_authorization("alice:" + SECRET), None):
            transport = TcpTransport(open_tcp_listener(("127.0.0.1", 0)), None,
                                     http_proxy=("127.0.0.1", server.server_port),
                                     connect_target=("peer.example", 5000), proxy_authorization=authorization)
            transports.append(transport)
            if authorization is not None:
                transport._connect_via_proxy().close()
            else:
                with pytest.raises(ProxyAuthRequired):
                    transport._connect_via_proxy()
    finally:
        for transport in transports:
            transport.close()
        server.stop()
    assert seen[0].startswith(b"CONNECT peer.example:5000 HTTP/1.1\r\n") and b"Proxy-Authorization" not in seen[1]


# -- --auth-file on SIGHUP ----------------------------------------------------------------------
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_rereads_the_auth_file_revoked_users_go_open_tunnels_stay(tmp_path, echo_port, workers):
    users = tmp_path / "users"
    users.write_text("alice:%s\nbob:b-pass\n" % SECRET)
    users.chmod(0o600)
    port = free_port()
    proxy = ProxyProcess("-a", "127.0.0.1:%d" % port, "--auth-file", str(users), "--workers", workers,
                         "--allow-private")
    try:
        proxy.wait_line(lambda line: "listening on" in line, "the listening line")
        alice = basic("alice:" + SECRET)
        keep_alive = HttpClient(port)
        keep_alive.send(get("127.0.0.1", echo_port, extra=alice))
        assert keep_alive.response()[0].status == 200
        tunnel = HttpClient(port)
        tunnel.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n%s\r\n" % (echo_port, alice))
        assert tunnel.response("CONNECT")[0].status == 200
        tunnel.send(b"before")
        assert tunnel.sock.recv(100) == b"echo:before"

        users.write_text("bob:b-pass\n")                    # alice revoked
        start = len(proxy.lines)
        proxy.signal(signal.SIGHUP)
        for _ in range(int(workers)):
            start = proxy.lines.index(proxy.wait_line(lambda line: "users reloaded: 1 in" in line,
                                                      "the reload line", start)) + 1

        keep_alive.send(get("127.0.0.1", echo_port, extra=alice))     # the same connection, at once
        assert keep_alive.response()[0].status == 407
        socks = SocksClient(port)
        assert socks.method(b"\x02") == socks5.METHOD_USERNAME_PASSWORD
        assert socks.login(b"alice", SECRET.encode()) is False
        bob = HttpClient(port)
        bob.send(get("127.0.0.1", echo_port, extra=basic("bob:b-pass")))
        assert bob.response()[0].status == 200
        tunnel.send(b"after")                               # the open tunnel stays
        assert tunnel.sock.recv(100) == b"echo:after"
        line = proxy.wait_line(lambda line: "wrong password or unknown user 'alice'" in line, "the 407 naming alice")
        assert " - GET 127.0.0.1:%d/ - 407 " % echo_port in line
        # The SOCKS5 refusal is the address's second failure: counted for the next report line.
    finally:
        proxy.stop()
    assert SECRET not in "\n".join(proxy.lines)


def test_a_bad_auth_file_on_sighup_keeps_the_users(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:a\n")
    users.chmod(0o600)
    port = free_port()
    proxy = ProxyProcess("-a", "127.0.0.1:%d" % port, "--auth-file", str(users), "--workers", "1")
    try:
        proxy.wait_line(lambda line: "listening on" in line, "the listening line")
        users.write_text("no colon here\n")
        proxy.signal(signal.SIGHUP)
        proxy.wait_line(lambda line: "auth file reload failed, keeping the old users" in line, "the error")
        client = HttpClient(port)
        client.send(get("127.0.0.1", 9, extra=basic("alice:a")))
        assert client.response()[0].status != 407
    finally:
        proxy.stop()


def test_users_come_from_the_systemd_credential_when_no_auth_file_is_given(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "proxy-users").write_text("alice:a\n")
    (credentials / "proxy-users").chmod(0o600)
    port = free_port()
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(credentials))
    proc = subprocess.Popen([sys.executable, str(REPO / "bin" / "proxy"), "-a", "127.0.0.1:%d" % port,
                             "--workers", "1"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "1 users in %s" % (credentials / "proxy-users") in line, line
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_one_flag_and_its_auth_file_give_the_upstream_and_its_authorization(tmp_path):
    # The proxy's -f/--forward-auth-file and the VPN's --http-proxy/--http-proxy-auth-file
    # share upstream_auth.authorization: credentials from exactly one of the two.
    creds = tmp_path / "creds"
    creds.write_text("alice:s3cret\n")
    creds.chmod(0o600)
    flags = ("-f", "--forward-auth-file", "upstream proxy credentials")
    assert upstream_auth.authorization(None, None, *flags) == (None, None)
    assert upstream_auth.authorization(("h", 3128, None), None, *flags) == (("h", 3128), None)
    assert upstream_auth.authorization(("h", 3128, "alice:s3cret"), None, *flags) == (("h", 3128), b"Basic YWxpY2U6czNjcmV0")
    assert upstream_auth.authorization(("h", 3128, None), str(creds), *flags) == (("h", 3128), b"Basic YWxpY2U6czNjcmV0")
    with pytest.raises(ConfigError, match="^--forward-auth-file needs -f$"):
        upstream_auth.authorization(None, str(creds), *flags)
    with pytest.raises(ConfigError, match="^-f has credentials and --forward-auth-file gives them too: give one$"):
        upstream_auth.authorization(("h", 3128, "alice:s3cret"), str(creds), *flags)

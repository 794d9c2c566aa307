"""Forwarding loops (issue 24 item 1): a proxy whose -f is itself, and two proxies forwarding
to each other, answer 508 at the first repeat and keep serving; bin/proxy refuses an -f that
is one of its own listen addresses at start."""
import ipaddress
import subprocess
import sys

import pytest
from gevent import socket

from tomato_gevent.proxy import loop_guard, socks5, socks_session
from tomato_gevent.proxy.server import ProxyServer, make_listener
from tomato_gevent.rules import Action, RuleSet, parse_rules

from .proxy_clients import HttpClient, SocksClient, get
from .proxy_doubles import FakeResolver, wait_for
from .proxy_process import REPO, free_port

A = ipaddress.ip_address


@pytest.mark.parametrize("fields,found", [
    (b"Via: 1.1 tomato-0a1b2c3d\r\n", True),
    (b"Accept: */*\r\nVIA: 1.0 squid, 1.1 tomato-0a1b2c3d (comment)\r\n", True),
    (b"via: HTTP/1.1 other\r\nVia: 1.1  tomato-0a1b2c3d\r\n", True),
    (b"Via: 1.1 tomato-0a1b2c3e\r\n", False),             # another tomato
    (b"Via: 1.1 tomato-0a1b2c3d0\r\n", False),            # a longer pseudonym
    (b"Via: 1.1 x tomato-0a1b2c3d\r\n", False),           # in a comment position
    (b"X-Via: 1.1 tomato-0a1b2c3d\r\n", False),           # another field
    (b"", False),
])
def test_carries_token_reads_the_received_by_of_each_via_entry(fields, found):
    assert loop_guard.carries_token(fields, b"tomato-0a1b2c3d") is found


def test_each_server_has_its_own_token():
    assert loop_guard.new_via_token() != loop_guard.new_via_token()
    assert loop_guard.new_via_token().startswith(b"tomato-")


def local(*addresses):
    return lambda address: str(address) in addresses


@pytest.mark.parametrize("forward,port,listen,is_self", [
    (["10.0.1.1"], 1080, "10.0.1.1", True),                 # the README's example on host A
    (["10.0.1.1"], 1081, "10.0.1.1", False),
    (["10.0.1.2"], 1080, "10.0.1.1", False),                # host B
    (["10.0.1.1"], 1080, "0.0.0.0", True),                  # -a :1080 on A, a local address
    (["10.0.1.2"], 1080, "0.0.0.0", False),
    (["127.0.0.1"], 1080, "::", True),                      # dual-stack wildcard takes IPv4 too
    (["::ffff:10.0.1.1"], 1080, "10.0.1.1", True),
    (["::1"], 1080, "0.0.0.0", False),                      # an IPv4 wildcard is not on ::1
    (["10.0.1.2", "10.0.1.1"], 1080, "10.0.1.1", True),     # any address of the name
])
def test_forward_is_self(forward, port, listen, is_self):
    addresses = [A(a) for a in forward]
    assert loop_guard.forward_is_self(addresses, port, A(listen), 1080,
                                      local("10.0.1.1", "127.0.0.1", "::1")) is is_self


def test_local_address_is_what_this_host_can_bind():
    assert loop_guard.local_address(A("127.0.0.1"))
    assert not loop_guard.local_address(A("192.0.2.123"))   # TEST-NET-1: on no interface here


@pytest.fixture
def listeners():
    made = []

    def listener():
        sock = make_listener("127.0.0.1", 0)
        made.append(sock)
        return sock, sock.getsockname()[1]
    yield listener
    for sock in made:
        sock.close()


@pytest.fixture
def servers():
    made = []

    def start(listener, upstream, rules=""):
        proxy = ProxyServer(listener, RuleSet(parse_rules(rules.splitlines())), default_action=Action.FORWARD,
                            upstream=upstream, resolver=FakeResolver({"origin.test"}),
                            socks5_handler=socks_session.handle)
        proxy.start()
        made.append(proxy)
        return proxy
    yield start
    for proxy in made:
        proxy.stop(timeout=1)


def keeps_serving(proxy, origin_port):
    """A direct request through proxy still gets its answer."""
    client = HttpClient(proxy.server_port)
    client.send(get("origin.test", origin_port))
    head, body = client.response()
    client.close()
    return head.status == 200 and body == b"origin"


def test_a_proxy_forwarding_to_itself_answers_508_and_keeps_serving(listeners, servers, origin_port):
    listener, port = listeners()
    proxy = servers(listener, ("127.0.0.1", port), "direct\torigin.test\n")
    for request, method in [(get("far.test", 80, b"/x?secret"), "GET"),
                            (b"CONNECT far.test:443 HTTP/1.1\r\n\r\n", "CONNECT")]:
        client = HttpClient(port)
        client.send(request)
        head, body = client.response(method)
        assert head.status == 508, body
        client.close()
    wait_for(lambda: proxy.stats.open_connections == 0, "every looped connection to end")
    assert proxy.stats.requests["-", "5xx"] == 2               # each came round exactly once
    assert keeps_serving(proxy, origin_port)


def test_two_proxies_forwarding_to_each_other_answer_508(listeners, servers, origin_port):
    listener_a, port_a = listeners()
    listener_b, port_b = listeners()
    a = servers(listener_a, ("127.0.0.1", port_b), "direct\torigin.test\n")
    b = servers(listener_b, ("127.0.0.1", port_a))
    client = HttpClient(port_a)
    client.send(get("far.test", 80))
    head, body = client.response()
    assert head.status == 508 and b"loop" in body
    client.close()
    socks = SocksClient(port_a)                 # SOCKS5 CONNECT -> HTTP CONNECT via -f, round again
    assert socks.method() == socks5.METHOD_NO_AUTH
    assert socks.request("far.test", 443).code != socks5.SUCCEEDED
    socks.close()
    wait_for(lambda: a.stats.open_connections == 0 and b.stats.open_connections == 0, "the loops to end")
    assert a.stats.requests["-", "5xx"] == 2 and b.stats.requests["-", "5xx"] == 0
    assert keeps_serving(a, origin_port)


@pytest.mark.parametrize("listen,forward", [("127.0.0.1:{port}", "127.0.0.1:{port}"),
                                            (":{port}", "127.0.0.1:{port}"),
                                            (":{port}", "localhost:{port}")])
def test_bin_proxy_refuses_an_f_that_is_its_own_listen_address(listen, forward):
    port = free_port()
    done = subprocess.run([sys.executable, str(REPO / "bin" / "proxy"), "-a", listen.format(port=port),
                           "-f", forward.format(port=port)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "own listen address" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as probe:              # and it let go of the port
        probe.bind(("127.0.0.1", port))

import pytest
from gevent.server import StreamServer

from tomato_gevent.proxy.server import ProxyServer
from tomato_gevent.rules import RuleSet, parse_rules

from .proxy_doubles import FakeResolver
from .vpn_doubles import Side


@pytest.fixture
def proxies():
    made = []

    def make(rules="", resolver=None, **kwargs):
        rule_set = RuleSet(parse_rules(rules.splitlines()))
        proxy = ProxyServer(("127.0.0.1", 0), rule_set, resolver=resolver or FakeResolver(), **kwargs)
        proxy.start()
        made.append(proxy)
        return proxy
    yield make
    for proxy in made:
        proxy.stop(timeout=1)


@pytest.fixture
def sides():
    """sides(local_key, peer_key, ...) starts a vpn_doubles.Side; all are stopped after the test."""
    started = []

    def start(*args, **kw):
        side = Side(*args, **kw)
        started.append(side)
        return side

    yield start
    for side in started:
        side.stop()


@pytest.fixture
def origin_port():
    """A loopback origin that answers any request once with 200 and the body "origin", then
    closes: the port."""
    def answer(sock, address):
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
    server = StreamServer(("127.0.0.1", 0), answer)
    server.start()
    yield server.server_port
    server.stop()

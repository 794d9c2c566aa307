"""Test doubles shared by the proxy's unit tests (test_proxy_server.py, test_socks_session.py)."""
import ipaddress

import gevent

from tomato_gevent.proxy.resolver import ResolveError
from tests.support import wait_for  # noqa: F401  (the tests import it from here)

LOOPBACK = ipaddress.ip_address("127.0.0.1")
DEADLINE_SECONDS = 5.0


class FakeResolver:
    """name -> 127.0.0.1 for every name in `names`; records what it was asked."""

    def __init__(self, names=(), addresses=None):
        self.names = set(names)
        self.addresses = addresses or {}
        self.asked = []

    def resolve(self, host):
        self.asked.append(host)
        if host in self.addresses:
            return list(self.addresses[host])
        literal = ipaddress.ip_address(host) if host.replace(".", "").isdigit() else None
        if literal is not None:
            return [literal]
        if host in self.names:
            return [LOOPBACK]
        raise ResolveError("unknown host %s" % host)


def spawn_drain(sock, total):
    """A greenlet reading sock until `total` bytes or the end; returns (greenlet, the bytearray
    they go into)."""
    received = bytearray()

    def drain():
        while len(received) < total:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)
    return gevent.spawn(drain), received

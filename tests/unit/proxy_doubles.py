"""Test doubles shared by the proxy's unit tests (test_proxy_server.py, test_socks_session.py)."""
import ipaddress
import time

import gevent

from tomato_gevent.proxy.resolver import ResolveError

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


def wait_for(predicate, what):
    """Poll predicate (yielding to the proxy's greenlets) until true, or fail after DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        gevent.sleep(0.01)

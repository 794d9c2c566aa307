"""Helpers shared by every test directory (unit, integration, netns): the one wait_for and
the one free_port. Test modules import helpers from modules like this one, never from
another test module (tests/unit/test_test_layout.py checks it)."""
import socket
import time

import gevent


def wait_for(predicate, what="condition", timeout=5.0, interval=0.05):
    """Poll predicate() until it returns a truthy value and return that value; AssertionError
    after `timeout` seconds. Sleeps with gevent.sleep, so greenlets of this thread's hub (a
    proxy under test) run while it waits; in a thread without greenlets it is a plain sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        gevent.sleep(interval)


def free_port(family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A port that was free on loopback a moment ago (root namespace tests)."""
    with socket.socket(family, kind) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]

"""End-to-end: real bin/vpn processes in network namespaces, real ping and TCP.

Topology of most tests: namespaces a and b joined by a veth (10.9.0.1 <-> 10.9.0.2),
tun0 pre-created in each as the seed's README does (10.0.1.1/30 <-> 10.0.1.2/30).
"""
import hashlib
import os
import signal
import socket
import time

import pytest

from tests.netns.nsutil import wait_for

PORT = 5000
# The probe is a small program run inside a namespace (TCP transfer, UDP injection).
PROBE = os.path.join(os.path.dirname(__file__), "vpn_probe.py")


def start_vpn(lab, ns, *args, env=None):
    proc = lab.spawn(ns, lab.tool("vpn", *args), env=env)
    lab.wait_log(proc, "tunnel ")
    return proc


def ping(lab, ns, address, count=1, wait=2):
    """True if `count` echo requests all got replies."""
    result = lab.run(ns, ["ping", "-n", "-c", count, "-W", wait, "-i", "0.2", address])
    return result.returncode == 0


def ping_eventually(lab, ns, address, timeout=10):
    return wait_for(lambda: ping(lab, ns, address, wait=1), timeout=timeout, what="ping %s from %s" % (address, ns))


@pytest.fixture
def pair(lab):
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    return a, b


def basic_link(lab, pair, a_extra=(), b_extra=()):
    a, b = pair
    # The seed's commands: A seals with pwd1 and opens with pwd2, B mirrors it.
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2", "-v",
                      *a_extra)
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1", "-v",
                      *b_extra)
    return vpn_a, vpn_b


def test_basic_link_with_seed_commands(lab, pair):
    a, b = pair
    vpn_a, vpn_b = basic_link(lab, pair)
    ping_eventually(lab, a, "10.0.1.2")
    assert ping(lab, b, "10.0.1.1", count=3)
    for proc, secrets in ((vpn_a, ("pwd1", "pwd2")), (vpn_b, ("pwd1", "pwd2"))):
        assert lab.stop(proc) == 0
        out = proc.output()
        assert "Traceback" not in out
        for secret in secrets:
            assert secret not in out
    # Pre-created devices are left in place, as they were.
    for ns, addr in ((a, "10.0.1.1/30"), (b, "10.0.1.2/30")):
        shown = lab.sh(ns, "ip addr show dev tun0").stdout
        assert addr in shown and "UP" in shown

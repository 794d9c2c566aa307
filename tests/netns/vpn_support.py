"""Helpers shared by the VPN's netns tests (test_vpn*.py): starting bin/vpn as the seed's
command lines do, its status (show --json), ping through the tunnel, clean stops, and the
helper programs of programs/probe.py (TCP transfer, UDP sink, capture, injection)."""
import json

from tests.netns.nsutil import program
from tests.support import wait_for

PORT = 5000


def probe(*args):
    """argv of programs/probe.py COMMAND ARGS... (see there for the commands)."""
    return program("probe.py", *args)


def start_vpn(lab, ns, *args, env=None):
    """bin/vpn in ns; returns once it logged its "tunnel ..." line."""
    proc = lab.spawn(ns, lab.tool("vpn", *args), env=env)
    lab.wait_log(proc, "tunnel ")
    return proc


def show_json(lab, ns, *where):
    result = lab.run(ns, lab.tool("vpn", "show", "--json", *where))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ping(lab, ns, address, count=1, wait=1):
    """True if all `count` echo requests got replies."""
    return lab.run(ns, ["ping", "-n", "-c", count, "-W", wait, "-i", "0.2", address]).returncode == 0


def ping_eventually(lab, ns, address, timeout=10):
    wait_for(lambda: ping(lab, ns, address), timeout=timeout, interval=0.1,
             what="ping %s from %s" % (address, ns))


def assert_clean_stop(lab, proc, secrets=("pwd1", "pwd2")):
    """SIGTERM: exit status 0, no traceback, no password in the log; returns the log."""
    assert lab.stop(proc, timeout=3) == 0, proc.output()
    out = proc.output()
    assert "Traceback" not in out
    for secret in secrets:
        assert secret not in out, "a password appeared in the log"
    return out


def tcp_transfer(lab, client_ns, server_ns, server_addr, port, nbytes):
    server = lab.spawn(server_ns, probe("tcp-server", server_addr, port))
    lab.wait_log(server, "listening")
    client = lab.run(client_ns, probe("tcp-client", server_addr, port, nbytes), timeout=60)
    assert client.returncode == 0, client.stderr
    wait_for(lambda: server.poll() is not None, timeout=10, what="tcp server to finish")
    return json.loads(client.stdout), json.loads(server.output().strip().splitlines()[-1])


def seed_link(lab, pair, a_password="pwd1", b_peer_password="pwd1"):
    a, b = pair
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", a_password, "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2", "-v")
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", b_peer_password,
                      "-v")
    return vpn_a, vpn_b

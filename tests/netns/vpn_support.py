"""Shared helpers for the netns tests of bin/vpn's operation (start, show, stop)."""
import json

from .nsutil import wait_for

PORT = 5000


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
    wait_for(lambda: ping(lab, ns, address), timeout=timeout, interval=0.1, what="ping %s from %s" % (address, ns))


def assert_clean_stop(lab, proc, secrets=("pwd1", "pwd2")):
    """SIGTERM: exit status 0, no traceback, no password in the log; returns the log."""
    assert lab.stop(proc, timeout=3) == 0, proc.output()
    out = proc.output()
    assert "Traceback" not in out
    for secret in secrets:
        assert secret not in out, "a password appeared in the log"
    return out

"""A TCP stream that is corrupted on its way into the tunnel, where the kernel really verifies.

    c (10.8.0.2) --veth-- r (router) --veth-- a (gateway: vpn A, tun0 10.0.1.1) ==tunnel== b (vpn B, 10.0.1.2)

r forwards what c sends through a tun (flip0) read by programs/flipper.py, which flips one
payload byte of every Nth TCP data segment and writes it back without fixing the
checksum (nftables payload rules would fix the checksum they touch; this kernel has
neither sch_netem nor act_pedit). Policy routing sends what arrives from c into flip0
and what comes back out of flip0 on to a. Checksum offloads are off on every veth on
the way (c's tx, r's rx/tx, a's rx), so the checksums on the wire are complete and no
device marks a segment verified: a corrupt segment reaches vpn A as it is, and only a
checksum check can keep it out of the data the server in b receives.
"""
import json

from tests.netns.nsutil import program
from tests.support import wait_for


def build(lab, a, b):
    """Add c and r in front of the pair's a (gateway); returns (c, r)."""
    c, r = lab.netns(), lab.netns()
    lab.veth(c, "10.8.0.2/24", r, "10.8.0.1/24", name_b="vethc")
    lab.veth(r, "10.7.0.1/24", a, "10.7.0.2/24", name_a="vetha", name_b="vethr")
    lab.sh(c, "ip route add 10.0.1.0/30 via 10.8.0.1")
    lab.sh(r, "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
    lab.sh(r, "ip route add 10.0.1.0/30 via 10.7.0.2")
    lab.sh(a, "sysctl -qw net.ipv4.ip_forward=1")
    lab.sh(a, "ip route add 10.8.0.0/24 via 10.7.0.1")
    lab.sh(b, "ip route add 10.8.0.0/24 dev tun0")
    for ns, dev, what in ((c, "veth0", "tx off"), (r, "vethc", "rx off tx off"), (r, "vetha", "rx off tx off"),
                          (a, "vethr", "rx off")):
        lab.sh(ns, "ethtool -K %s %s >/dev/null 2>&1" % (dev, what))
    return c, r


def start_flipper(lab, r, every=25, limit=40):
    """programs/flipper.py on r's flip0, with what arrives from c routed through it."""
    flipper = lab.spawn(r, program("flipper.py", every, limit))
    lab.wait_log(flipper, "flipping")
    lab.sh(r, "sysctl -qw net.ipv4.conf.flip0.rp_filter=0")
    lab.sh(r, "ip route add default dev flip0 table 100")
    lab.sh(r, "ip rule add iif vethc lookup 100")
    return flipper


def transfer(lab, client_ns, server_ns, address, port, nbytes):
    """(sent, received): length and sha256 of what the client sent and the server got."""
    server = lab.spawn(server_ns, program("probe.py", "tcp-server", address, port))
    lab.wait_log(server, "listening")
    client = lab.run(client_ns, program("probe.py", "tcp-client", address, port, nbytes), timeout=120)
    assert client.returncode == 0, client.stderr
    wait_for(lambda: server.poll() is not None, timeout=20, what="the server to finish")
    return json.loads(client.stdout), json.loads(server.output().strip().splitlines()[-1])


def flipped(lab, flipper):
    """How many segments the flipper corrupted (it reports when stopped)."""
    lab.stop(flipper)
    words = flipper.output().split()
    return int(words[words.index("flipped") + 1])

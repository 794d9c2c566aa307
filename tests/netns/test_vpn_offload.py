"""End-to-end, issue 19: the kernel's offloads through the tunnel, and the checksum guarantee.

The guarantee: no TCP segment that arrived with a bad checksum ends up inside a packet
whose checksum a kernel then blesses. The receiving vpn merges consecutive segments
into one GSO packet that the kernel completes the checksum of (coalesce.py); a segment
the sending kernel built (partial checksum) is marked in the sealed datagram and merged
without a check, any other segment is verified first. corruption.py builds the
topology where the corruption happens and the kernel really verifies.
"""
import pytest

from . import corruption
from .nsutil import wait_for

PORT = 5000


def start_link(lab, a, b, env=None):
    procs = []
    for ns, lp, pp, peer in ((a, "pwd1", "pwd2", "10.9.0.2"), (b, "pwd2", "pwd1", "10.9.0.1")):
        procs.append(lab.spawn(ns, lab.tool("vpn", "-la", ":%d" % PORT, "-lp", lp, "-pa", "%s:%d" % (peer, PORT),
                                            "-pp", pp, "-v"), env=env))
    for proc in procs:
        lab.wait_log(proc, "tunnel ")
    wait_for(lambda: lab.run(a, ["ping", "-n", "-c", "1", "-W", "1", "10.0.1.2"]).returncode == 0, timeout=10,
             interval=0.1, what="the link up")
    return procs


@pytest.mark.parametrize("offload", ["1", "0"], ids=["offloads", "plain"])
def test_corrupted_segments_forwarded_into_the_tunnel_never_reach_the_application(lab, pair, offload):
    """c sends 3 MB to a server in b through gateway a; on the way, r flips a payload byte
    of every 25th data segment (up to 40) without fixing its checksum. The server gets
    exactly the bytes c sent: each corrupt segment was refused by b's kernel (its checksum
    fails), never merged into a packet whose checksum b's kernel completes, and TCP sent it
    again. With the check before merging removed, the server gets corrupt bytes."""
    a, b = pair
    c, r = corruption.build(lab, a, b)
    vpn_a, vpn_b = start_link(lab, a, b, env={"TOMATO_VPN_OFFLOAD": offload})
    flipper = corruption.start_flipper(lab, r)

    sent, received = corruption.transfer(lab, c, b, "10.0.1.2", 8000, 3_000_000)
    assert corruption.flipped(lab, flipper) > 0
    assert received == sent and sent["bytes"] == 3_000_000
    for proc in (vpn_a, vpn_b):
        assert lab.stop(proc) == 0 and "Traceback" not in proc.output()

"""End-to-end: real bin/vpn processes in network namespaces, real ping and TCP.

Topology of most tests: namespaces a and b joined by a veth (10.9.0.1 <-> 10.9.0.2),
tun0 pre-created in each as the seed's README does (10.0.1.1/30 <-> 10.0.1.2/30),
and the seed's command lines: A seals with pwd1 and opens with pwd2, B mirrors it.
Helper programs (TCP transfer, UDP sink, capture, injection) are programs/probe.py, run
with this interpreter inside the namespaces (vpn_support.probe).
"""
import signal

from tests.netns.nsutil import wait_for
from tests.netns.vpn_support import (PORT, assert_clean_stop, ping, ping_eventually, probe, seed_link, start_vpn,
                                     tcp_transfer)


def test_basic_link_seed_commands_ping_tcp_and_sigterm(lab, pair):
    a, b = pair
    vpn_a, vpn_b = seed_link(lab, pair)
    ping_eventually(lab, a, "10.0.1.2")
    assert ping(lab, b, "10.0.1.1", count=3)

    # A TCP transfer through the tunnel arrives complete and intact.
    sent, received = tcp_transfer(lab, a, b, "10.0.1.2", 8000, 4_000_000)
    assert received == sent and sent["bytes"] == 4_000_000

    # SIGTERM: exit status 0, passwords never logged, pre-created devices left as they were.
    for proc in (vpn_a, vpn_b):
        out = assert_clean_stop(lab, proc)
        assert "stopped" in out
    for ns, addr in ((a, "10.0.1.1/30"), (b, "10.0.1.2/30")):
        shown = lab.sh(ns, "ip -d addr show dev tun0").stdout
        assert addr in shown and "mtu 1400" in shown and ",UP" in shown
        assert "vnet_hdr off" in shown and "pi off" in shown


def test_wrong_password_gets_nothing_through(lab, pair):
    a, b = pair
    vpn_a, vpn_b = seed_link(lab, pair, b_peer_password="not-pwd1")
    assert not ping(lab, a, "10.0.1.2", count=3)
    assert not ping(lab, b, "10.0.1.1", count=1)
    assert "authentication failed" in vpn_b.output()
    assert_clean_stop(lab, vpn_a, secrets=("pwd1", "pwd2", "not-pwd1"))
    assert_clean_stop(lab, vpn_b, secrets=("pwd1", "pwd2", "not-pwd1"))


def test_garbage_and_replayed_datagrams_leave_the_link_working(lab, pair):
    """Replays are re-sent at application level (a normal UDP socket computes a valid
    checksum); byte-for-byte re-sends of captured frames would be dropped by the kernel
    for their unfinished checksum and prove nothing."""
    a, b = pair
    vpn_a, vpn_b = seed_link(lab, pair)
    ping_eventually(lab, a, "10.0.1.2")
    sink = lab.spawn(b, probe("udp-sink", "10.0.1.2", 7000))
    lab.wait_log(sink, "listening")
    capture_file = lab.tmpdir / "captured.hex"
    capture = lab.spawn(b, probe("capture", "veth0", PORT, 10, capture_file))
    lab.wait_log(capture, "capturing")
    lab.run(a, probe("udp-send", "10.0.1.2", 7000, "first", 10), check=True)
    lab.wait_log(capture, "captured")
    wait_for(lambda: sink.output().count("first-") == 10, what="10 messages through the tunnel")

    lab.run(a, probe("inject", "10.9.0.2", PORT, capture_file), check=True)      # replay each 3 times
    lab.run(a, probe("inject", "10.9.0.2", PORT, "garbage"), check=True)
    lab.run(a, probe("udp-send", "10.0.1.2", 7000, "after", 5), check=True)
    wait_for(lambda: sink.output().count("after-") == 5, what="5 messages after the injection")
    assert ping(lab, a, "10.0.1.2", count=2)

    received = sink.output().split()
    for i in range(10):
        assert received.count("first-%d" % i) == 1, "a replayed datagram was delivered twice"
    log_b = vpn_b.output()
    assert "replayed or too old counter" in log_b and "short datagram" in log_b
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_dynamic_mode_learns_peer_address_from_password_sources(lab, pair, tmp_path):
    a, b = pair
    secret_file = tmp_path / "local"
    secret_file.write_text("pwd1\n")
    # A: the seed's dynamic command, passwords from a file and the environment instead of argv.
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "--local-password-file", secret_file, "-d", "-v",
                      env={"TOMATO_PEER_PASSWORD": "pwd2"})
    assert not ping(lab, a, "10.0.1.2")                  # nothing learned yet: nowhere to send
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1", "-v")
    ping_eventually(lab, a, "10.0.1.2")
    assert ping(lab, b, "10.0.1.1", count=2)
    assert "peer address is now 10.9.0.2:%d" % PORT in vpn_a.output()
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_hub_connects_two_nodes_that_cannot_reach_each_other(lab):
    """The seed's hub: a node with two dynamic instances and ip_forward joins two NATed nodes."""
    n1, hub, n2 = lab.netns(), lab.netns(), lab.netns()
    lab.veth(n1, "10.9.1.2/24", hub, "10.9.1.1/24", name_b="veth1")
    lab.veth(n2, "10.9.2.2/24", hub, "10.9.2.1/24", name_b="veth2")
    lab.sh(hub, "sysctl -qw net.ipv4.ip_forward=1")
    assert not ping(lab, n1, "10.9.2.2")                 # no path between the nodes outside the VPN
    lab.tun(hub, "tun1", "10.0.1.1/30")
    lab.tun(hub, "tun2", "10.0.2.1/30")
    lab.tun(n1, "tun0", "10.0.1.2/30")
    lab.tun(n2, "tun0", "10.0.2.2/30")
    lab.sh(n1, "ip route add 10.0.2.0/30 dev tun0")
    lab.sh(n2, "ip route add 10.0.1.0/30 dev tun0")
    procs = [
        start_vpn(lab, hub, "-la", ":5001", "-lp", "hub1", "-d", "-pp", "node1", "-I", "tun1", "-v"),
        start_vpn(lab, hub, "-la", ":5002", "-lp", "hub2", "-d", "-pp", "node2", "-I", "tun2", "-v"),
        start_vpn(lab, n1, "-la", ":5000", "-lp", "node1", "-pa", "10.9.1.1:5001", "-pp", "hub1", "-v"),
        start_vpn(lab, n2, "-la", ":5000", "-lp", "node2", "-pa", "10.9.2.1:5002", "-pp", "hub2", "-v"),
    ]
    ping_eventually(lab, n1, "10.0.2.2")
    assert ping(lab, n2, "10.0.1.2", count=2)
    # Bulk TCP is forwarded intact by the hub (merged packets are cut again on the way out).
    sent, received = tcp_transfer(lab, n1, n2, "10.0.2.2", 8000, 2_000_000)
    assert received == sent
    for proc in procs:
        assert_clean_stop(lab, proc, secrets=("hub1", "hub2", "node1", "node2"))


def test_peer_restart_recovers(lab, pair):
    a, b = pair
    vpn_a, vpn_b = seed_link(lab, pair)
    ping_eventually(lab, a, "10.0.1.2")
    assert_clean_stop(lab, vpn_b)
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1", "-v")
    # Well inside -pvt (10 s): the new session is accepted because it is newer, not because the old one expired.
    ping_eventually(lab, a, "10.0.1.2", timeout=3)
    assert "peer session" in vpn_a.output()
    assert_clean_stop(lab, vpn_a)


def test_ipv6_endpoints_and_ipv6_inside(lab):
    a, b = lab.netns(ipv6=True), lab.netns(ipv6=True)
    lab.veth(a, None, b, None)
    lab.sh(a, "ip addr add fd00:9::1/64 dev veth0 nodad")
    lab.sh(b, "ip addr add fd00:9::2/64 dev veth0 nodad")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    lab.sh(a, "ip addr add fd01::1/64 dev tun0 nodad")
    lab.sh(b, "ip addr add fd01::2/64 dev tun0 nodad")
    # A: dynamic on a dual-stack socket; B: the seed's flags with an IPv6 peer address.
    vpn_a = start_vpn(lab, a, "-la", "[::]:%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", "-v")
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "[fd00:9::1]:%d" % PORT, "-pp", "pwd1")
    ping_eventually(lab, a, "10.0.1.2")
    assert "peer address is now [fd00:9::2]:%d" % PORT in vpn_a.output()
    sent, received = tcp_transfer(lab, a, b, "10.0.1.2", 8000, 2_000_000)
    assert received == sent
    # IPv6 inside the tunnel too (B merges these segments as TCP/IPv6).
    sent, received = tcp_transfer(lab, a, b, "fd01::2", 8001, 2_000_000)
    assert received == sent
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_device_created_when_absent_and_precreated_device_restored(lab):
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    # a: no device at all -> vpn creates and configures it, and it is gone after exit.
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                      "-I", "tmt0", "--addr", "10.0.1.1/30", "--mtu", "1380")
    shown = lab.sh(a, "ip addr show dev tmt0").stdout
    assert "10.0.1.1/30" in shown and "mtu 1380" in shown and "UP" in shown
    # b: pre-created but down, no address: configured while running, restored on exit.
    lab.sh(b, "ip tuntap add dev tun0 mode tun")
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                      "--addr", "10.0.1.2/30", "--mtu", "1380")
    ping_eventually(lab, a, "10.0.1.2")
    assert_clean_stop(lab, vpn_a)
    assert lab.sh(a, "ip link show dev tmt0", check=False).returncode != 0
    assert_clean_stop(lab, vpn_b)
    shown = lab.sh(b, "ip addr show dev tun0").stdout
    assert "10.0.1.2" not in shown and "mtu 1500" in shown and ",UP" not in shown


def test_sigint_also_exits_cleanly(lab, pair):
    a, _ = pair
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2")
    assert lab.stop(vpn_a, sig=signal.SIGINT, timeout=3) == 0
    assert "Traceback" not in vpn_a.output()
    assert "tun0" in lab.sh(a, "ip link show dev tun0").stdout


def test_unreachable_peer_does_not_kill_the_loop(lab, pair):
    a, b = pair
    # A's peer is on a network A has no route to: every send fails (ENETUNREACH).
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.99.0.2:%d" % PORT, "-pp", "pwd2")
    assert not ping(lab, a, "10.0.1.2", count=3)
    lab.wait_log(vpn_a, "cannot send to 10.99.0.2:%d" % PORT)
    assert vpn_a.poll() is None
    # And a peer that is reachable but not running (ICMP port unreachable) does not either.
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % (PORT + 1), "-pp", "pwd1")
    assert not ping(lab, b, "10.0.1.1", count=3)
    assert vpn_b.poll() is None
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_tcp_both_ways_between_offload_and_plain_sockets(lab, pair):
    """A sends/receives one datagram per system call (TOMATO_VPN_OFFLOAD=0), B batches with
    UDP GSO/GRO and writes merged TCP packets to its tun: the wire format is the same, and
    bulk data arrives intact both ways."""
    a, b = pair
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2", "-v",
                      env={"TOMATO_VPN_OFFLOAD": "0"})
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1", "-v")
    ping_eventually(lab, a, "10.0.1.2")
    for client_ns, server_ns, addr, port in ((a, b, "10.0.1.2", 8001), (b, a, "10.0.1.1", 8002)):
        sent, received = tcp_transfer(lab, client_ns, server_ns, addr, port, 3_000_000)
        assert received == sent and sent["bytes"] == 3_000_000
    assert "GSO off, GRO off" in vpn_a.output()
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_device_and_port_errors_are_one_line(lab):
    a = lab.netns()
    lab.sh(a, "ip tuntap add dev tap0 mode tap")
    lab.tun(a, "tun0", "10.0.1.1/30")

    def fails(*args):
        result = lab.run(a, lab.tool("vpn", "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", *args),
                         timeout=30)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return result.returncode, lines[0]

    status, line = fails("-I", "tap0")                       # exists, but is not a tun device
    assert status == 2 and "not a tun device" in line
    holder = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2")
    status, line = fails("-I", "tun0")                       # port and device already taken
    assert status == 1 and "cannot bind UDP" in line
    status, line = fails("-I", "tun0", "-la", ":%d" % (PORT + 1))
    assert status == 1 and "tun0" in line and "another process" in line
    assert_clean_stop(lab, holder)
    assert "tap0" in lab.sh(a, "ip link show dev tap0").stdout

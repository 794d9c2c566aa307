"""End-to-end: --transport tcp through a router that drops all UDP.

Topology: A (10.9.1.1) -- router R (10.9.1.254 | 10.9.2.254) -- B (10.9.2.1); R's
nftables forward chain drops every UDP packet, so the UDP transport cannot get through
and the TCP transport must. tun0 in A and B as in test_vpn.py (10.0.1.1 <-> 10.0.1.2).
nftables state lives in R's namespace: deleting the namespace (the lab does, pass or
fail) deletes the tables with it.
"""
import pytest

from tests.netns.nsutil import program, wait_for
from tests.netns.vpn_support import assert_clean_stop, ping, ping_eventually, start_vpn, tcp_transfer

PORT = 5000
A_WAN, B_WAN = "10.9.1.1", "10.9.2.1"


def nft(lab, ns, script):
    lab.run(ns, ["nft", "-f", "-"], input=script, check=True)


@pytest.fixture
def routed(lab):
    """A and B in different subnets, routed through R, whose forward chain drops UDP."""
    a, r, b = lab.netns(), lab.netns(), lab.netns()
    lab.veth(a, A_WAN + "/24", r, "10.9.1.254/24", name_b="wa")
    lab.veth(r, "10.9.2.254/24", b, B_WAN + "/24", name_a="wb")
    lab.sh(r, "sysctl -qw net.ipv4.ip_forward=1")
    lab.sh(a, "ip route add 10.9.2.0/24 via 10.9.1.254")
    lab.sh(b, "ip route add 10.9.1.0/24 via 10.9.2.254")
    nft(lab, r, "table inet tomato_block {\n"
                "  chain forward { type filter hook forward priority 0; meta l4proto udp drop; }\n"
                "}\n")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    return a, r, b


def vpn(lab, ns, local_password, peer_password, *peer, transport="tcp"):
    return start_vpn(lab, ns, "-la", ":%d" % PORT, "-lp", local_password, *peer, "-pp", peer_password,
                     "--transport", transport)


def test_udp_blocked_tcp_gets_through_ping_transfer_sigterm(lab, routed):
    a, r, b = routed
    # Sanity: the router really drops the UDP transport.
    udp_a = vpn(lab, a, "pwd1", "pwd2", "-pa", "%s:%d" % (B_WAN, PORT), transport="udp")
    udp_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT), transport="udp")
    assert not ping(lab, a, "10.0.1.2", count=2)
    for proc in (udp_a, udp_b):
        assert_clean_stop(lab, proc)

    # Both sides dial (the seed's symmetric command lines, plus --transport tcp).
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-pa", "%s:%d" % (B_WAN, PORT))
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT))
    ping_eventually(lab, a, "10.0.1.2")
    assert ping(lab, b, "10.0.1.1", count=3)
    sent, received = tcp_transfer(lab, a, b, "10.0.1.2", 8000, 8_000_000)
    assert received == sent and sent["bytes"] == 8_000_000
    sent, received = tcp_transfer(lab, b, a, "10.0.1.1", 8001, 2_000_000)
    assert received == sent
    # The crossed dials settled on one connection between the two hosts.
    wait_for(lambda: lab.run(a, ["ss", "-Htn", "state", "established"]).stdout.count(":%d" % PORT) == 1,
             timeout=10, what="one TCP connection between A and B")
    for proc in (vpn_a, vpn_b):
        out = assert_clean_stop(lab, proc)
        assert "connected to" in out or "peer connected from" in out
        assert "stopped" in out and "Traceback" not in out


def test_dynamic_side_behind_nat_with_garbage_and_idle_connections(lab, routed):
    a, r, b = routed
    # B is a client behind R's NAT: A only ever sees R's address.
    nft(lab, r, "table ip tomato_nat {\n"
                "  chain post { type nat hook postrouting priority 100; oif wa masquerade; }\n"
                "}\n")
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-d")
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT))
    ping_eventually(lab, b, "10.0.1.1")
    assert ping(lab, a, "10.0.1.2", count=2)         # A answers on the learned connection
    assert "peer connected from 10.9.1.254" in vpn_a.output()

    junk = lab.spawn(r, program("tcp_junk.py", A_WAN, PORT))
    lab.wait_log(junk, "garbage connections closed by the peer", timeout=20)
    assert "closed by the peer: 3" in junk.output()
    assert ping(lab, b, "10.0.1.1", count=3)          # 20 idle connections still open
    sent, received = tcp_transfer(lab, b, a, "10.0.1.1", 8000, 1_000_000)
    assert received == sent
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_recovers_after_router_resets_and_peer_restart(lab, routed):
    a, r, b = routed
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-d")
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT))
    ping_eventually(lab, b, "10.0.1.1")

    # The router resets every TCP connection for 3 s, while pings try to get through.
    nft(lab, r, "table inet tomato_reset {\n"
                "  chain forward { type filter hook forward priority -10; meta l4proto tcp reject with tcp reset; }\n"
                "}\n")
    assert not ping(lab, b, "10.0.1.1", count=3, wait=1)
    lab.run(r, ["nft", "delete", "table", "inet", "tomato_reset"], check=True)
    ping_eventually(lab, b, "10.0.1.1", timeout=10)
    assert ping(lab, a, "10.0.1.2")
    wait_for(lambda: "reconnecting to" in vpn_b.output() or "cannot connect to" in vpn_b.output(),
             what="B's reconnect line")
    assert " lost: " in vpn_b.output()
    wait_for(lambda: vpn_b.output().count("connected to") >= 2, what="B's line for the new connection")

    # The dialling peer restarts: A learns the new connection.
    assert_clean_stop(lab, vpn_b)
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT))
    ping_eventually(lab, b, "10.0.1.1")
    # The listening peer restarts: B reconnects with backoff.
    assert_clean_stop(lab, vpn_a)
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-d")
    ping_eventually(lab, b, "10.0.1.1", timeout=15)
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_through_an_http_proxy_when_nothing_else_is_forwarded(lab, routed):
    a, r, b = routed
    # R forwards nothing at all; its tinyproxy is A's only way out (a corporate network).
    nft(lab, r, "table inet tomato_block_all {\n"
                "  chain forward { type filter hook forward priority -10; drop; }\n"
                "}\n")
    conf = lab.tmpdir / "tinyproxy.conf"
    conf.write_text("Port 8888\nListen 10.9.1.254\nTimeout 600\nAllow 10.9.1.0/24\nLogLevel Connect\n"
                    "MaxClients 20\n")
    tinyproxy = lab.spawn(r, ["tinyproxy", "-d", "-c", conf])
    lab.wait_tcp_listening(r, 8888)
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-d")
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-pa", "%s:%d" % (B_WAN, PORT), "--http-proxy", "10.9.1.254:8888")
    ping_eventually(lab, a, "10.0.1.2")
    assert ping(lab, b, "10.0.1.1", count=2)
    assert "CONNECT %s:%d" % (B_WAN, PORT) in tinyproxy.output()
    assert "via the HTTP proxy 10.9.1.254:8888" in vpn_a.output()
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_a_held_frame_delivered_on_another_connection_does_not_take_over(lab, routed):
    # Issue 23 item 1. A dials B, and A's session is the older one (A started first), the
    # side that used to prefer an incoming connection. An on-path attacker in R holds back
    # one frame from B (a ping reply) and delivers it to A on a connection of its own
    # before anything newer arrives: A may follow it for a moment, but its data goes
    # unanswered there, so A dials again and B follows. Before the fix A sent into the
    # attacker's connection, closed the real one 5 s later and never dialled again.
    a, r, b = routed
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-pa", "%s:%d" % (B_WAN, PORT))
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-d")
    ping_eventually(lab, a, "10.0.1.2")
    holder = lab.spawn(r, program("hold_frame.py", "wb", B_WAN, PORT, A_WAN))
    lab.wait_log(holder, "watching")
    nft(lab, r, "table ip tomato_hold {\n"
                "  chain forward { type filter hook forward priority -10;\n"
                "    ip saddr %s tcp sport %d ip length > 1000 drop; }\n"
                "}\n" % (B_WAN, PORT))
    lab.run(a, ["ping", "-n", "-c", 1, "-s", 1000, "-W", 1, "10.0.1.2"])    # answered by the attacker
    lab.wait_log(holder, "delivered a held frame")
    lab.run(r, ["nft", "delete", "table", "ip", "tomato_hold"], check=True)
    ping_eventually(lab, a, "10.0.1.2", timeout=20)
    assert ping(lab, a, "10.0.1.2", count=5)
    assert holder.poll() is None            # the attacker still holds its connection open
    assert vpn_a.output().count("connected to %s:%d" % (B_WAN, PORT)) == 2     # A dialled again
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_a_reconnect_gets_through_2000_hostile_connections_a_second(lab, routed):
    # Issue 23 item 2. A listens (-d); something floods its port with 2 000 connections a
    # second that never speak, so each connection that has not authenticated is evicted from
    # the 64-slot untrusted cap after about 30 ms. B's connection is reset and B dials again
    # while it keeps pinging: its keepalive must follow the SYN-ACK within those 30 ms. With
    # the keep-warm loop starving the hub (each ping kept it running for 2 s) B's dialler saw
    # the SYN-ACK ~0.5 s late, and every reconnect was evicted before its first frame.
    a, r, b = routed
    vpn_a = vpn(lab, a, "pwd1", "pwd2", "-d")
    vpn_b = vpn(lab, b, "pwd2", "pwd1", "-pa", "%s:%d" % (A_WAN, PORT))
    ping_eventually(lab, b, "10.0.1.1")
    flood = lab.spawn(r, program("connection_flood.py", A_WAN, PORT, 2000))
    lab.wait_log(flood, "flooding: ", timeout=10)
    nft(lab, r, "table inet tomato_reset {\n"
                "  chain forward { type filter hook forward priority -10;"
                " ip saddr %s tcp dport %d reject with tcp reset; }\n"
                "}\n" % (B_WAN, PORT))
    assert not ping(lab, b, "10.0.1.1", count=2, wait=1)
    lab.run(r, ["nft", "delete", "table", "inet", "tomato_reset"], check=True)
    ping_eventually(lab, b, "10.0.1.1", timeout=20)
    rates = [int(line.split()[1]) for line in flood.output().splitlines() if line.startswith("flooding: ")]
    assert rates[-1] >= 1900, rates              # the flood kept its rate meanwhile
    lab.stop(flood)
    assert ping(lab, b, "10.0.1.1", count=3)
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)

"""End-to-end, issue 10.3: forwarded packets the kernel marks checksum-verified cross the tunnel.

A gateway's tun (opened with IFF_VNET_HDR) hands over a forwarded packet with
VIRTIO_NET_HDR_F_DATA_VALID when the kernel counts its checksum as verified, as a
physical or virtio NIC reports it. A veth gets there too: with GRO on (NAPI), the
receiving veth verifies a TCP segment's checksum in software and marks it so, if the
segment arrives with a complete checksum -- which a client whose veth has tx checksum
offload off sends. (UDP and ICMP stay unmarked, so TCP is what the test sends.) Topology:

    c (10.8.0.2) --veth-- a (10.8.0.1, forwarding; vpn A, tun0 10.0.1.1) ==tunnel== b (vpn B, 10.0.1.2)

The vpn before the fix dropped every such segment ("offloaded packet from tun") and the
transfer stalled.
"""
from tests.netns.nsutil import wait_for
from tests.netns.vpn_support import ping, seed_link, tcp_transfer


def test_forwarded_checksum_verified_tcp_crosses_the_tunnel(lab, pair):
    a, b = pair
    c = lab.netns()
    lab.veth(a, "10.8.0.1/24", c, "10.8.0.2/24", name_a="veth1")
    lab.sh(a, "sysctl -qw net.ipv4.ip_forward=1")
    lab.sh(c, "ip route add 10.0.1.0/30 via 10.8.0.1")
    lab.sh(b, "ip route add 10.8.0.0/24 dev tun0")
    lab.sh(c, "ethtool -K veth0 tx off >/dev/null")     # complete checksums leave c ...
    lab.sh(a, "ethtool -K veth1 gro on >/dev/null")     # ... a's veth verifies them: DATA_VALID
    vpn_a, vpn_b = seed_link(lab, pair, b_peer_password="pwd1")
    wait_for(lambda: ping(lab, a, "10.0.1.2"), timeout=10, interval=0.1, what="the link up")

    sent, received = tcp_transfer(lab, c, b, "10.0.1.2", 8000, 1_000_000)
    assert received == sent and sent["bytes"] == 1_000_000
    assert lab.stop(vpn_a) == 0
    assert "offloaded packet from tun" not in vpn_a.output()

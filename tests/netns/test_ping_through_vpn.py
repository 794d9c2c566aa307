"""bin/ping doing the job the seed ships it for: a heartbeat through bin/vpn's tunnel.

Namespaces a and b joined by a veth (10.9.0.1 <-> 10.9.0.2), tun0 pre-created in each
(10.0.1.1/30 <-> 10.0.1.2/30), bin/vpn with the seed's command lines, then bin/ping across
the tunnel: plain replies; a dynamic-mode link kept alive by the heartbeat alone; and a
link that breaks and comes back, which the heartbeat's log shows as it happens.
"""
from tests.netns.nsutil import wait_for
from tests.netns.ping_support import PingLog
from tests.netns.vpn_support import PORT, start_vpn


def vpn_a_seed(lab, a):
    return start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2")


def vpn_b_seed(lab, b):
    return start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1")


def system_ping_ok(lab, ns, address):
    return lab.run(ns, ["ping", "-n", "-c", 1, "-W", 1, address]).returncode == 0


def test_ping_through_the_tunnel(lab, pair):
    a, b = pair
    vpn_a_seed(lab, a)
    vpn_b_seed(lab, b)
    result = lab.run(a, lab.tool("ping", "-a", "10.0.1.2", "-c", 3, "-i", 0.2, "-W", 2))
    log = PingLog(result.stderr)
    assert result.returncode == 0, result.stderr
    assert log.reply_seqs == [1, 2, 3]
    assert {r["source"] for r in log.replies} == {"10.0.1.2"}
    assert log.counts["transmitted"] == "3" and log.counts["received"] == "3"
    log.assert_summary_agrees()


def test_heartbeat_keeps_a_dynamic_link_alive(lab, pair):
    """The seed's recipe: A runs vpn -d (learns B's address, forgets it after -avt without
    traffic); B runs `ping -a 10.0.1.1` so that A never forgets."""
    a, b = pair
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", "-avt", 1, "-v")
    vpn_b_seed(lab, b)
    heartbeat = lab.spawn(b, lab.tool("ping", "-a", "10.0.1.1", "-i", 0.3, "-W", 2))
    # The tenth reply comes 2.7 s after the first, more than twice -avt: without the
    # heartbeat A would have forgotten B by then (waiting on the log, not on a clock).
    lab.wait_log(heartbeat, "icmp_seq=10 ", timeout=20)
    assert "forgot peer address" not in vpn_a.output()
    assert system_ping_ok(lab, a, "10.0.1.2")  # A still knows where B is
    assert lab.stop(heartbeat) == 0, heartbeat.output()
    log = PingLog(heartbeat.output())
    assert len(log.replies) >= 10 and log.lost == [] and log.errors == []
    log.assert_summary_agrees()
    # Without the heartbeat the link lapses: what kept it alive was the ping.
    wait_for(lambda: "forgot peer address" in vpn_a.output(), timeout=10, what="A to forget B")
    assert not system_ping_ok(lab, a, "10.0.1.2")


def test_heartbeat_shows_the_link_breaking_and_recovering(lab, pair):
    a, b = pair
    vpn_a_seed(lab, a)
    vpn_b = vpn_b_seed(lab, b)
    heartbeat = lab.spawn(a, lab.tool("ping", "-a", "10.0.1.2", "-i", 0.2, "-W", 0.5))
    lab.wait_log(heartbeat, "icmp_seq=2 ")
    assert lab.stop(vpn_b) == 0
    lab.wait_log(heartbeat, "no reply to icmp_seq=")
    vpn_b_seed(lab, b)

    def replies_after_the_loss():
        log = PingLog(heartbeat.output())
        return log.lost and [seq for seq in log.reply_seqs if seq > max(log.lost)]
    wait_for(replies_after_the_loss, timeout=15, what="replies after the tunnel came back")
    assert lab.stop(heartbeat) == 0, heartbeat.output()
    log = PingLog(heartbeat.output())
    assert "Traceback" not in log.output
    assert int(log.counts["received"]) < int(log.counts["transmitted"])
    assert float(log.counts["loss"]) > 0
    log.assert_summary_agrees()

"""The link's status and announcements over loopback (no root): two Links as in test_vpn_link (vpn_doubles)."""
from tests.support import wait_for
from tests.unit.vpn_doubles import TRANSPORTS, linked_pair
from tomato_gevent.vpn.packet import OVERHEAD


@TRANSPORTS
def test_a_new_peer_session_is_answered_at_once(sides, transport):
    """B (dynamic, keepalive 25 s) answers A's first keepalive with one of its own, so A's
    tunnel is up at once instead of at B's next keepalive."""
    a, b = linked_pair(sides, transport=transport)
    wait_for(lambda: a.link.received >= 1, timeout=5, what="B's announcement")
    assert a.link.watch.last_received is not None and a.link.receiver.session_id is not None


@TRANSPORTS
def test_status_counts_packets_and_bytes_both_ways(sides, transport):
    a, b = linked_pair(sides, transport=transport)
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A")
    packets = [b"x" * 100, b"y" * 1000, b"z" * 300]
    for packet in packets:
        a.tun.host.send(packet)
    assert [b.tun.host.recv(65536) for _ in packets] == packets
    payload = sum(map(len, packets)) + len(packets) * OVERHEAD
    # B counts a drain after writing it to the tun, and A may have sent one keepalive or
    # two before: wait for the bytes of all three packets, not for a number of datagrams.
    wait_for(lambda: b.link.status()["rx_bytes"] >= payload, what="B counting A's packets")
    # A counts a batch once all of it is sent (it may wait for room mid-batch while B reads)
    wait_for(lambda: a.link.status()["tx_bytes"] >= payload, what="A counting its sent bytes")
    a_status, b_status = a.link.status(), b.link.status()
    assert b_status["rx_packets"] >= len(packets) + 1
    assert a_status["tx_packets"] >= len(packets) + 1                  # + the keepalive at start
    assert b_status["dynamic"] and b_status["peer_learned"] and not a_status["dynamic"]
    assert b_status["last_received_seconds_ago"] is not None and b_status["peer_session"] is not None
    assert "authentication failed" not in a_status["drops"] and "authentication failed" not in b_status["drops"]


def test_the_hub_gets_a_turn_between_warm_slices(sides, monkeypatch):  # noqa: F811
    # Issue 23 item 2: the warm loop used to yield with sleep(0), whose callbacks gevent runs
    # back to back without polling, so the hub's epoll (other greenlets' sockets, timers,
    # signals) waited ~0.5 s. Now every warm slice is followed by one hub iteration.
    import gevent

    from tomato_gevent.vpn import scheduler
    from tomato_gevent.vpn.scheduler import Scheduler

    class Dense:                        # every packet counts as dense traffic: warm after any
        def dense(self, now):
            return True

    monkeypatch.setattr(scheduler, "Density", Dense)
    iterations = {}                     # hub -> loop.iteration at each warm slice
    warmer = Scheduler._warmer

    def counting_warmer(self):
        warm = warmer(self)
        seen = iterations.setdefault(gevent.get_hub(), [])

        def counted():
            seen.append(gevent.get_hub().loop.iteration)
            warm()
        return counted

    monkeypatch.setattr(Scheduler, "_warmer", counting_warmer)
    a, b = linked_pair(sides)
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A")

    def warm_slices():
        for _ in range(3):              # warm for 2 s after it
            a.tun.host.send(b"x" * 100)
            assert b.tun.host.recv(65536) == b"x" * 100
        return any(len(seen) >= 30 for seen in iterations.values())

    wait_for(warm_slices, timeout=10, what="30 warm slices")
    for seen in iterations.values():
        seen = list(seen)
        assert len(seen) < 5 or all(later > earlier for earlier, later in zip(seen, seen[1:])), seen

"""connections.py: which TCP connections are trusted, kept and sent on (pure rules)."""
import pytest

from tomato_gevent.vpn.connections import (GRACE_SECONDS, MAX_UNTRUSTED, UNTRUSTED_BYTES, UNTRUSTED_SECONDS,
                                           ConnectionRules, ConnectionState)


def out(now=0.0):
    return ConnectionState(outgoing=True, now=now)


def inc(now=0.0):
    return ConnectionState(outgoing=False, now=now)


def test_outgoing_is_sent_on_before_anything_authenticates():
    rules = ConnectionRules()
    conn = out()
    assert rules.opened(conn) == [] and rules.current is conn


def test_outgoing_made_while_another_became_current_is_closed_at_once():
    rules = ConnectionRules()
    accepted = inc()
    rules.opened(accepted)
    rules.authenticated(accepted, 1.0)
    late = out(1.0)
    assert rules.opened(late) == [late] and rules.current is accepted


def test_incoming_is_never_sent_on_until_authenticated():
    rules = ConnectionRules()
    conn = inc()
    rules.opened(conn)
    assert rules.current is None and rules.untrusted_count == 1
    rules.authenticated(conn, 1.0)
    assert rules.current is conn and rules.untrusted_count == 0


def test_untrusted_cap_closes_the_oldest_first():
    rules = ConnectionRules()
    conns = [inc(i) for i in range(MAX_UNTRUSTED + 2)]
    closed = []
    for conn in conns:
        closed += rules.opened(conn)
    assert closed == conns[:2]


def test_authenticated_connections_do_not_count_against_the_cap():
    rules = ConnectionRules(max_untrusted=2)
    peer = inc()
    rules.opened(peer)
    rules.authenticated(peer, 0.0)
    oldest, newer = inc(), inc()
    assert rules.opened(oldest) == [] and rules.opened(newer) == []
    assert rules.opened(inc()) == [oldest]          # the oldest untrusted one, never the peer
    assert rules.current is peer and peer in rules.connections


def test_untrusted_byte_budget():
    rules = ConnectionRules()
    conn = inc()
    rules.opened(conn)
    assert rules.received(conn, UNTRUSTED_BYTES) is False
    assert rules.received(conn, 1) is True
    trusted = inc()
    rules.opened(trusted)
    rules.authenticated(trusted, 0.0)
    assert rules.received(trusted, 10 * UNTRUSTED_BYTES) is False
    dialled = out()
    rules.opened(dialled)
    assert rules.received(dialled, 10 * UNTRUSTED_BYTES) is False     # we chose that peer


def test_untrusted_time_limit():
    rules = ConnectionRules()
    conn = inc(now=100.0)
    rules.opened(conn)
    assert rules.expired(100.0 + UNTRUSTED_SECONDS - 0.1) == []
    assert rules.expired(100.0 + UNTRUSTED_SECONDS) == [conn]


def test_first_failing_frame_closes_only_before_trust():
    rules = ConnectionRules()
    conn = inc()
    rules.opened(conn)
    assert rules.refused(conn) is True
    rules.authenticated(conn, 0.0)
    assert rules.refused(conn) is False         # e.g. a replay later on: dropped, connection kept
    assert rules.refused(out()) is True


def test_latest_authenticated_wins_and_the_old_one_retires_after_grace():
    rules = ConnectionRules()
    old, new = inc(), inc()
    for conn in (old, new):
        rules.opened(conn)
    rules.authenticated(old, 1.0)
    rules.authenticated(new, 2.0)               # a client that reconnected
    assert rules.current is new
    assert rules.expired(2.0 + GRACE_SECONDS - 0.1) == []
    assert rules.expired(2.0 + GRACE_SECONDS) == [old]
    rules.closed(old)
    assert rules.current is new and rules.connections == {new}


def test_a_retiring_connection_that_becomes_current_again_is_kept():
    rules = ConnectionRules()
    first, second = inc(), inc()
    for conn in (first, second):
        rules.opened(conn)
    rules.authenticated(first, 1.0)
    rules.authenticated(second, 2.0)
    rules.authenticated(first, 3.0)
    assert rules.current is first and first.retire_at is None
    assert rules.expired(100.0) == [second]


def test_closing_current_falls_back_to_the_most_recent_authenticated():
    rules = ConnectionRules()
    a, b, c = inc(), inc(), inc()
    for conn in (a, b, c):
        rules.opened(conn)
    rules.authenticated(a, 1.0)
    rules.authenticated(b, 2.0)
    rules.authenticated(c, 3.0)
    rules.closed(c)
    assert rules.current is b and b.retire_at is None
    rules.closed(b)
    rules.closed(a)
    assert rules.current is None


def test_closing_current_falls_back_to_our_outgoing_connection():
    rules = ConnectionRules()
    dialled, accepted = out(), inc()
    rules.opened(dialled)
    rules.opened(accepted)
    rules.authenticated(accepted, 1.0)
    rules.closed(accepted)
    assert rules.current is dialled


class Host:
    """One side's view of two crossed connections: c1 dialled by A, c2 dialled by B."""

    def __init__(self, keep_outgoing, dialled_c1):
        self.rules = ConnectionRules(keep_outgoing=lambda: keep_outgoing)
        self.c1, self.c2 = (out(), inc()) if dialled_c1 else (inc(), out())
        own = self.c1 if dialled_c1 else self.c2
        self.rules.opened(own)
        self.rules.opened(self.c2 if dialled_c1 else self.c1)

    def kept(self):
        return "c1" if self.rules.current is self.c1 else "c2"


@pytest.mark.parametrize("a_newer", [True, False])
def test_crossed_connections_both_sides_keep_the_same_one(a_newer):
    # Each side sends its first keepalive on its own outgoing connection, so A hears B
    # on c2 and B hears A on c1, at about the same time.
    a, b = Host(keep_outgoing=a_newer, dialled_c1=True), Host(keep_outgoing=not a_newer, dialled_c1=False)
    a.rules.authenticated(a.c2, 0.01)
    b.rules.authenticated(b.c1, 0.01)
    assert a.kept() == b.kept() == ("c1" if a_newer else "c2")
    # ... and what still arrives on the other one does not make anyone switch.
    a.rules.authenticated(a.c2 if a_newer else a.c1, 0.02)
    b.rules.authenticated(b.c2 if a_newer else b.c1, 0.02)
    assert a.kept() == b.kept() == ("c1" if a_newer else "c2")
    loser = "c2" if a_newer else "c1"
    assert [getattr(a, loser)] == a.rules.expired(0.02 + GRACE_SECONDS)


def test_a_stale_current_is_not_defended_by_the_crossing_rule():
    rules = ConnectionRules(keep_outgoing=lambda: True)
    dialled, accepted = out(), inc()
    rules.opened(dialled)
    rules.opened(accepted)
    rules.authenticated(dialled, 1.0)
    rules.authenticated(accepted, 1.0 + GRACE_SECONDS + 1)      # dialled went silent: the peer lost it
    assert rules.current is accepted

"""connections.py: which TCP connections are trusted, kept and sent on (pure rules)."""
import pytest

from tomato_gevent.vpn.connections import (GRACE_SECONDS, MAX_UNTRUSTED, UNANSWERED_SECONDS, UNTRUSTED_BYTES,
                                           UNTRUSTED_SECONDS, ConnectionRules, ConnectionState)


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
    """One side of a simulated link: its rules, its connections by name (the other side
    knows the same connection by the same name), its sending session and counter."""

    def __init__(self, newer, session):
        self.rules = ConnectionRules(keep_outgoing=lambda: newer)
        self.session, self.counter = session, 0
        self.conns = {}

    def dial(self, name, now=0.0):
        self.conns[name] = out(now)
        return self.rules.opened(self.conns[name])

    def accept(self, name, now=0.0):
        self.conns[name] = inc(now)
        return self.rules.opened(self.conns[name])

    def send(self, data=True):
        """A datagram on the current connection: (connection name, (session, counter))."""
        self.counter += 1
        current = self.rules.current
        current.sent_data += data
        return self.on(), (self.session, self.counter)

    def receive(self, sent, now):
        """True when the rules ask us to send on our current connection at once."""
        name, header = sent
        return self.rules.authenticated(self.conns[name], now, header)

    def on(self):
        return next(name for name, conn in self.conns.items() if conn is self.rules.current)


def crossed(a_newer):
    """A dialled c1, B dialled c2, each accepted the other's."""
    a, b = Host(newer=a_newer, session=1), Host(newer=not a_newer, session=2)
    a.dial("c1")
    b.dial("c2")
    a.accept("c2")
    b.accept("c1")
    return a, b


@pytest.mark.parametrize("a_newer", [True, False])
def test_crossed_connections_both_sides_keep_the_same_one(a_newer):
    # Each side sends its first two datagrams on its own outgoing connection before it
    # hears the other, so A hears B on c2 and B hears A on c1, at about the same time.
    a, b = crossed(a_newer)
    from_a, from_b = [a.send(), a.send()], [b.send(), b.send()]
    a.receive(from_b[0], 0.01)
    b.receive(from_a[0], 0.01)
    kept = "c1" if a_newer else "c2"
    assert a.on() == b.on() == kept
    # ... what was still in flight on the other one does not make anyone switch,
    a.receive(from_b[1], 0.02)
    b.receive(from_a[1], 0.02)
    assert a.on() == b.on() == kept
    # ... nor does the traffic that follows: both send on the kept one now.
    for i in range(3):
        now = 0.03 + i
        b.receive(a.send(), now)
        a.receive(b.send(), now)
        assert a.on() == b.on() == kept
    loser = "c2" if a_newer else "c1"
    assert a.rules.expired(0.02 + GRACE_SECONDS) == [a.conns[loser]]
    assert b.rules.expired(0.02 + GRACE_SECONDS) == [b.conns[loser]]


def test_the_keeping_side_tells_the_peer_at_once_when_it_has_not_sent_on_the_kept_connection():
    """The handshake's messages all went on B's connection (c2), so A (keeping its own c1) has
    sent nothing on c1, and B keeps sending on c2, the one A closes after the grace. The rules
    ask A for a datagram on c1 as soon as it keeps c1 against c2 -- once -- and B follows it."""
    a, b = crossed(a_newer=True)
    first, second = b.send(), b.send()
    assert first[0] == "c2"
    assert a.receive(first, 0.01) is True and a.on() == "c1"
    assert a.receive(second, 0.02) is False              # asked once, not per datagram
    assert b.receive(a.send(data=False), 0.03) is False and b.on() == "c1"
    assert a.rules.expired(0.01 + GRACE_SECONDS) == [a.conns["c2"]]
    assert b.rules.expired(0.03 + GRACE_SECONDS) == [b.conns["c2"]]


def test_the_following_side_never_asks_to_tell_the_peer():
    a, b = crossed(a_newer=True)
    assert b.receive(a.send(), 0.01) is False and b.on() == "c1"
    assert b.receive(a.send(), 0.02) is False


def attacked(a_newer):
    """A dialled B (c1), they talk; the attacker can open c3 to A at any time."""
    a, b = Host(newer=a_newer, session=1), Host(newer=not a_newer, session=2)
    a.dial("c1")
    b.accept("c1")
    b.receive(a.send(), 0.1)
    a.receive(b.send(), 0.1)
    return a, b


def test_a_held_datagram_delivered_late_moves_nothing():
    a, b = attacked(a_newer=False)
    held = b.send()                     # the attacker keeps it ...
    a.receive(b.send(), 1.0)            # ... the next one arrives on c1
    a.accept("c3", 1.5)
    a.receive(("c3", held[1]), 1.5)     # and delivers it on its own connection
    assert a.on() == "c1" and a.conns["c3"].authenticated
    assert a.rules.expired(1.5 + GRACE_SECONDS) == [a.conns["c3"]]


@pytest.mark.parametrize("a_newer", [True, False])
def test_a_held_datagram_delivered_first_diverts_only_until_the_next_one(a_newer):
    a, b = attacked(a_newer)
    held = b.send()
    a.accept("c3", 1.0)
    a.receive(("c3", held[1]), 1.0)     # fresh: nothing newer has arrived yet
    # The side with the newer session keeps the connection it dialled while it is alive;
    # the older side follows the freshest datagram -- for one datagram only.
    assert a.on() == ("c1" if a_newer else "c3")
    a.receive(b.send(), 2.0)
    assert a.on() == "c1" and a.conns["c1"].retire_at is None
    assert a.rules.expired(2.0 + GRACE_SECONDS) == [a.conns["c3"]]


def test_a_diversion_the_peer_never_corrects_ends_in_a_redial():
    # B answers only what A sends, so after the diversion nothing arrives on c1: A's
    # data goes unanswered on c3, A dials again, B follows the new connection.
    a, b = attacked(a_newer=False)
    held = b.send()
    a.accept("c3", 1.0)
    a.receive(("c3", held[1]), 1.0)
    assert a.on() == "c3"
    now = 1.0
    while not a.rules.redial_wanted(now):
        a.send()                        # lost: the attacker reads and discards it
        now += 0.5
        assert now < 1.0 + UNANSWERED_SECONDS + 1.5
    assert a.dial("c4", now) == [] and a.on() == "c4"
    b.accept("c4", now)
    b.receive(a.send(data=False), now)  # the dialler's keepalive
    assert b.on() == "c4"
    a.receive(b.send(data=False), now)  # the acceptor's answer
    assert a.conns["c4"].authenticated
    assert set(a.rules.expired(now + GRACE_SECONDS)) == {a.conns["c1"], a.conns["c3"]}
    assert b.rules.expired(now + GRACE_SECONDS) == [b.conns["c1"]]


def test_no_redial_while_idle_answered_or_on_our_own_connection():
    # Idle: keepalives only.
    a, b = attacked(a_newer=False)
    for i in range(10):
        b.receive(a.send(data=False), 1.0 + i)
        assert not a.rules.redial_wanted(1.0 + i + 0.5)
    # Our own connection unanswered: dialling the same address again would give nothing new
    # (a dead one is found by TCP; a silent listener by the untrusted deadline).
    for i in range(10):
        a.send()
        assert not a.rules.redial_wanted(20.0 + i)
    # An incoming connection that answers.
    a, b = Host(newer=True, session=1), Host(newer=False, session=2)
    b.dial("c1")
    a.accept("c1")
    a.receive(b.send(), 0.0)
    for i in range(10):
        b.receive(a.send(), 1.0 + i)
        a.receive(b.send(), 1.0 + i + 0.1)
        assert not a.rules.redial_wanted(1.0 + i + 0.5)


def test_a_redial_that_completes_after_the_current_answered_again_is_closed():
    a, b = attacked(a_newer=False)
    a.accept("c3", 1.0)
    a.receive(("c3", b.send()[1]), 1.0)
    now = 1.0
    while not a.rules.redial_wanted(now):
        a.send()
        now += 0.5
    a.receive(("c3", b.send()[1]), now)     # c3 answers after all (it is the peer's)
    late = out(now + 0.1)
    assert a.rules.opened(late) == [late] and a.on() == "c3"


def test_a_dialled_connection_that_never_authenticates_expires():
    rules = ConnectionRules()
    dialled = out(now=100.0)
    rules.opened(dialled)
    assert rules.expired(100.0 + UNTRUSTED_SECONDS - 0.1) == []
    assert rules.expired(100.0 + UNTRUSTED_SECONDS) == [dialled]
    rules.closed(dialled)
    assert rules.current is None and rules.redial_wanted(100.0 + UNTRUSTED_SECONDS)
    answered = out(now=200.0)
    rules.opened(answered)
    rules.authenticated(answered, 200.1)
    assert rules.expired(1000.0) == []


def test_a_stale_current_is_not_defended_by_the_crossing_rule():
    rules = ConnectionRules(keep_outgoing=lambda: True)
    dialled, accepted = out(), inc()
    rules.opened(dialled)
    rules.opened(accepted)
    rules.authenticated(dialled, 1.0)
    rules.authenticated(accepted, 1.0 + GRACE_SECONDS + 1)      # dialled went silent: the peer lost it
    assert rules.current is accepted

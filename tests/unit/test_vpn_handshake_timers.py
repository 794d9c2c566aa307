"""The v3 handshake's timers (vpn/handshake.py): rekeying under traffic without losing a datagram,
after a message count, keys dropped after REJECT_AFTER, keepalives and new handshakes when data
goes unanswered or the peer falls silent."""
from tomato_gevent.vpn import messages
from tomato_gevent.vpn.handshake import (KEEPALIVE_TIMEOUT_SECONDS, NEW_HANDSHAKE_AFTER_SECONDS,
                                         RESPONDER_REKEY_DELAY_SECONDS)
from tomato_gevent.vpn.keypair import REJECT_AFTER_SECONDS, REKEY_AFTER_SECONDS

from .vpn_handshake_doubles import A_ADDRESS, B_ADDRESS, exchange, make_pair, same_session


def up(wire, a):
    wire.tick(a)
    wire.deliver()


def test_rekey_under_traffic_loses_nothing_and_old_keys_open_stragglers():
    a, b, wire, clock = make_pair()
    up(wire, a)
    keypairs_seen = {id(a.keypairs.current)}
    sent = received = 0
    stragglers = []
    step = 0.25
    for i in range(int(400 / step)):         # over three rekeys
        clock.advance(step)
        # Each side sends on what it has; one of A's datagrams per second is held back a while
        # (reordered across the rekey) and delivered late.
        for sender, receiver in ((a, b), (b, a)):
            datagram = sender.seal(b"%d" % i)
            sent += 1
            if sender is a and i % 4 == 0:
                stragglers.append((i + 6, datagram))
            else:
                wire.send(datagram, sender.address, receiver.address)
        for due, datagram in [s for s in stragglers if s[0] <= i]:
            stragglers.remove((due, datagram))
            wire.send(datagram, A_ADDRESS, B_ADDRESS)
        wire.tick(a, b)
        for item in wire.take():
            payload = wire.deliver_one(*item)
            received += item[0][0] == messages.DATA and payload is not None and payload != b""
            wire.deliver()
        keypairs_seen.add(id(a.keypairs.current))
    assert not a.refusals and not b.refusals, [e.reason for e in a.refusals + b.refusals]
    assert received == sent - len(stragglers)
    assert len(keypairs_seen) >= 4, "three rekeys in 400 s"
    assert same_session(a, b)


def test_the_initiator_of_the_current_keypair_rekeys_first():
    a, b, wire, clock = make_pair()
    up(wire, a)
    clock.advance(REKEY_AFTER_SECONDS - 1)
    wire.tick(a, b)
    assert not wire.queue
    clock.advance(1)
    wire.tick(b)
    assert not wire.queue, "the responder waits RESPONDER_REKEY_DELAY longer"
    wire.tick(a)
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION]
    wire.take()
    clock.advance(RESPONDER_REKEY_DELAY_SECONDS)
    wire.tick(b)
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION], "... and then takes over"


def test_rekey_after_a_message_count():
    a, b, wire, _ = make_pair(a_options={"rekey_after_messages": 10})
    up(wire, a)
    first = a.keypairs.current
    for _ in range(10):
        exchange(wire, a, b)
    wire.tick(a)
    wire.deliver()
    assert a.keypairs.current is not first and a.keypairs.previous is first and same_session(a, b)


def test_keys_are_dropped_after_reject_after():
    a, b, wire, clock = make_pair()
    up(wire, a)
    b.handshake.peer_address = None       # B cannot answer (its initiations go nowhere)
    a.handshake.peer_address = None
    clock.advance(REJECT_AFTER_SECONDS)
    wire.tick(a, b)
    assert a.keypairs.sending(clock.mono) is None and a.keypairs.current is None
    assert b.keypairs.current is None


def test_data_without_an_answer_starts_a_new_handshake():
    a, b, wire, clock = make_pair()
    up(wire, a)
    clock.advance(1)
    wire.send(a.seal(b"hello?"), A_ADDRESS, B_ADDRESS)
    wire.take()                                 # lost, and B never answers
    clock.advance(NEW_HANDSHAKE_AFTER_SECONDS - 0.1)
    wire.tick(a)
    assert not wire.queue
    clock.advance(0.2)
    wire.tick(a)
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION]


def test_received_data_is_answered_by_a_keepalive_when_nothing_else_goes_back():
    a, b, wire, clock = make_pair()
    up(wire, a)
    wire.send(a.seal(b"one way"), A_ADDRESS, B_ADDRESS)
    wire.deliver()
    clock.advance(KEEPALIVE_TIMEOUT_SECONDS)
    wire.tick(b)
    assert b.keepalives == 1
    (keepalive,) = wire.take()
    assert wire.deliver_one(*keepalive) == b"" and not a.refusals
    clock.advance(NEW_HANDSHAKE_AFTER_SECONDS)
    wire.tick(a)
    assert not wire.queue, "the keepalive answered A's data: no new handshake"


def test_a_silent_peer_gets_a_new_handshake_after_silence_rehandshake():
    """A dynamic peer that restarted cannot initiate (it does not know our address): the side
    that does initiates once the peer has been silent for longer than its keepalive allows."""
    a, b, wire, clock = make_pair(a_options={"silence_rehandshake": 40.0})
    up(wire, a)
    clock.advance(39.5)
    wire.tick(a)
    assert not wire.queue
    clock.advance(1)
    wire.tick(a)
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION]


def test_a_dynamic_side_initiates_only_once_it_knows_the_address():
    a, b, wire, clock = make_pair()
    a.handshake.peer_address = None
    wire.tick(a)
    assert not wire.queue
    up(wire, b)
    assert same_session(a, b)
    a.handshake.peer_address = B_ADDRESS        # learned from the completed handshake
    clock.advance(REKEY_AFTER_SECONDS + RESPONDER_REKEY_DELAY_SECONDS)
    wire.tick(a)
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION]

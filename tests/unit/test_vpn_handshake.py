"""The v3 handshake (vpn/handshake.py) with both ends in one process: messages lost, duplicated,
reordered, replayed and reflected; both sides initiating at once; a restart mid-session; a wrong
password; clock skew; a capture from one pair replayed at another (the hub reusing its -lp)."""
import pytest

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import messages
from tomato_gevent.vpn.handshake import (REKEY_TIMEOUT_SECONDS, RESPONSE_LIFETIME_SECONDS, Handshake,
                                         HandshakeTimestampRefused, PasswordMismatch)
from tomato_gevent.vpn.keypair import UNKNOWN_INDEX
from tomato_gevent.vpn.versions import VersionMismatch

from .vpn_handshake_doubles import (A_ADDRESS, B_ADDRESS, PVT, Clock, Host, Wire, exchange, make_pair, password_key,
                                    same_session)


def handshake(wire, a):
    wire.tick(a)
    wire.deliver()


def kinds(queue):
    return [message[0] for message, _, _ in queue]


def test_one_round_trip_gives_both_ends_one_session():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    (initiation,) = wire.take()
    assert kinds([initiation]) == [messages.INITIATION] and len(initiation[0]) == messages.INITIATION_SIZE
    wire.deliver_one(*initiation)
    (response,) = wire.take()
    assert response[0][0] == messages.RESPONSE and response[2] == A_ADDRESS
    assert b.keypairs.current is None, "the responder waits for the confirmation"
    wire.deliver_one(*response)
    assert [e.initiator for e in a.established] == [True], "the initiator is up after one round trip"
    (confirmation,) = wire.take()
    assert confirmation[0][0] == messages.CONFIRMATION
    wire.deliver_one(*confirmation)
    assert [e.initiator for e in b.established] == [False]
    assert same_session(a, b)
    assert exchange(wire, a, b) == [b"ping", b"ping"]
    assert not a.refusals and not b.refusals


def test_the_two_directions_use_different_keys():
    a, b, wire, _ = make_pair()
    handshake(wire, a)
    datagram = a.seal(b"to B")
    wire.deliver_one(datagram, B_ADDRESS, A_ADDRESS)    # A's own datagram reflected back to A
    assert a.refusals and a.refusals[-1].reason == UNKNOWN_INDEX
    # Even an index that happens to be A's own does not open: the key is the other direction's.
    forged = bytearray(datagram)
    forged[4:8] = a.keypairs.current.local_index.to_bytes(4, "big")
    with pytest.raises(BadPacket, match="authentication failed"):
        a.keypairs.open(bytes(forged), a.clock.mono)


@pytest.mark.parametrize("lost", [messages.INITIATION, messages.RESPONSE])
def test_a_lost_initiation_or_response_is_replaced_after_the_rekey_timeout(lost):
    a, b, wire, clock = make_pair()
    wire.tick(a)
    wire.deliver(drop=lambda message, source, destination: message[0] == lost)
    assert a.keypairs.current is None and b.keypairs.current is None
    clock.advance(REKEY_TIMEOUT_SECONDS - 0.5)
    wire.tick(a)
    assert not wire.queue, "no retry before REKEY_TIMEOUT"
    clock.advance(1.0)
    wire.tick(a)
    wire.deliver()
    assert same_session(a, b) and exchange(wire, a, b) == [b"ping", b"ping"]


def test_a_lost_confirmation_is_replaced_by_the_first_data_datagram():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    wire.deliver(drop=lambda message, source, destination: message[0] == messages.CONFIRMATION)
    assert a.keypairs.current is not None and b.keypairs.current is None
    wire.send(a.seal(b"first"), A_ADDRESS, B_ADDRESS)
    (item,) = wire.take()
    assert wire.deliver_one(*item) == b"first"
    assert [e.initiator for e in b.established] == [False] and same_session(a, b)
    assert exchange(wire, a, b) == [b"ping", b"ping"]


def test_data_overtaking_the_confirmation_confirms_and_the_late_confirmation_changes_nothing():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    wire.deliver(rounds=2)                  # initiation, response: the confirmation is queued
    (confirmation,) = wire.take()
    wire.send(a.seal(b"early"), A_ADDRESS, B_ADDRESS)
    (data,) = wire.take()
    assert wire.deliver_one(*data) == b"early"
    before = b.state()
    wire.deliver_one(*confirmation)
    assert b.state() == before and len(b.established) == 1
    assert isinstance(b.refusals[-1], BadPacket)


def test_a_duplicated_initiation_gets_the_same_response_without_new_work():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    (initiation,) = wire.take()
    wire.deliver_one(*initiation)
    wire.deliver_one(*initiation)
    first, second = wire.take()
    assert first == second
    assert len(b.handshake._answered) == 1
    wire.deliver_one(*first)
    wire.deliver_one(*second)               # duplicated response: no initiation waits for it any more
    assert isinstance(a.refusals[-1], BadPacket) and len(a.established) == 1
    confirmations = wire.take()
    assert kinds(confirmations) == [messages.CONFIRMATION]
    for _ in range(2):
        wire.deliver_one(*confirmations[0])
    assert len(b.established) == 1 and same_session(a, b)


def test_replayed_handshake_messages_are_refused_without_changing_anything():
    a, b, wire, clock = make_pair()
    handshake(wire, a)
    initiation, response, confirmation = wire.log[:3]
    before_a, before_b = a.state(), b.state()
    wire.deliver_one(*initiation)       # within -pvt: not newer than the confirmed one
    assert b.refusals[-1].reason == "initiation not newer than the last handshake"
    wire.deliver_one(*response)
    wire.deliver_one(*confirmation)
    assert (a.state(), b.state()) == (before_a, before_b) and not wire.queue
    clock.advance(PVT + 1)
    b.handshake._last_peer_timestamp = None     # as after a restart of B: only the clock check is left
    wire.deliver_one(*initiation)
    assert isinstance(b.refusals[-1], HandshakeTimestampRefused) and not wire.queue


def test_replayed_data_is_refused_and_reordered_data_accepted():
    a, b, wire, _ = make_pair()
    handshake(wire, a)
    datagrams = [a.seal(b"%d" % i) for i in range(5)]
    assert [wire.deliver_one(d, A_ADDRESS, B_ADDRESS) for d in reversed(datagrams)] == [b"4", b"3", b"2", b"1",
                                                                                          b"0"]
    before = b.state()
    assert wire.deliver_one(datagrams[2], A_ADDRESS, B_ADDRESS) is None
    assert b.refusals[-1].reason == "replayed or too old counter" and b.state() == before


def test_reflected_initiation_is_refused_before_any_work():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    (initiation, _, _), = wire.take()
    wire.deliver_one(initiation, B_ADDRESS, A_ADDRESS)
    assert a.refusals[-1].reason == "own initiation (reflected)" and not wire.queue


def test_a_reflected_initiation_that_got_through_agrees_on_nothing():
    """Even answered (its sid forgotten), the reflection uses the passwords in the other order."""
    a, b, wire, _ = make_pair()
    wire.tick(a)
    (initiation, _, _), = wire.take()
    a.handshake._own_sids.clear()
    a_again = Host("A'", "pwd1", "pwd2", ("10.9.0.3", 5000), A_ADDRESS, a.clock, 7)
    wire.hosts[a_again.address] = a_again
    wire.deliver_one(initiation, A_ADDRESS, a_again.address)     # A's twin answers A's initiation
    wire.deliver()
    assert isinstance(a.refusals[-1], PasswordMismatch) and isinstance(a_again.refusals[-1], PasswordMismatch)
    assert a.keypairs.current is None and a_again.keypairs.current is None


def test_simultaneous_initiations_end_in_one_session():
    a, b, wire, _ = make_pair()
    wire.tick(a, b)
    assert kinds(wire.queue) == [messages.INITIATION] * 2
    wire.deliver()
    assert len(a.established) == len(b.established) == 1 and same_session(a, b)
    reasons = [r.reason for r in a.refusals + b.refusals]
    assert reasons.count("crossed initiation: ours proceeds") == 1
    # The winner sent its initiation again (the loser might not have had it): answered as a
    # duplicate, its response then finds no initiation waiting. Nothing else was refused.
    assert set(reasons) <= {"crossed initiation: ours proceeds", "response to no initiation of ours"}
    assert exchange(wire, a, b) == [b"ping", b"ping"]


def test_crossed_initiations_with_the_winner_lost_complete_at_once():
    """The winning initiation is lost (or was sent before the other side restarted): the
    winner sends it again when the loser's crosses it, instead of dropping the loser's and
    waiting REKEY_TIMEOUT for its own retry."""
    a, b, wire, clock = make_pair()
    wire.tick(a, b)
    winner = max(wire.queue, key=lambda item: messages.parse_initiation(item[0]).sid)
    lost = []

    def drop_the_first_copy(*item):
        if item == winner and not lost:
            lost.append(item)
            return True
        return False

    wire.deliver(drop=drop_the_first_copy)
    assert lost and same_session(a, b) and exchange(wire, a, b) == [b"ping", b"ping"]


def test_a_restarted_peer_is_back_after_one_round_trip():
    a, b, wire, clock = make_pair()
    handshake(wire, a)
    old = a.keypairs.current
    assert exchange(wire, a, b) == [b"ping", b"ping"]
    clock.advance(30)
    # B restarts: a new process with nothing of the old session.
    b = Host("B", "pwd2", "pwd1", B_ADDRESS, A_ADDRESS, clock, 99)
    wire.hosts[B_ADDRESS] = b
    wire.send(a.seal(b"to the old B"), A_ADDRESS, B_ADDRESS)
    wire.deliver()
    assert b.refusals[-1].reason == UNKNOWN_INDEX
    wire.tick(b)                                        # at start
    wire.deliver(rounds=1)                              # the initiation reaches A ...
    wire.deliver(rounds=1)                              # ... A's response reaches B: one round trip
    assert len(b.established) == 1
    wire.send(b.seal(b"back"), B_ADDRESS, A_ADDRESS)
    wire.deliver()
    assert a.keypairs.current is not old and same_session(a, b)
    assert a.keypairs.previous is old, "the old keypair still opens stragglers until REJECT_AFTER"
    assert exchange(wire, a, b) == [b"ping", b"ping"]


def test_wrong_password_gives_a_clear_refusal_on_both_sides_and_no_keys():
    a, b, wire, _ = make_pair(b_pp="not pwd1")
    handshake(wire, a)
    assert [type(e) for e in a.refusals] == [PasswordMismatch]
    assert [type(e) for e in b.refusals] == [PasswordMismatch]
    assert a.keypairs.current is None and b.keypairs.current is None and not a.established + b.established
    assert b.keypairs.unconfirmed, "the answered initiation still waits (a forged confirmation changes nothing)"


def test_a_forged_confirmation_does_not_stop_the_real_one():
    a, b, wire, _ = make_pair()
    wire.tick(a)
    wire.deliver(rounds=2)
    (confirmation,) = wire.take()
    forged = bytearray(confirmation[0])
    forged[-1] ^= 1
    before = b.state()
    wire.deliver_one(bytes(forged), *confirmation[1:])
    assert isinstance(b.refusals[-1], PasswordMismatch) and b.state() == before
    wire.deliver_one(*confirmation)
    assert same_session(a, b)


@pytest.mark.parametrize("skew_s", [PVT + 1, -(PVT + 1)])
def test_an_initiator_whose_clock_differs_by_more_than_pvt_is_refused_with_the_skew(skew_s):
    a, b, wire, _ = make_pair(b_skew_ms=int(skew_s * 1000))
    wire.tick(b)
    wire.deliver()
    (refusal,) = a.refusals
    assert isinstance(refusal, HandshakeTimestampRefused) and abs(refusal.skew_ms - skew_s * 1000) < 5
    assert a.keypairs.current is None and not a.handshake._answered


def test_a_skew_within_pvt_is_fine():
    a, b, wire, _ = make_pair(b_skew_ms=int((PVT - 1) * 1000))
    handshake(wire, b)
    assert same_session(a, b)


def test_an_answered_initiation_that_is_never_confirmed_is_forgotten():
    a, b, wire, clock = make_pair()
    wire.tick(a)
    wire.deliver(rounds=1)
    wire.take()
    assert b.keypairs.unconfirmed
    clock.advance(RESPONSE_LIFETIME_SECONDS)
    wire.tick(b)
    assert not b.keypairs.unconfirmed and not b.handshake._answered


def test_equal_password_keys_are_refused():
    with pytest.raises(ValueError):
        Handshake(password_key("x"), password_key("x"), PVT, bytes)


def test_a_capture_from_one_pair_is_worthless_at_another():
    """The hub runs one instance per node with the same -lp; everything captured between the hub
    and node 2 (handshakes and data) is refused by the hub's instance for node 1 and by node 1."""
    clock = Clock()
    hub1 = Host("hub1", "hub", "node1", ("10.9.0.1", 5001), None, clock, 11)
    node1 = Host("node1", "node1", "hub", ("10.9.1.2", 5000), hub1.address, clock, 12)
    hub2 = Host("hub2", "hub", "node2", ("10.9.0.1", 5002), None, clock, 13)
    node2 = Host("node2", "node2", "hub", ("10.9.2.2", 5000), hub2.address, clock, 14)
    wire1, wire2 = Wire(hub1, node1), Wire(hub2, node2)
    handshake(wire1, node1)
    handshake(wire2, node2)
    assert same_session(hub1, node1) and same_session(hub2, node2)
    for _ in range(3):
        wire2.send(hub2.seal(b"hub to node2"), hub2.address, node2.address)
        wire2.send(node2.seal(b"node2 to hub"), node2.address, hub2.address)
    wire2.deliver()
    clock.advance(1)
    captured = list(wire2.log)
    assert len(captured) >= 9
    before = hub1.session_state(), node1.session_state()
    for message, _, _ in captured:
        for target, source in ((hub1, node1.address), (node1, hub1.address)):
            wire1.deliver_one(message, source, target.address)
    wire1.deliver(rounds=3)         # whatever the replays provoked (node 1 answers node 2's initiation)
    assert (hub1.session_state(), node1.session_state()) == before
    assert len(hub1.established) == len(node1.established) == 1
    assert same_session(hub1, node1) and exchange(wire1, hub1, node1) == [b"ping", b"ping"]


def test_a_forged_initiation_with_a_larger_sid_does_not_cancel_ours():
    """Crossed initiations resolve by sid, but only an authenticated confirmation ends ours: an
    attacker's initiation with sid ff..ff is answered (it cannot complete) and ours goes on."""
    from tomato_gevent.vpn import cpace, keyschedule
    a, b, wire, _ = make_pair()
    wire.tick(a)
    (initiation,) = wire.take()
    sid = b"\xff" * 16
    generator = cpace.calculate_generator(b"guess", keyschedule.CHANNEL_ID, sid)
    share = cpace.scalar_mult(cpace.sample_scalar(lambda n: b"\x07" * n), generator)
    before = a.session_state()
    forged = messages.encode_initiation(messages.initiation_ad(1, a.wall_ms, sid), share)
    wire.deliver_one(forged, B_ADDRESS, A_ADDRESS)
    assert a.session_state() == before
    wire.take()
    wire.deliver_one(*initiation)
    wire.deliver()
    assert same_session(a, b)


def test_a_datagram_of_protocol_v2_names_the_version():
    import struct
    a, b, wire, _ = make_pair()
    v2_keepalive = struct.pack(">QI", (a.wall_ms - 3000) << 16 | 7, 0) + bytes(24)
    wire.deliver_one(v2_keepalive, B_ADDRESS, A_ADDRESS)
    (refusal,) = a.refusals
    assert isinstance(refusal, VersionMismatch) and refusal.version == 2


def crossed_runs():
    """Every order in which A's initiation, B's initiation (B initiates when its dial connects,
    before or after A's has arrived: the TCP transport's announce) and what they provoke can
    arrive; yields (a, b) at the end of each."""
    def run(choices):
        a, b, wire, _ = make_pair()
        wire.tick(a)
        b_initiated, taken = False, []
        for choice in choices:
            options = len(wire.queue) + (not b_initiated)
            if choice >= options:
                return None, None, taken
            taken.append(choice)
            if choice == len(wire.queue):
                wire.post(b.handshake.initiate(b.clock.mono, b.wall_ms), b)
                b_initiated = True
            else:
                wire.deliver_one(*wire.queue.pop(choice))
        return (a, b) if not wire.queue and b_initiated else None, len(wire.queue) + (not b_initiated), taken

    stack = [[]]
    while stack:
        choices = stack.pop()
        ends, options, _ = run(choices)
        if ends is not None:
            yield ends
        elif options:
            stack.extend(choices + [i] for i in range(options))


def test_after_crossed_initiations_exactly_one_side_keeps_its_outgoing_connection():
    """The TCP transport's crossed-connection tie-break (keeps_outgoing) must come out opposite on
    the two sides in every order, also when both initiations complete (each side answered the
    other's after its own was up, so each side's current keypair is the one the peer initiated):
    else both follow (or both keep) and each retires the connection the other sends on."""
    both_complete = 0
    for a, b in crossed_runs():
        assert a.keypairs.current is not None and b.keypairs.current is not None
        both_complete += len(a.established) == len(b.established) == 2
        assert a.handshake.keeps_outgoing() != b.handshake.keeps_outgoing()
    assert both_complete, "no order completed both handshakes: the case this test is for"

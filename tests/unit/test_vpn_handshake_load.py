"""Cookies under load and the handshake rate limits (vpn/ratelimit.py, vpn/handshake.py): a flood of
forged initiations from the real peer's own address makes the responder compute only up to its
load threshold; the real peer gets through with one cookie round trip."""
import random

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import cpace, keyschedule, messages
from tomato_gevent.vpn.ratelimit import HandshakeGate

from .vpn_handshake_doubles import A_ADDRESS, B_ADDRESS, make_pair, same_session


def forged_initiation(rng, wall_ms):
    """What an attacker can make: valid layout, mac1 and share, fresh timestamp; no password."""
    sid = rng.randbytes(16)
    share = cpace.scalar_mult(cpace.sample_scalar(rng.randbytes),
                              cpace.calculate_generator(b"a guess", keyschedule.CHANNEL_ID, sid))
    return messages.encode_initiation(messages.initiation_ad(rng.getrandbits(32), wall_ms, sid), share)


def test_under_a_forged_flood_from_the_peers_address_the_real_peer_gets_through_with_a_cookie():
    gate = HandshakeGate(load_threshold=8, max_per_second=64)
    a, b, wire, clock = make_pair(a_options={"gate": gate})
    rng = random.Random(3)
    computed_before = len(a.handshake._answered)
    for _ in range(500):                        # all within this second, from B's exact address and port
        wire.deliver_one(forged_initiation(rng, a.wall_ms), B_ADDRESS, A_ADDRESS)
    replies = wire.take()
    kinds = [m[0] for m, _, _ in replies]
    assert kinds.count(messages.RESPONSE) == 8, "work up to the load threshold only"
    assert kinds.count(messages.COOKIE_REPLY) == 492 and len(a.handshake._answered) - computed_before == 8
    assert all(destination == B_ADDRESS for _, _, destination in replies)
    for item in replies:                        # B receives the answers to the forgeries: none is its own
        wire.deliver_one(*item)
    assert b.keypairs.current is None and not wire.queue and b.handshake._cookie is None

    wire.tick(b)                                # the real peer (say, just restarted) initiates
    wire.deliver(rounds=1)
    (cookie_reply,) = wire.queue
    assert cookie_reply[0][0] == messages.COOKIE_REPLY
    wire.deliver(rounds=1)                      # B resends at once, with mac2
    (resent,) = wire.queue
    assert resent[0][0] == messages.INITIATION and messages.initiation_mac2_valid(resent[0], b.handshake._cookie[0])
    wire.deliver()
    assert same_session(a, b)


def test_a_cookie_reply_to_someone_else_or_replayed_changes_nothing():
    a, b, wire, clock = make_pair(a_options={"gate": HandshakeGate(load_threshold=0)})
    wire.tick(b)
    wire.deliver(rounds=1)
    (reply,) = wire.take()
    forged = bytearray(reply[0])
    forged[10] ^= 1                             # the echoed mac1
    before = b.state()
    wire.deliver_one(bytes(forged), *reply[1:])
    assert b.state() == before and b.refusals[-1].reason == "cookie reply to no initiation of ours"
    wire.deliver_one(*reply)
    wire.deliver_one(*reply)                    # a second copy: no second resend
    assert [m[0] for m, _, _ in wire.queue] == [messages.INITIATION]


def test_a_valid_cookie_is_limited_per_source_and_in_total():
    gate = HandshakeGate(load_threshold=0, max_per_second=1000, per_source_rate=1.0, per_source_burst=2.0)
    assert gate.under_load(0.0)
    assert not gate.admit(b"x", 0.0, cookie_valid=False)
    assert [gate.admit(b"x", 0.0, True) for _ in range(3)] == [True, True, False]
    assert gate.admit(b"y", 0.0, True), "another source has its own bucket"
    assert gate.admit(b"x", 1.0, True) and not gate.admit(b"x", 1.0, True), "refilled at the rate"
    capped = HandshakeGate(load_threshold=100, max_per_second=3)
    assert [capped.admit(b"s%d" % i, 5.5, False) for i in range(4)] == [True, True, True, False]
    assert capped.admit(b"s", 6.1, False), "a new second"


def test_load_lasts_into_the_next_second_and_then_ends():
    gate = HandshakeGate(load_threshold=2)
    assert gate.admit(b"a", 10.1, False) and gate.admit(b"b", 10.2, False)
    assert gate.under_load(10.3) and gate.under_load(11.9)
    assert not gate.under_load(12.0)
    assert not gate.under_load(13.5)


def test_the_gate_forgets_buckets_beyond_its_bound():
    gate = HandshakeGate(load_threshold=0, max_per_second=10 ** 6, max_sources=10)
    for i in range(100):
        assert gate.admit(b"%d" % i, 0.5, True)
    assert len(gate._buckets) <= 10


def test_without_load_mac2_is_not_needed_and_with_it_a_wrong_one_gets_a_cookie_reply():
    a, b, wire, clock = make_pair(a_options={"gate": HandshakeGate(load_threshold=0)})
    wire.tick(b)
    (initiation,) = wire.take()
    wire.deliver_one(*initiation)
    assert [m[0] for m, _, _ in wire.take()] == [messages.COOKIE_REPLY]
    a2, b2, wire2, _ = make_pair()
    wire2.tick(b2)
    wire2.deliver()
    assert same_session(a2, b2)


def test_junk_costs_no_work():
    a, b, wire, clock = make_pair()
    rng = random.Random(4)
    for size in (0, 1, 23, 24, 40, 76, 96, 97, 1500):
        for kind in (0x31, 0x32, 0x33, 0x34, 0x30, 0x00, 0x41, 0xff):
            datagram = bytes([kind]) + rng.randbytes(max(size - 1, 0)) if size else b""
            before = a.state()
            wire.deliver_one(datagram, B_ADDRESS, A_ADDRESS)
            assert a.state() == before and not wire.queue
    assert all(isinstance(e, BadPacket) for e in a.refusals)
    assert not a.handshake._answered


def test_forged_crossing_initiations_do_not_use_up_sending_ours_again():
    """A's initiation is lost; a flood of forged initiations with smaller sids than A's (all
    'crossed') must not keep A from sending it again when the real peer's crossed one comes:
    crossing is judged after the gate, so the forgeries get cookie replies instead."""
    def first_sid(seed):
        rng = random.Random(seed)
        rng.randbytes(4)
        return rng.randbytes(16)

    b_seed = next(seed for seed in range(2, 200) if first_sid(seed) < first_sid(1))
    a, b, wire, clock = make_pair(a_options={"gate": HandshakeGate(load_threshold=2)}, b_seed=b_seed)
    wire.tick(a)
    wire.take()                                 # A's initiation is lost
    rng = random.Random(9)
    for _ in range(20):                         # forged, from B's address, crossing A's (smaller sid)
        sid = bytes(1) + rng.randbytes(15)
        share = cpace.scalar_mult(cpace.sample_scalar(rng.randbytes),
                                  cpace.calculate_generator(b"a guess", keyschedule.CHANNEL_ID, sid))
        forged = messages.encode_initiation(messages.initiation_ad(rng.getrandbits(32), a.wall_ms, sid), share)
        wire.deliver_one(forged, B_ADDRESS, A_ADDRESS)
    wire.take()
    wire.tick(b)                                # the real B initiates: its sid is smaller than A's too
    wire.deliver()
    assert same_session(a, b), [r.reason for r in a.refusals[-5:]]

"""session.py: the receive rules (auth, -pvt, replay, sessions only forward) and the dynamic address."""
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn.packet import (DEFAULT_BACKEND, HEADER_SIZE, MAX_DATAGRAM_SIZE, OVERHEAD, PAYLOAD_OFFSET,
                                      make_session_id, session_start_ms)
from tomato_gevent.vpn.replay import WINDOW_SIZE
from tomato_gevent.vpn.session import PeerEndpoint, Receiver, SendSession, TimestampRefused, new_sealer

PEER_KEY = bytes(range(32))
OTHER_KEY = bytes(32)
T0 = 1_700_000_000_000          # wall clock, ms
PVT = 10.0


class Peer:
    """The sending side of one session, with its own clock."""

    def __init__(self, start_ms=T0, key=PEER_KEY, random16=1):
        self.sealer = new_sealer(key, start_ms, random16)
        self.session_id = self.sealer.session_id

    def packet(self, payload=b"ip", timestamp=T0):
        return self.sealer.seal(payload, timestamp)


class Me:
    def __init__(self, backend=DEFAULT_BACKEND, sending=None):
        self.receiver = Receiver(PEER_KEY, PVT, sending, backend)
        self.out = bytearray(MAX_DATAGRAM_SIZE)

    def open(self, datagram, now_ms=T0, now_mono=100.0):
        n = self.receiver.open_into(datagram, self.out, now_ms, now_mono)
        return bytes(self.out[PAYLOAD_OFFSET:PAYLOAD_OFFSET + n])

    def refuses(self, datagram, reason=None, now_ms=T0, now_mono=100.0):
        before = (self.receiver.session_id, self.receiver._last_accept)
        with pytest.raises(BadPacket) as info:
            self.open(datagram, now_ms, now_mono)
        assert (self.receiver.session_id, self.receiver._last_accept) == before, "a refusal changed the state"
        if reason:
            assert info.value.reason == reason
        return True


def test_two_cores_against_each_other():
    peer, me = Peer(), Me()
    assert me.open(peer.packet(b"hello")) == b"hello"
    assert me.open(peer.packet(b"")) == b""          # keepalive
    assert me.receiver.session_id == peer.session_id


def test_wrong_password_refused():
    me = Me()
    me.refuses(Peer(key=OTHER_KEY).packet(), "authentication failed")
    assert me.receiver.session_id is None


def test_replay_refused():
    peer, me = Peer(), Me()
    first = peer.packet(b"one")
    assert me.open(first) == b"one"
    me.refuses(first, "replayed or too old counter")
    second = peer.packet(b"two")
    assert me.open(second) == b"two"
    me.refuses(second, "replayed or too old counter")
    me.refuses(first, "replayed or too old counter")


def test_reordered_packets_accepted_once():
    peer, me = Peer(), Me()
    packets = [peer.packet(bytes([i])) for i in range(10)]
    order = [0, 3, 1, 2, 9, 5, 4, 8, 6, 7]
    assert [me.open(packets[i]) for i in order] == [bytes([i]) for i in order]
    for p in packets:
        me.refuses(p, "replayed or too old counter")


def test_too_old_counter_refused():
    peer, me = Peer(), Me()
    old = peer.packet(b"old")
    for _ in range(WINDOW_SIZE + 1):
        peer.sealer.counter += 1
    assert me.open(peer.packet(b"new")) == b"new"
    me.refuses(old, "replayed or too old counter")


def test_pvt_expiry():
    peer, me = Peer(), Me()
    assert me.open(peer.packet(b"a", timestamp=T0), now_ms=T0 + 10_000) == b"a"       # exactly pvt old: ok
    me.refuses(peer.packet(b"b", timestamp=T0), "timestamp outside -pvt", now_ms=T0 + 10_001)
    me.refuses(peer.packet(b"c", timestamp=T0 + 10_001), "timestamp outside -pvt", now_ms=T0)   # future
    assert me.open(peer.packet(b"d", timestamp=T0 - 9_000), now_ms=T0) == b"d"


def test_stale_first_packet_of_a_session_refused():
    me = Me()
    me.refuses(Peer().packet(timestamp=T0), "timestamp outside -pvt", now_ms=T0 + 60_000)
    assert me.receiver.session_id is None


def test_session_switch_only_forward():
    me = Me()
    old, new, older = Peer(T0, random16=7), Peer(T0 + 1), Peer(T0 - 1000)
    assert me.open(old.packet(b"old")) == b"old"
    assert me.open(new.packet(b"new", timestamp=T0 + 5)) == b"new"      # peer restarted: newer session
    assert me.receiver.session_id == new.session_id
    # The superseded session, even with fresh timestamps, never comes back ...
    me.refuses(old.packet(b"x", timestamp=T0 + 5), "not a newer session")
    # ... nor an older one never seen; the new session goes on.
    me.refuses(older.packet(b"y"), "not a newer session")
    assert me.open(new.packet(b"more", timestamp=T0 + 6)) == b"more"


def test_replayed_old_session_after_peer_restart_refused():
    me = Me()
    before = Peer(T0)
    captured = [before.packet(bytes([i])) for i in range(3)]
    assert me.open(captured[0]) == b"\x00"
    after = Peer(T0 + 2000)
    assert me.open(after.packet(b"hi", timestamp=T0 + 2000), now_ms=T0 + 2000) == b"hi"
    for datagram in captured:        # within -pvt, never seen by the window, yet refused
        me.refuses(datagram, "not a newer session", now_ms=T0 + 2001)


def counting_backend():
    """The default AEAD backend, recording every decryption the receiver asks of it."""
    decryptions = []

    def backend(key):
        aead = DEFAULT_BACKEND(key)
        decrypt_into = aead.decrypt_into

        def counted(*args):
            decryptions.append(len(args[1]))
            return decrypt_into(*args)
        aead.decrypt_into = counted
        return aead
    return backend, decryptions


def test_session_from_the_future_refused_before_crypto():
    backend, decryptions = counting_backend()
    me = Me(backend)
    me.refuses(Peer(T0 + 60_000).packet(timestamp=T0), "session starts in the future")
    assert decryptions == []
    # The count is live: a session that is not from the future is decrypted.
    assert me.open(Peer(T0).packet()) == b"ip"
    assert len(decryptions) == 1


def test_older_session_refused_before_crypto():
    backend, decryptions = counting_backend()
    me = Me(backend)
    assert me.open(Peer(T0).packet()) == b"ip"
    me.refuses(Peer(T0 - 1000).packet(), "not a newer session")
    assert len(decryptions) == 1  # only the accepted datagram's


def test_silent_session_stops_blocking_after_twice_pvt():
    """A peer whose clock stepped back restarts with an older-looking session id."""
    me = Me()
    assert me.open(Peer(T0).packet(), now_mono=100.0) == b"ip"
    stepped_back = Peer(T0 - 5000)
    me.refuses(stepped_back.packet(), "not a newer session", now_mono=100.0 + 2 * PVT)
    assert me.open(stepped_back.packet(), now_mono=100.0 + 2 * PVT + 0.1) == b"ip"
    assert me.receiver.session_id == stepped_back.session_id


def test_idle_current_session_continues():
    peer, me = Peer(), Me()
    assert me.open(peer.packet(), now_mono=100.0) == b"ip"
    assert me.open(peer.packet(timestamp=T0 + 3_600_000), now_ms=T0 + 3_600_000, now_mono=3700.0) == b"ip"


def test_new_sealer_is_strictly_newer():
    first = new_sealer(PEER_KEY, T0, 0xFFFF)
    renewed = new_sealer(PEER_KEY, T0 - 50, 0, after=first.session_id)   # clock went back
    assert session_start_ms(renewed.session_id) > session_start_ms(first.session_id)
    assert renewed.counter == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=100), st.binary(min_size=OVERHEAD, max_size=1600),
                 st.integers(0, 70000).map(lambda n: b"\xab" * n)))
def test_any_datagram_refused_cleanly_and_state_unchanged(garbage):
    peer, me = Peer(), Me()
    assert me.open(peer.packet(b"ok")) == b"ok"
    me.refuses(garbage)
    assert me.open(peer.packet(b"still ok")) == b"still ok"


def test_endpoint_dynamic_learns_and_forgets():
    endpoint = PeerEndpoint(fixed=None, forget_after=60.0)
    assert endpoint.dynamic and endpoint.address is None
    assert endpoint.learn(("10.9.0.2", 5000), 1.0)
    assert not endpoint.learn(("10.9.0.2", 5000), 30.0)
    assert endpoint.learn(("10.9.0.3", 5001), 40.0)
    assert not endpoint.expire(100.0)
    assert endpoint.expire(100.1)
    assert endpoint.address is None
    assert not endpoint.expire(200.0)


def test_endpoint_fixed_never_changes():
    endpoint = PeerEndpoint(fixed=("10.9.0.2", 5000))
    assert not endpoint.learn(("10.6.6.6", 1), 1.0)
    assert not endpoint.expire(1e9)
    assert endpoint.address == ("10.9.0.2", 5000)


def forged_newer_sessions(count, seed=1):
    """Random bytes behind headers claiming sessions newer than any real one (within -pvt)."""
    rng = random.Random(seed)
    for _ in range(count):
        session_id = make_session_id(T0 + rng.randrange(5000, int(PVT * 1000)), rng.randrange(1 << 16))
        body = rng.randbytes(rng.randrange(OVERHEAD - HEADER_SIZE, 1500))
        yield struct.pack(">QI", session_id, rng.randrange(1 << 32)) + body


def test_flood_of_forged_newer_sessions_never_delays_a_restarted_peer():
    """Item 10.1: a forged candidate session costs one AEAD call and is forgotten; the real
    restarted peer's first datagram is accepted on arrival, however many forgeries came first."""
    me = Me()
    before = Peer(T0 - 60_000)
    assert me.open(before.packet(b"old", timestamp=T0)) == b"old"
    flood = forged_newer_sessions(20_000)
    restarted = Peer(T0, random16=7)
    for _ in range(10_000):
        me.refuses(next(flood))
    assert me.open(restarted.packet(b"first")) == b"first"
    assert me.receiver.session_id == restarted.session_id
    for round_ in range(10):
        for _ in range(1_000):
            me.refuses(next(flood))
        assert me.open(restarted.packet(bytes([round_]))) == bytes([round_])
    assert me.receiver.session_id == restarted.session_id


def test_own_session_id_refused_even_if_it_authenticates():
    """Item 10.2: with equal passwords a host could open its own datagrams; one reflected
    back at it must not switch it to its own session."""
    mine = SendSession(lambda after: new_sealer(PEER_KEY, T0, 3, after=after, limit=1))   # the receiver's key
    me = Me(sending=mine)
    peer = Peer(T0 - 1000)
    assert me.open(peer.packet(b"peer")) == b"peer"
    first = mine.sealer.session_id
    me.refuses(mine.sealer.seal(b"mine", T0), "own session id (reflected datagram)")
    out = bytearray(100)
    size = mine.seal_into(out, bytearray(PAYLOAD_OFFSET + 4), T0)       # counter exhausted: a newer session
    assert mine.sealer.session_id > first
    me.refuses(bytes(out[:size]), "own session id (reflected datagram)")     # the new id is refused as well
    assert me.receiver.session_id == peer.session_id
    assert me.open(peer.packet(b"still the peer")) == b"still the peer"


def test_timestamp_refusal_says_how_far_the_peer_clock_is_off():
    """Both paths (a new session and the current one) report the skew for the diagnostic."""
    me = Me()
    with pytest.raises(TimestampRefused) as first:
        me.open(Peer(start_ms=T0 - 31_000).packet(timestamp=T0 - 30_500), now_ms=T0)     # peer 30.5 s behind
    assert first.value.skew_ms == -30_500 and first.value.reason == "timestamp outside -pvt"
    peer = Peer()
    me.open(peer.packet(timestamp=T0), now_ms=T0)
    with pytest.raises(TimestampRefused) as current:
        me.open(peer.packet(timestamp=T0 + 45_000), now_ms=T0)                          # 45 s ahead
    assert current.value.skew_ms == 45_000
    future = Peer(start_ms=T0 + 60_000)
    with pytest.raises(TimestampRefused) as ahead:
        me.open(future.packet(timestamp=T0 + 60_000), now_ms=T0)
    assert ahead.value.skew_ms == 60_000 and ahead.value.reason == "session starts in the future"

"""Fuzz the VPN receive path: no datagram that is not a fresh authentic one changes anything.

A receiver with an established session (and a dynamic peer address learned from it)
is fed random bytes, random bytes behind crafted headers (the current session, newer,
future, own session ids), mutations of a valid datagram that was never delivered, and
replays of delivered ones. Each must raise BadPacket -- nothing else -- and leave the
session, the replay window, the last-accept time and the peer address exactly as they
were; a fresh datagram of the session is accepted afterwards. Acceptance is modelled
as the scheduler does it: the address is learned only from a datagram that opened.
"""
import struct

from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn.packet import HEADER_SIZE, MAX_DATAGRAM_SIZE, OVERHEAD, PAYLOAD_OFFSET, make_session_id
from tomato_gevent.vpn.session import PeerEndpoint, Receiver, SendSession, new_sealer

PEER_KEY, OWN_KEY = bytes(range(32)), bytes(range(1, 33))
T0 = 1_700_000_000_000
PVT = 10.0
PEER_ADDRESS, ATTACKER_ADDRESS = ("10.9.0.2", 5000), ("10.6.6.6", 5000)


class Host:
    """Receiver + dynamic endpoint, after the peer's session has delivered a few packets."""

    def __init__(self):
        self.peer = new_sealer(PEER_KEY, T0 - 1000, 0x1234)
        self.sending = SendSession(lambda after: new_sealer(OWN_KEY, T0 - 500, 0x4321, after=after))
        self.receiver = Receiver(PEER_KEY, PVT, self.sending)
        self.endpoint = PeerEndpoint(fixed=None, forget_after=60.0)
        self.out = bytearray(MAX_DATAGRAM_SIZE)
        self.delivered = [self.peer.seal(b"packet %d" % i, T0) for i in range(5)]
        for datagram in self.delivered:
            self.deliver(datagram, PEER_ADDRESS)

    def deliver(self, datagram, source, now_ms=T0, now_mono=100.0):
        """What the scheduler does with one datagram: open, then learn the address."""
        buffer = bytearray(b"\xee" * 3 + datagram + b"\xee" * 3)    # a slice of a larger receive buffer
        n = self.receiver.open_into(memoryview(buffer)[3:3 + len(datagram)], self.out, now_ms, now_mono)
        self.endpoint.learn(source, now_mono)
        return bytes(self.out[PAYLOAD_OFFSET:PAYLOAD_OFFSET + n])

    def state(self):
        window = self.receiver._window
        return (self.receiver.session_id, window.last, tuple(window.ring), self.receiver._last_accept,
                self.endpoint.address, self.endpoint.last_seen)

    def refuses(self, datagram, now_ms=T0, now_mono=100.0):
        before = self.state()
        try:
            self.deliver(datagram, ATTACKER_ADDRESS, now_ms, now_mono)
        except BadPacket:
            pass
        else:
            raise AssertionError("accepted: %s" % bytes(datagram[:HEADER_SIZE]).hex())
        assert self.state() == before, "a refused datagram changed the state"
        # ... and the link goes on.
        assert self.deliver(self.peer.seal(b"next", T0), PEER_ADDRESS) == b"next"


CLOCKS = st.tuples(st.integers(T0 - 20_000, T0 + 20_000), st.floats(100.0, 200.0))


@given(st.one_of(st.binary(max_size=OVERHEAD + 64), st.binary(min_size=OVERHEAD, max_size=2000),
                 st.integers(0, MAX_DATAGRAM_SIZE + 100).map(lambda n: b"\x5a" * n)), CLOCKS)
def test_random_bytes_change_nothing(datagram, clock):
    Host().refuses(datagram, *clock)


@st.composite
def crafted(draw):
    """Random bytes behind a header naming a session the receiver has reasons to consider."""
    host = draw(st.builds(Host))
    start = draw(st.sampled_from(["current", "newer", "future", "older", "own", "any"]))
    session_id = {
        "current": host.peer.session_id,
        "own": host.sending.sealer.session_id,
        "newer": make_session_id(T0 + draw(st.integers(0, 9_999)), draw(st.integers(0, 0xFFFF))),
        "future": make_session_id(T0 + draw(st.integers(10_001, 10 ** 9)), draw(st.integers(0, 0xFFFF))),
        "older": make_session_id(T0 - draw(st.integers(1_001, 10 ** 9)), draw(st.integers(0, 0xFFFF))),
        "any": draw(st.integers(0, 2 ** 64 - 1)),
    }[start]
    counter = draw(st.one_of(st.integers(0, 10), st.integers(0, 2 ** 32 - 1)))
    body = draw(st.binary(min_size=OVERHEAD - HEADER_SIZE, max_size=1500))
    return host, struct.pack(">QI", session_id, counter) + body


@given(crafted(), CLOCKS)
def test_forged_headers_change_nothing(host_and_datagram, clock):
    host, datagram = host_and_datagram
    host.refuses(datagram, *clock)


MUTATIONS = st.sampled_from(["flip", "truncate", "extend", "insert", "delete", "splice", "zero"])


@given(MUTATIONS, st.data())
def test_mutated_valid_datagrams_change_nothing(mutation, data):
    host = Host()
    fresh = bytearray(host.peer.seal(data.draw(st.binary(max_size=200), label="payload"), T0))
    size = len(fresh)
    index = data.draw(st.integers(0, size - 1), label="index")
    if mutation == "flip":
        fresh[index] ^= data.draw(st.integers(1, 255), label="xor")
    elif mutation == "truncate":
        del fresh[index:]
    elif mutation == "extend":
        fresh += data.draw(st.binary(min_size=1, max_size=64), label="tail")
    elif mutation == "insert":
        fresh[index:index] = data.draw(st.binary(min_size=1, max_size=16), label="inserted")
    elif mutation == "delete":
        del fresh[index:index + data.draw(st.integers(1, 16), label="deleted")]
    elif mutation == "splice":         # another valid datagram's bytes from index on
        other = host.peer.seal(b"other packet", T0)
        fresh[index:] = other[index:]
        if bytes(fresh) == other:
            return
    else:                               # a run of zeros
        end = min(size, index + data.draw(st.integers(1, 32), label="zeros"))
        if fresh[index:end] == bytes(end - index):
            return
        fresh[index:end] = bytes(end - index)
    host.refuses(bytes(fresh))


@given(st.integers(0, 4), CLOCKS)
def test_replays_change_nothing(which, clock):
    host = Host()
    host.refuses(host.delivered[which], *clock)

"""Fuzz the v3 handshake: no message that does not authenticate changes what it must not.

A pair with an established session, A in the middle of a rekey (its initiation in flight,
B's response and confirmation captured but held back), is fed random bytes, random bytes behind
each message type byte, mutations of every captured message and replays. Each input either raises
BadPacket (and then A's whole state is exactly as before), or is an initiation that passed the
cheap checks (it may add an answered entry: initiations cannot be authenticated before the work,
see handshake.py) -- and then the session state (keypairs in use, our initiation in flight, the
peer's last confirmed initiation time, the cookie) is as before. Nothing else is ever raised, and
the held-back genuine messages still complete the rekey afterwards.
"""
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.vpn_handshake_doubles import A_ADDRESS, B_ADDRESS, exchange, make_pair, same_session
from tomato_gevent.vpn import messages
from tomato_gevent.vpn.keypair import REKEY_AFTER_SECONDS


def rekeying_pair():
    """(a, b, wire, held): A's rekey initiation answered by B; B's response held back."""
    a, b, wire, clock = make_pair()
    wire.tick(a)
    wire.deliver()
    exchange(wire, a, b)
    clock.advance(REKEY_AFTER_SECONDS)
    wire.tick(a)
    wire.deliver(rounds=1)              # the initiation reaches B; B's response is queued
    held = wire.take()
    return a, b, wire, held


def check(a, wire, datagram):
    before, session_before, refusals = a.state(), a.session_state(), len(a.refusals)
    wire.deliver_one(datagram, B_ADDRESS, A_ADDRESS)        # a BadPacket lands in a.refusals
    if len(a.refusals) > refusals:
        assert a.state() == before, "a refused message changed the state"
    else:
        assert datagram[:1] == bytes([messages.INITIATION]), "accepted: %s" % datagram.hex()
        assert a.session_state() == session_before, "an initiation changed the session state"


def run(datagram):
    a, b, wire, held = rekeying_pair()
    if any(datagram == message for message, _, _ in held):
        return                          # the genuine held-back response (a mutation that changed nothing)
    check(a, wire, datagram)
    wire.take()                         # whatever A answered goes nowhere
    for item in held:
        wire.deliver_one(*item)
    wire.deliver()
    assert same_session(a, b) and exchange(wire, a, b) == [b"ping", b"ping"]


TYPES = st.sampled_from([messages.DATA, messages.INITIATION, messages.RESPONSE, messages.CONFIRMATION,
                         messages.COOKIE_REPLY, 0x00, 0x01, 0x41])


@given(st.binary(max_size=200))
def test_random_bytes(datagram):
    run(datagram)


@given(TYPES, st.sampled_from([0, 23, 24, 40, 76, 96, 120]), st.data())
def test_random_bytes_behind_a_type_byte(kind, size, data):
    body = data.draw(st.binary(min_size=size, max_size=size), label="body")
    run(bytes([kind]) + body)


@st.composite
def mutated(draw):
    """A mutation of one of the messages of a rekey (or of a data datagram)."""
    a, b, wire, held = rekeying_pair()
    captured = [m for m, _, _ in wire.log] + [m for m, _, _ in held] + [a.seal(b"data")]
    message = bytearray(draw(st.sampled_from(captured)))
    index = draw(st.integers(0, len(message) - 1))
    mutation = draw(st.sampled_from(["flip", "truncate", "extend", "zero"]))
    if mutation == "flip":
        message[index] ^= draw(st.integers(1, 255))
    elif mutation == "truncate":
        del message[index:]
    elif mutation == "extend":
        message += draw(st.binary(min_size=1, max_size=16))
    else:
        end = min(len(message), index + draw(st.integers(1, 16)))
        message[index:end] = bytes(end - index)
    return bytes(message)


@given(mutated())
def test_mutated_messages(datagram):
    run(datagram)


@given(st.integers(0, 10))
def test_replayed_messages_of_the_first_handshake(which):
    a, b, wire, held = rekeying_pair()
    log = [m for m, source, _ in wire.log if source == B_ADDRESS and (m, source, _) not in held]
    run(log[which % len(log)])

"""packet.py: seal/open round trip, tampering, wrong keys, key derivation, backends byte-identical.

Datagrams are opened with the tunnel's own decoder (session.Receiver.open_into), here with
a receiver that takes any timestamp: these tests are about the layout, not the clock."""
import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import packet
from tomato_gevent.vpn.packet import (BACKENDS, DEFAULT_BACKEND, HEADER_SIZE, NONCE_SIZE, OVERHEAD,
                                      REJECT_AFTER_MESSAGES, TAG_SIZE, TIMESTAMP_SIZE, CounterExhausted, Sealer,
                                      make_session_id, session_start_ms)
from tomato_gevent.vpn.replay import WINDOW_SIZE
from tomato_gevent.vpn.session import Receiver

PASSWORD_KEY = bytes(range(32))
SESSION_ID = make_session_id(1700000000000, 0xBEEF)
BACKEND_NAMES = sorted(BACKENDS)
ANY_TIME_SECONDS = 2 ** 65 / 1000       # a -pvt wider than any 64-bit timestamp


def open_datagram(datagram, key=PASSWORD_KEY, backend=DEFAULT_BACKEND):
    """(session id, counter, timestamp, payload) of one datagram, opened by a fresh Receiver."""
    receiver = Receiver(key, ANY_TIME_SECONDS, None, backend)
    out = bytearray(max(len(datagram), OVERHEAD))
    size = receiver.open_into(datagram, out, 0, 0.0)
    _, counter = struct.unpack_from(">QI", datagram)
    timestamp, = struct.unpack_from(">Q", out)
    return receiver.session_id, counter, timestamp, bytes(out[TIMESTAMP_SIZE:TIMESTAMP_SIZE + size])

# Pinned datagrams (protocol v2): the protocol must not change silently (both backends must
# produce these, and test_layout_matches_plain_aes_gcm rebuilds them from the README's description).
VECTORS = [
    (0, 1700000000123, b"",
     "018bcfe56800beef00000000bd649c2ac021225026215ddcfbd59c06c8d27ae3303c6e3c"),
    (1, 1700000000124, bytes(range(60)),
     "018bcfe56800beef00000001e4f18510ca0a47f788d371f5c81f3d9f3f34fae0fe8133c6682b98ae171441fb0ebd4a7c8de5c4aa"
     "9a7bfdd8e8be19b0507fe67074c28f1ae1b426c63d13b750dc65c622271d0ceb0daae226928b1f6f3b79a9d6"),
]


def test_overhead_within_the_seeds_44_bytes():
    assert OVERHEAD == HEADER_SIZE + TIMESTAMP_SIZE + TAG_SIZE == 36
    assert OVERHEAD <= 44
    assert 1500 - 40 - 8 - OVERHEAD >= 1408


def test_header_is_the_gcm_nonce():
    assert HEADER_SIZE == NONCE_SIZE == 12
    assert REJECT_AFTER_MESSAGES < 1 << 32       # the 32-bit counter never wraps within a session
    assert (1 << 32) - REJECT_AFTER_MESSAGES > WINDOW_SIZE      # stops short of it by more than the window


def test_password_key_is_scrypt_with_documented_parameters():
    expected = hashlib.scrypt(b"pwd1", salt=b"tomato-vpn v2 password", n=2 ** 15, r=8, p=1,
                              maxmem=64 * 1024 * 1024, dklen=32)
    assert packet.derive_password_key("pwd1") == expected
    assert packet.derive_password_key("pwd2") != expected


def test_layout_matches_plain_aes_gcm():
    """The README's description, written out with a one-shot AES-GCM call, as an independent reference."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    for counter, timestamp, payload, expected in VECTORS:
        header = struct.pack(">QI", SESSION_ID, counter)
        sealed = AESGCM(PASSWORD_KEY).encrypt(header, struct.pack(">Q", timestamp) + payload, header)
        assert (header + sealed).hex() == expected


def test_session_id_orders_by_start_time():
    assert session_start_ms(make_session_id(5, 0xFFFF)) == 5
    assert make_session_id(6, 0) > make_session_id(5, 0xFFFF)
    with pytest.raises(ValueError):
        make_session_id(1 << 48, 0)
    with pytest.raises(ValueError):
        make_session_id(0, 1 << 16)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_fixed_vectors(backend):
    sealer = Sealer(PASSWORD_KEY, SESSION_ID, BACKENDS[backend])
    for counter, timestamp, payload, expected in VECTORS:
        assert sealer.counter == counter
        assert sealer.seal(payload, timestamp).hex() == expected
    for counter, timestamp, payload, expected in VECTORS:
        for opener_backend in BACKEND_NAMES:
            assert open_datagram(bytes.fromhex(expected), backend=BACKENDS[opener_backend]) == (
                SESSION_ID, counter, timestamp, payload)


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=1500), counter=st.integers(0, REJECT_AFTER_MESSAGES - 1),
       timestamp=st.integers(0, 2 ** 63), random16=st.integers(0, 0xFFFF))
def test_backends_byte_identical(payload, counter, timestamp, random16):
    session_id = make_session_id(1700000000000, random16)
    sealed = {name: Sealer(PASSWORD_KEY, session_id, BACKENDS[name], counter=counter).seal(payload, timestamp)
              for name in BACKEND_NAMES}
    assert len(set(sealed.values())) == 1


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=2000), counter=st.integers(0, REJECT_AFTER_MESSAGES - 1),
       timestamp=st.integers(0, 2 ** 64 - 1))
def test_round_trip(payload, counter, timestamp):
    datagram = Sealer(PASSWORD_KEY, SESSION_ID, counter=counter).seal(payload, timestamp)
    assert len(datagram) == len(payload) + OVERHEAD
    assert open_datagram(datagram) == (SESSION_ID, counter, timestamp, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200), data=st.data())
def test_tampering_with_any_byte_is_rejected(payload, data):
    datagram = bytearray(Sealer(PASSWORD_KEY, SESSION_ID).seal(payload, 12345))
    index = data.draw(st.integers(0, len(datagram) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    datagram[index] ^= flip
    with pytest.raises(BadPacket):
        open_datagram(bytes(datagram))


def test_truncated_and_extended_datagrams_rejected():
    datagram = Sealer(PASSWORD_KEY, SESSION_ID).seal(b"payload", 1)
    for bad in (datagram[:-1], datagram + b"\0", datagram[:OVERHEAD], b"", b"x"):
        with pytest.raises(BadPacket):
            open_datagram(bad)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_wrong_key_rejected(backend):
    datagram = Sealer(PASSWORD_KEY, SESSION_ID).seal(b"secret payload", 1)
    with pytest.raises(BadPacket) as info:
        open_datagram(datagram, bytes(32), BACKENDS[backend])
    assert info.value.reason == "authentication failed"


def test_counter_increments_and_stops_at_limit():
    sealer = Sealer(PASSWORD_KEY, SESSION_ID, counter=5, limit=7)
    assert open_datagram(sealer.seal(b"", 0))[1] == 5
    assert open_datagram(sealer.seal(b"", 0))[1] == 6
    with pytest.raises(CounterExhausted):
        sealer.seal(b"", 0)


def test_seal_into_writes_in_place_without_copying_the_payload():
    plain = bytearray(TIMESTAMP_SIZE) + b"ip packet"
    out = bytearray(100)
    size = Sealer(PASSWORD_KEY, SESSION_ID).seal_into(out, memoryview(plain), 42)
    assert size == len(plain) + HEADER_SIZE + TAG_SIZE
    assert open_datagram(bytes(out[:size])) == (SESSION_ID, 0, 42, b"ip packet")

"""packet.py: seal/open round trip, tampering, wrong keys, key derivation, backends byte-identical."""
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import packet
from tomato_gevent.vpn.packet import (BACKENDS, HEADER_SIZE, OVERHEAD, TAG_SIZE, TIMESTAMP_SIZE, CounterExhausted,
                                      Opener, Sealer, derive_session_key, make_session_id, parse_header,
                                      session_start_ms)
from tomato_gevent.vpn.replay import REJECT_AFTER_MESSAGES

PASSWORD_KEY = bytes(range(32))
SESSION_ID = make_session_id(1700000000000, 0xBEEF)
SESSION_KEY = derive_session_key(PASSWORD_KEY, SESSION_ID)
BACKEND_NAMES = sorted(BACKENDS)

# Pinned datagrams: the protocol must not change silently (both backends must produce these).
VECTORS = [
    (0, 1700000000123, b"",
     "018bcfe56800beef00000000000000005f91bf6d14c31764f0ee5eec41c619be16059f24875d55fd"),
    (1, 1700000000124, bytes(range(60)),
     "018bcfe56800beef0000000000000001497110c56f04d132f42447cd93d3a5ed9cd6e7412d31befaac1ecff861a0c9183424f31c4c8486"
     "77666cdedf1ebb127d20c5708327d33743a3e49b518ef3238633141f0e4317f7ec2af561d8a1dccbcfa59afcc3"),
]


def test_overhead_within_the_seeds_44_bytes():
    assert OVERHEAD == HEADER_SIZE + TIMESTAMP_SIZE + TAG_SIZE == 40
    assert OVERHEAD <= 44
    assert 1500 - 40 - 8 - OVERHEAD >= 1408


def test_password_key_is_scrypt_with_documented_parameters():
    expected = hashlib.scrypt(b"pwd1", salt=b"tomato-vpn v1 password", n=2 ** 15, r=8, p=1,
                              maxmem=64 * 1024 * 1024, dklen=32)
    assert packet.derive_password_key("pwd1") == expected
    assert packet.derive_password_key("pwd2") != expected


def test_session_key_is_hkdf_sha256_salted_by_session_id():
    # RFC 5869 written out with hmac, as an independent reference.
    prk = hmac.new(SESSION_ID.to_bytes(8, "big"), PASSWORD_KEY, hashlib.sha256).digest()
    okm = hmac.new(prk, b"tomato-vpn v1 session key" + b"\x01", hashlib.sha256).digest()
    assert SESSION_KEY == okm
    assert derive_session_key(PASSWORD_KEY, SESSION_ID + 1) != okm


def test_session_id_orders_by_start_time():
    assert session_start_ms(make_session_id(5, 0xFFFF)) == 5
    assert make_session_id(6, 0) > make_session_id(5, 0xFFFF)
    with pytest.raises(ValueError):
        make_session_id(1 << 48, 0)
    with pytest.raises(ValueError):
        make_session_id(0, 1 << 16)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_fixed_vectors(backend):
    sealer = Sealer(SESSION_KEY, SESSION_ID, BACKENDS[backend])
    for counter, timestamp, payload, expected in VECTORS:
        assert sealer.counter == counter
        assert sealer.seal(payload, timestamp).hex() == expected
    for counter, timestamp, payload, expected in VECTORS:
        for opener_backend in BACKEND_NAMES:
            opener = Opener(SESSION_KEY, SESSION_ID, BACKENDS[opener_backend])
            assert opener.open(bytes.fromhex(expected)) == (counter, timestamp, payload)


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=1500), counter=st.integers(0, 2 ** 63), timestamp=st.integers(0, 2 ** 63),
       random16=st.integers(0, 0xFFFF))
def test_backends_byte_identical(payload, counter, timestamp, random16):
    session_id = make_session_id(1700000000000, random16)
    key = derive_session_key(PASSWORD_KEY, session_id)
    sealed = {name: Sealer(key, session_id, BACKENDS[name], counter=counter).seal(payload, timestamp)
              for name in BACKEND_NAMES}
    assert len(set(sealed.values())) == 1


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=2000), counter=st.integers(0, REJECT_AFTER_MESSAGES - 1),
       timestamp=st.integers(0, 2 ** 64 - 1))
def test_round_trip(payload, counter, timestamp):
    datagram = Sealer(SESSION_KEY, SESSION_ID, counter=counter).seal(payload, timestamp)
    assert len(datagram) == len(payload) + OVERHEAD
    assert parse_header(datagram) == (SESSION_ID, counter)
    assert Opener(SESSION_KEY, SESSION_ID).open(datagram) == (counter, timestamp, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200), data=st.data())
def test_tampering_with_any_byte_is_rejected(payload, data):
    datagram = bytearray(Sealer(SESSION_KEY, SESSION_ID).seal(payload, 12345))
    index = data.draw(st.integers(0, len(datagram) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    datagram[index] ^= flip
    with pytest.raises(BadPacket):
        Opener(SESSION_KEY, SESSION_ID).open(bytes(datagram))


def test_truncated_and_extended_datagrams_rejected():
    datagram = Sealer(SESSION_KEY, SESSION_ID).seal(b"payload", 1)
    opener = Opener(SESSION_KEY, SESSION_ID)
    for bad in (datagram[:-1], datagram + b"\0", datagram[:OVERHEAD], b"", b"x"):
        with pytest.raises(BadPacket):
            opener.open(bad)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_wrong_key_rejected(backend):
    datagram = Sealer(SESSION_KEY, SESSION_ID).seal(b"secret payload", 1)
    other_password = derive_session_key(bytes(32), SESSION_ID)
    with pytest.raises(BadPacket) as info:
        Opener(other_password, SESSION_ID, BACKENDS[backend]).open(datagram)
    assert info.value.reason == "authentication failed"


def test_counter_increments_and_stops_at_limit():
    sealer = Sealer(SESSION_KEY, SESSION_ID, counter=5, limit=7)
    assert parse_header(sealer.seal(b"", 0))[1] == 5
    assert parse_header(sealer.seal(b"", 0))[1] == 6
    with pytest.raises(CounterExhausted):
        sealer.seal(b"", 0)


def test_seal_into_writes_in_place_without_copying_the_payload():
    plain = bytearray(TIMESTAMP_SIZE) + b"ip packet"
    out = bytearray(100)
    size = Sealer(SESSION_KEY, SESSION_ID).seal_into(out, memoryview(plain), 42)
    assert size == len(plain) + HEADER_SIZE + TAG_SIZE
    assert Opener(SESSION_KEY, SESSION_ID).open(bytes(out[:size])) == (0, 42, b"ip packet")

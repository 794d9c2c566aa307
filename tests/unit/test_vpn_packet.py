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
from tomato_gevent.vpn.packet import (BACKENDS, DEFAULT_BACKEND, FLAG_CHECKSUM_PARTIAL, FLAGS_OFFSET, FLAGS_SIZE,
                                      HEADER_SIZE, NONCE_SIZE, OVERHEAD, PAYLOAD_OFFSET, REJECT_AFTER_MESSAGES,
                                      TAG_SIZE, TIMESTAMP_SIZE, CounterExhausted, Sealer, make_session_id,
                                      session_start_ms)
from tomato_gevent.vpn.replay import WINDOW_SIZE
from tomato_gevent.vpn.session import Receiver

PASSWORD_KEY = bytes(range(32))
SESSION_ID = make_session_id(1700000000000, 0xBEEF)
BACKEND_NAMES = sorted(BACKENDS)
ANY_TIME_SECONDS = 2 ** 65 / 1000       # a -pvt wider than any 64-bit timestamp


def open_datagram(datagram, key=PASSWORD_KEY, backend=DEFAULT_BACKEND, with_flags=False):
    """(session id, counter, timestamp, payload[, flags]) of one datagram, opened by a fresh Receiver."""
    receiver = Receiver(key, ANY_TIME_SECONDS, None, backend)
    out = bytearray(max(len(datagram), OVERHEAD))
    size = receiver.open_into(datagram, out, 0, 0.0)
    _, counter = struct.unpack_from(">QI", datagram)
    timestamp, = struct.unpack_from(">Q", out)
    opened = receiver.session_id, counter, timestamp, bytes(out[PAYLOAD_OFFSET:PAYLOAD_OFFSET + size])
    return opened + (out[FLAGS_OFFSET],) if with_flags else opened

# Pinned datagrams (protocol v3): the protocol must not change silently (both backends must
# produce these, and test_layout_matches_plain_aes_gcm rebuilds them from docs/protocol.md's "The datagram").
VECTORS = [     # counter, timestamp, flags, payload, datagram
    (0, 1700000000123, 0, b"",
     "018bcfe56800beef00000000bd649c2ac02122505a386e5076eb3c6b941d8d60af43f30d61"),
    (1, 1700000000124, FLAG_CHECKSUM_PARTIAL, bytes(range(60)),
     "018bcfe56800beef00000001e4f18510ca0a47f789d272f4cf1e3e9e3035f9e1f98030c7772a9baf101542fa01bc497d8ae4c7aba57"
     "afed9efbf1ab15f7ee57173c38c1bfeb525c73a12b451d364c5237594c1c9c876043e000a8e9378403c6123"),
]


def test_overhead_within_the_seeds_44_bytes():
    assert OVERHEAD == HEADER_SIZE + TIMESTAMP_SIZE + FLAGS_SIZE + TAG_SIZE == 37
    assert FLAGS_OFFSET == TIMESTAMP_SIZE and PAYLOAD_OFFSET == FLAGS_OFFSET + FLAGS_SIZE
    assert OVERHEAD <= 44
    assert 1500 - 40 - 8 - OVERHEAD >= 1408


def test_header_is_the_gcm_nonce():
    assert HEADER_SIZE == NONCE_SIZE == 12
    assert REJECT_AFTER_MESSAGES < 1 << 32       # the 32-bit counter never wraps within a session
    assert (1 << 32) - REJECT_AFTER_MESSAGES > WINDOW_SIZE      # stops short of it by more than the window


def test_password_key_is_scrypt_with_documented_parameters():
    expected = hashlib.scrypt(b"pwd1", salt=b"tomato-vpn v3 password", n=2 ** 15, r=8, p=1,
                              maxmem=64 * 1024 * 1024, dklen=32)
    assert packet.derive_password_key("pwd1") == expected
    assert packet.derive_password_key("pwd2") != expected


def test_layout_matches_plain_aes_gcm():
    """docs/protocol.md's datagram layout, written out with a one-shot AES-GCM call, as an independent reference."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    for counter, timestamp, flags, payload, expected in VECTORS:
        header = struct.pack(">QI", SESSION_ID, counter)
        sealed = AESGCM(PASSWORD_KEY).encrypt(header, struct.pack(">QB", timestamp, flags) + payload, header)
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
    for counter, timestamp, flags, payload, expected in VECTORS:
        assert sealer.counter == counter
        assert sealer.seal(payload, timestamp, flags).hex() == expected
    for counter, timestamp, flags, payload, expected in VECTORS:
        for opener_backend in BACKEND_NAMES:
            assert open_datagram(bytes.fromhex(expected), backend=BACKENDS[opener_backend], with_flags=True) == (
                SESSION_ID, counter, timestamp, payload, flags)


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
    plain = bytearray(PAYLOAD_OFFSET) + b"ip packet"
    out = bytearray(100)
    size = Sealer(PASSWORD_KEY, SESSION_ID).seal_into(out, memoryview(plain), 42)
    assert size == len(plain) + HEADER_SIZE + TAG_SIZE
    assert open_datagram(bytes(out[:size])) == (SESSION_ID, 0, 42, b"ip packet")


def test_seal_into_without_a_timestamp_seals_the_one_plain_holds():
    plain = bytearray(struct.pack(">QB", 777, FLAG_CHECKSUM_PARTIAL) + b"segment")
    out = bytearray(100)
    size = Sealer(PASSWORD_KEY, SESSION_ID).seal_into(out, memoryview(plain))
    assert open_datagram(bytes(out[:size]), with_flags=True) == (SESSION_ID, 0, 777, b"segment", FLAG_CHECKSUM_PARTIAL)

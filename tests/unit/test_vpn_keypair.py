"""v3 data datagrams (vpn/keypair.py): layout, one AEAD call per datagram, authenticated flags,
replay window, previous keypair, expiry; and the handshake message layouts (vpn/messages.py)."""
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn import messages
from tomato_gevent.vpn.keypair import (FLAG_CHECKSUM_PARTIAL, OVERHEAD, REJECT_AFTER_SECONDS, UNKNOWN_INDEX, Keypair,
                                       Keypairs)
from tomato_gevent.vpn.packet import CryptographyAead, PycryptodomeAead

K1, K2 = bytes(range(32)), bytes(range(32, 64))


def pair(now=0.0, backend=CryptographyAead, limit=None):
    """The two ends of one handshake: A (initiator, index 7) and B (index 9)."""
    options = {} if limit is None else {"limit": limit}
    a = Keypair(7, 9, K1, K2, True, now, backend, **options)
    b = Keypair(9, 7, K2, K1, False, now, backend, **options)
    ka, kb = Keypairs(), Keypairs()
    ka.install(a)
    kb.install(b)
    return a, b, ka, kb


def test_layout_and_overhead():
    a, _, _, _ = pair()
    datagram = a.seal(b"packet", flags=FLAG_CHECKSUM_PARTIAL)
    assert OVERHEAD == 32 and len(datagram) == 6 + 32
    assert struct.unpack(">BB2xIQ", datagram[:16]) == (0x30, 1, 9, 0)
    assert struct.unpack(">Q", a.seal(b"")[8:16]) == (1,)


@given(st.binary(max_size=1500), st.integers(0, 255))
def test_open_seal_is_identity_and_flags_come_through(payload, flags):
    a, _, _, kb = pair()
    assert kb.open(a.seal(payload, flags), 1.0)[:2] == (payload, flags)


def test_reference_backend_is_byte_identical():
    fast = pair(backend=CryptographyAead)[0]
    reference = pair(backend=PycryptodomeAead)[0]
    assert [fast.seal(b"x" * n) for n in (0, 1, 1400)] == [reference.seal(b"x" * n) for n in (0, 1, 1400)]


@pytest.mark.parametrize("offset", [0, 1, 2, 4, 8, 15, 16, 20, -1])
def test_any_changed_byte_is_refused(offset):
    a, _, _, kb = pair()
    datagram = bytearray(a.seal(b"payload"))
    datagram[offset] ^= 0x01
    with pytest.raises(BadPacket):
        kb.open(bytes(datagram), 1.0)


def test_replay_window_and_reordering():
    a, _, _, kb = pair()
    datagrams = [a.seal(b"%d" % i) for i in range(3)]
    assert [kb.open(d, 1.0)[0] for d in (datagrams[2], datagrams[0])] == [b"2", b"0"]
    with pytest.raises(BadPacket, match="replayed"):
        kb.open(datagrams[2], 1.0)
    assert kb.open(datagrams[1], 1.0)[0] == b"1"


def test_unknown_index_and_wrong_type_cost_no_aead():
    _, _, _, kb = pair()
    with pytest.raises(BadPacket, match=UNKNOWN_INDEX):
        kb.open(bytes([0x30, 0, 0, 0]) + (12345).to_bytes(4, "big") + bytes(24), 1.0)
    with pytest.raises(BadPacket, match="not a data"):
        kb.open(bytes([0x31]) + bytes(40), 1.0)
    with pytest.raises(BadPacket, match="short"):
        kb.open(bytes(31), 1.0)


def test_previous_keypair_opens_until_it_expires():
    a, _, _, kb = pair(now=0.0)
    new_a = Keypair(17, 19, K2, K1, True, 100.0)
    new_b = Keypair(19, 17, K1, K2, False, 100.0)
    kb.install(new_b)
    old = a.seal(b"old")
    assert kb.open(new_a.seal(b"new"), 100.0)[0] == b"new"
    assert kb.open(old, 100.0)[0] == b"old"
    late = a.seal(b"late")
    kb.expire(REJECT_AFTER_SECONDS)
    with pytest.raises(BadPacket):
        kb.open(late, REJECT_AFTER_SECONDS)
    assert kb.sending(REJECT_AFTER_SECONDS) is new_b


def test_an_expired_keypair_neither_sends_nor_opens():
    a, b, ka, kb = pair(now=0.0)
    datagram = a.seal(b"x")
    assert ka.sending(REJECT_AFTER_SECONDS - 0.01) is a and ka.sending(REJECT_AFTER_SECONDS) is None
    with pytest.raises(BadPacket, match="expired"):
        kb.open(datagram, REJECT_AFTER_SECONDS)


def test_a_used_up_counter_stops_sending():
    a, _, ka, _ = pair(limit=2)
    a.seal(b"1")
    a.seal(b"2")
    assert ka.sending(0.0) is None
    with pytest.raises(ValueError):
        a.seal(b"3")


def test_an_unconfirmed_keypair_is_confirmed_by_its_first_valid_datagram():
    a, _, _, _ = pair()
    kb = Keypairs()
    b = Keypair(9, 7, K2, K1, False, 0.0)
    kb.unconfirmed[9] = b
    forged = bytearray(a.seal(b"x"))
    forged[-1] ^= 1
    with pytest.raises(BadPacket):
        kb.open(bytes(forged), 1.0)
    assert kb.current is None and 9 in kb.unconfirmed
    payload, _, keypair, confirmed = kb.open(a.seal(b"y"), 1.0)
    assert (payload, keypair, confirmed) == (b"y", b, True) and kb.current is b and not kb.unconfirmed


# -- handshake message layouts ----------------------------------------------------------
def test_message_sizes_and_amplification():
    assert (messages.INITIATION_SIZE, messages.RESPONSE_SIZE, messages.CONFIRMATION_SIZE,
            messages.COOKIE_REPLY_SIZE) == (96, 76, 24, 40)
    # What a spoofed initiation makes a responder send is never larger than it.
    assert max(messages.RESPONSE_SIZE, messages.COOKIE_REPLY_SIZE) < messages.INITIATION_SIZE


def test_initiation_round_trip_mac1_and_reserved_bytes():
    ad = messages.initiation_ad(0x01020304, 1_765_000_000_000, bytes(range(16)))
    datagram = messages.encode_initiation(ad, bytes(32), cookie=b"c" * 16)
    init = messages.parse_initiation(datagram)
    assert (init.sender, init.timestamp_ms, init.sid, init.ad) == (0x01020304, 1_765_000_000_000, bytes(range(16)),
                                                                   ad)
    assert messages.initiation_mac2_valid(datagram, b"c" * 16)
    assert not messages.initiation_mac2_valid(datagram, b"d" * 16)
    for offset in (1, 40, 70):
        broken = bytearray(datagram)
        broken[offset] ^= 1
        with pytest.raises(BadPacket):
            messages.parse_initiation(bytes(broken))


"""versions.py: a datagram of another protocol version is named by its layout alone."""
import os
import struct

import pytest

from tomato_gevent.vpn import messages
from tomato_gevent.vpn.keypair import Keypair
from tomato_gevent.vpn.versions import V2_MIN_SIZE, foreign_version

NOW_MS = 1_765_000_000_000


def v2_datagram(payload=b"", start_ms=NOW_MS - 5000, counter=0):
    """What protocol v2 (a22b20b) sends: session id (48-bit start ms, 16 random bits) | counter
    (4) | AES-256-GCM(timestamp (8) + packet) | tag, header = nonce = associated data."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = struct.pack(">QI", start_ms << 16 | 0xBEEF, counter)
    return header + AESGCM(os.urandom(32)).encrypt(header, struct.pack(">Q", NOW_MS) + payload, header)


def test_a_v2_keepalive_and_data_datagram_are_version_2():
    keepalive = v2_datagram()
    assert len(keepalive) == V2_MIN_SIZE == 36
    assert foreign_version(keepalive, NOW_MS) == 2
    assert foreign_version(v2_datagram(b"\x45" + bytes(1399), counter=7), NOW_MS) == 2
    assert foreign_version(keepalive[:-1], NOW_MS) is None, "shorter than any v2 datagram"


def test_a_v2_session_id_far_from_our_clock_is_not_named():
    assert foreign_version(v2_datagram(start_ms=0), NOW_MS) is None, "a start time of 1970 is no v2 session"
    assert foreign_version(bytes(36), NOW_MS) is None


@pytest.mark.parametrize("kind", range(0x40, 0x45))
def test_a_later_version_keeps_its_number_in_the_high_nibble(kind):
    assert foreign_version(bytes([kind]) + bytes(50), NOW_MS) == kind >> 4


def test_our_own_datagrams_and_garbage_are_not_another_version():
    ours = [Keypair(1, 2, bytes(32), bytes(32), True, 0.0).seal(b"packet"),
            messages.encode_initiation(messages.initiation_ad(1, NOW_MS, bytes(16)), bytes(32))]
    for datagram in ours + [bytes([0x78]) + bytes(50), bytes([0x41]) + bytes(10), b""]:
        assert foreign_version(datagram, NOW_MS) is None, datagram[:1]

"""versions.py: a datagram of the older protocol is recognised, at most once per interval."""
import os

from tomato_gevent.vpn.packet import Sealer
from tomato_gevent.vpn.versions import OLD_PROTOCOL, VersionProbe, derive_old_key

OLD_KEY = os.urandom(32)


def old_datagram(key=OLD_KEY, counter=0):
    """A version 2 datagram: header | AES-GCM(timestamp + packet) | tag under the v2 key."""
    sealer = Sealer(key, session_id=0x1234, counter=counter)
    return sealer.seal(b"\x45" + bytes(39), 1_700_000_000_000)


class Keys:
    def __init__(self, key=OLD_KEY):
        self.key, self.derived = key, 0

    def __call__(self):
        self.derived += 1
        return self.key


def test_an_old_datagram_is_named_and_the_key_derived_once():
    keys = Keys()
    probe = VersionProbe(keys, interval=10.0)
    assert probe.older_version(old_datagram(), now_mono=100.0) == OLD_PROTOCOL
    assert probe.older_version(old_datagram(counter=1), now_mono=105.0) is None     # within the interval
    assert probe.older_version(old_datagram(counter=2), now_mono=110.0) == OLD_PROTOCOL
    assert keys.derived == 1


def test_garbage_or_another_key_is_not_an_old_version():
    keys = Keys()
    probe = VersionProbe(keys, interval=0.0)
    assert probe.older_version(os.urandom(80), 1.0) is None
    assert probe.older_version(old_datagram(key=os.urandom(32)), 2.0) is None
    assert probe.older_version(b"short", 3.0) is None


def test_a_flood_costs_one_try_per_interval():
    keys = Keys()
    tries = []
    probe = VersionProbe(keys, interval=10.0)
    for i in range(1000):
        tries.append(probe.older_version(os.urandom(100), now_mono=i * 0.001))
    assert tries.count(None) == 1000 and keys.derived == 1      # derived on the first try only ...
    assert probe.older_version(old_datagram(), now_mono=9.99) is None   # ... and no other try until 10 s later
    assert probe.older_version(old_datagram(), now_mono=10.0) == OLD_PROTOCOL


def test_the_old_key_is_version_2s_scrypt():
    # scrypt(password, "tomato-vpn v2 password", n=2^15, r=8, p=1): the key a22b20b derives.
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    expected = Scrypt(salt=b"tomato-vpn v2 password", length=32, n=2 ** 15, r=8, p=1).derive(b"pwd1")
    assert derive_old_key("pwd1") == expected


def test_nothing_is_said_while_the_old_key_is_not_ready():
    ready = []
    probe = VersionProbe(lambda: OLD_KEY if ready else None, interval=10.0)
    assert probe.older_version(old_datagram(), now_mono=1.0) is None
    ready.append(True)
    assert probe.older_version(old_datagram(counter=1), now_mono=1.5) == OLD_PROTOCOL   # no try was made before

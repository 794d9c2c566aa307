"""A complete v3 exchange with fixed inputs, every intermediate value spelled out: the example an
independent implementation checks itself against (docs/protocol.md describes each step).

Host A (-lp pwd1 -pp pwd2) initiates to host B (-lp pwd2 -pp pwd1) at 1765000000000 ms."""
import hashlib
import hmac

from tomato_gevent.vpn import cpace, keyschedule, messages
from tomato_gevent.vpn.handshake import Handshake
from tomato_gevent.vpn.keypair import Keypair, Keypairs

h = bytes.fromhex
KP_PWD1 = h("9b5d36b74f89deb58cfb90f6ae098bce0f676efafc0b0c17974a7d185dc6d3b0")   # scrypt("pwd1", ...)
KP_PWD2 = h("f6b5faa91acf3522a03f9d6e44f416b6c4ea7522d14ee463cfc2d316b798aa55")
INDEX_A, INDEX_B = 0xB734E19F, 0xA5410387
TIMESTAMP_MS = 1_765_000_000_000
SID = h("f500bc8f358aa135d96205283fe0ca52")
YA_SCALAR = h("38ab24a28b9f35288d143add633e7a0823aca05f9dd2044e0909404126fbf406")
YB_SCALAR = h("7cb8d346eaf64b47f38a3952c3fd0b84bc7438a450aca597ce7c2fe5a0ed730b")
MAC1_KEY = h("b7a59fb96f9047c86dbe4da372441ad595ac3688e21d4aa00606697efc7ca626")
GENERATOR = h("0edd9cd21b166cb0326acf71a4ae5b2cd404f9e27c03555cba5a29537ba1f929")
ISK = h("690431dcd91a8cfeed3b68ee2b7f24f07069fa2a43e5b8d1eddbcf12a07d7009db27c7c40220337fb9a58fbd155625878cf9e928a3"
        "4de0fe7f7c54518bd0d5d3")
KEY_I2R = h("74bb86c605b7e3389f056b1ea3b24e492a0df6dc0d6ce8664bf9df57f574b1fa")
KEY_R2I = h("b62aba2d9317ea4a4c74bc3338ac5977256587fafcd46365a30183c435dfea8c")
INITIATION = h("31000000b734e19f0000019af232b200f500bc8f358aa135d96205283fe0ca52368e3549ffb7b881e08be216dc6815d809"
               "1736c31eb451b619e0d031a8d6570632ed3a4b785991c6bdce5e9589650d4100000000000000000000000000000000")
RESPONSE = h("32000000a5410387b734e19fbc706a0cd8c9ea2c0e9016bcab92b955aae337d5a09a4cf5df0dbaf09ac440140527fb44423e"
             "87d6bc318f4bc747486bf26078f0b398ca816a7b4d3f6353fc48")
CONFIRMATION = h("33000000a5410387051fe7f3bb29908513b98d9f57e46f5d")
DATA_HELLO = h("30000000a54103870000000000000000b294c194386c1484b217136d82c11bfa60de991f68")   # A to B, "hello"
KEEPALIVE = h("30000000b734e19f000000000000000094180c717ecb8b063a53364acecaf378")             # B to A


def test_password_keys():
    assert keyschedule.derive_password_key("pwd1") == KP_PWD1
    assert keyschedule.derive_password_key("pwd2") == KP_PWD2


def test_the_exchange_step_by_step():
    assert hashlib.blake2s(b"tomato-vpn v3 mac1").digest() == MAC1_KEY
    prs = cpace.lv_cat(KP_PWD1, KP_PWD2)                # the initiator's -lp first
    assert cpace.calculate_generator(prs, b"tomato-vpn v3", SID) == GENERATOR
    ya = cpace.scalar_mult(YA_SCALAR, GENERATOR)
    ada = messages.initiation_ad(INDEX_A, TIMESTAMP_MS, SID)
    assert ada == INITIATION[:32] and INITIATION[32:64] == ya
    assert hashlib.blake2s(INITIATION[:64], key=MAC1_KEY, digest_size=16).digest() == INITIATION[64:80]
    assert messages.encode_initiation(ada, ya) == INITIATION
    yb = cpace.scalar_mult(YB_SCALAR, GENERATOR)
    adb = messages.response_ad(INDEX_B, INDEX_A)
    isk = cpace.derive_isk(YB_SCALAR, ya, SID, ya, ada, yb, adb)
    assert isk == ISK == cpace.derive_isk(YA_SCALAR, yb, SID, ya, ada, yb, adb)
    mac_key = hashlib.sha512(b"CPaceMac" + SID + ISK).digest()
    ta = hmac.digest(mac_key, cpace.lv_cat(ya, ada), "sha512")[:16]
    tb = hmac.digest(mac_key, cpace.lv_cat(yb, adb), "sha512")[:16]
    assert messages.encode_response(adb, yb, tb) == RESPONSE
    assert messages.encode_confirmation(INDEX_B, ta) == CONFIRMATION
    assert keyschedule.data_keys(ISK) == (KEY_I2R, KEY_R2I)
    a = Keypair(INDEX_A, INDEX_B, KEY_I2R, KEY_R2I, True, 0.0)
    b = Keypair(INDEX_B, INDEX_A, KEY_R2I, KEY_I2R, False, 0.0)
    assert a.seal(b"hello") == DATA_HELLO and b.seal(b"") == KEEPALIVE
    at_b = Keypairs()
    at_b.install(b)
    assert at_b.open(DATA_HELLO, 1.0)[0] == b"hello"


def _stream(label):
    """The randomness the two Handshake objects drew for the example (SHA-256 of label || counter)."""
    counter = 0

    def random_bytes(n):
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(label + counter.to_bytes(4, "big")).digest()
            counter += 1
        return out[:n]

    return random_bytes


def test_the_state_machine_sends_exactly_these_bytes():
    a_address, b_address = ("192.0.2.1", 5000), ("192.0.2.2", 5000)
    a = Handshake(KP_PWD1, KP_PWD2, 10.0, _stream(b"A"), peer_address=b_address)
    b = Handshake(KP_PWD2, KP_PWD1, 10.0, _stream(b"B"), peer_address=a_address)
    (initiation,) = a.initiate(100.0, TIMESTAMP_MS)
    assert initiation.message == INITIATION
    (response,) = b.receive(INITIATION, a_address, 100.0, TIMESTAMP_MS + 3)
    assert response.message == RESPONSE
    confirmation, established = a.receive(RESPONSE, b_address, 100.0, TIMESTAMP_MS + 5)
    assert confirmation.message == CONFIRMATION and established.keypair.seal(b"hello") == DATA_HELLO
    (established_b,) = b.receive(CONFIRMATION, a_address, 100.0, TIMESTAMP_MS + 7)
    assert established_b.keypair.seal(b"") == KEEPALIVE

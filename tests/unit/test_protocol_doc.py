"""docs/protocol.md's test vectors, reproduced by an implementation written from the page
(tests/protocol_from_docs.py, no tomato code). tests/netns/test_protocol_doc.py runs the same
implementation against a real bin/vpn, so the vectors are what the tool sends."""
import pysodium
import pytest
from cryptography.exceptions import InvalidTag

from tests import protocol_from_docs as doc

V = {name: value for name, value in doc.vectors().items()}
h = bytes.fromhex


def test_password_keys_and_mac1_key():
    assert doc.derive_key(V["password A"]).hex() == V["Kp A"]
    assert doc.derive_key(V["password B"]).hex() == V["Kp B"]
    assert doc.MAC1_KEY.hex() == V["mac1 key"]


def test_the_handshake_messages_and_keys():
    prs = doc.lv_cat(h(V["Kp A"]), h(V["Kp B"]))            # A initiates: A's -lp first
    sid = h(V["sid"])
    g = doc.generator(prs, sid)
    assert g.hex() == V["generator"]
    ya = pysodium.crypto_scalarmult_ristretto255(h(V["ya"]), g)
    yb = pysodium.crypto_scalarmult_ristretto255(h(V["yb"]), g)
    index_a, index_b = int(V["index A"], 16), int(V["index B"], 16)
    init = doc.initiation(index_a, int(V["timestamp"]), sid, ya)
    assert init.hex() == V["initiation"]
    response = h(V["response"])
    assert response[12:44] == yb and response[:12] == bytes([0x32, 0, 0, 0]) + h(V["index B"]) + h(V["index A"])
    k = pysodium.crypto_scalarmult_ristretto255(h(V["ya"]), yb)
    assert k == pysodium.crypto_scalarmult_ristretto255(h(V["yb"]), ya)
    isk, ta, tb, i2r, r2i = doc.handshake_keys(sid, k, ya, init[:32], yb, response[:12])
    assert isk.hex() == V["ISK"] and tb == response[44:60]
    assert doc.mac(doc.MAC1_KEY, response[:60]) == response[60:]
    assert doc.confirmation(index_b, ta).hex() == V["confirmation"]
    assert (i2r.hex(), r2i.hex()) == (V["key_i2r"], V["key_r2i"])


def test_data_datagrams_seal_and_open():
    i2r, r2i = h(V["key_i2r"]), h(V["key_r2i"])
    index_a, index_b = int(V["index A"], 16), int(V["index B"], 16)
    data = doc.seal(i2r, index_b, 0, b"hello")
    assert data.hex() == V["data A to B"] and len(data) == 32 + 5
    assert doc.open_data(i2r, data) == (index_b, 0, 0, b"hello")
    keepalive = doc.seal(r2i, index_a, 0)
    assert keepalive.hex() == V["keepalive B to A"]


def test_every_byte_of_a_data_datagram_is_authenticated():
    key = h(V["key_i2r"])
    datagram = h(V["data A to B"])
    for i in range(1, len(datagram)):           # byte 0 is the type: another type is no data datagram
        tampered = bytearray(datagram)
        tampered[i] ^= 1
        with pytest.raises(InvalidTag):
            doc.open_data(key, bytes(tampered))


def test_a_segment_with_a_partial_checksum_is_flagged_and_completed_as_the_page_says_and_the_tunnel_does():
    from tomato_gevent.vpn.offload import complete_partial

    i2r, index_b = h(V["key_i2r"]), int(V["index B"], 16)
    segment = h(V["segment"])
    datagram = doc.seal(i2r, index_b, 1, segment, flags=doc.CHECKSUM_PARTIAL)
    assert datagram.hex() == V["segment A to B"]
    assert doc.open_data(i2r, datagram) == (index_b, 1, 1, segment)
    assert doc.complete_checksum(segment).hex() == V["segment completed"]
    completed = bytearray(segment)
    complete_partial(completed)
    assert completed.hex() == V["segment completed"]

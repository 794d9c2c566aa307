"""docs/protocol.md's test vectors, reproduced by an implementation written from the page
(tests/protocol_from_docs.py, no tomato code). tests/netns/test_protocol_doc.py runs the same
implementation against a real bin/vpn, so the vectors are what the tool sends."""
import pytest
from cryptography.exceptions import InvalidTag

from tests import protocol_from_docs as doc

VECTORS = doc.vectors()


def test_key_and_session_id():
    key = doc.derive_key(VECTORS["password"])
    assert key.hex() == VECTORS["key"]
    session = doc.session_id(int(VECTORS["session start"]), int(VECTORS["session random"]))
    assert session.to_bytes(8, "big").hex() == VECTORS["session id"]


@pytest.mark.parametrize("name, payload", [("keepalive", ""), ("packet", "packet")])
def test_datagrams_seal_and_open(name, payload):
    key = doc.derive_key(VECTORS["password"])
    session = int(VECTORS["session id"], 16)
    counter, timestamp = int(VECTORS[name + " counter"]), int(VECTORS[name + " timestamp"])
    packet = bytes.fromhex(VECTORS[payload]) if payload else b""
    datagram = doc.seal(key, session, counter, timestamp, packet)
    assert datagram.hex() == VECTORS["datagram" if payload else "keepalive"]
    assert len(datagram) == 36 + len(packet)
    assert doc.open_datagram(key, datagram) == (session, counter, timestamp, packet)


def test_every_byte_is_authenticated():
    key = doc.derive_key(VECTORS["password"])
    datagram = bytes.fromhex(VECTORS["datagram"])
    for i in range(len(datagram)):
        tampered = bytearray(datagram)
        tampered[i] ^= 1
        with pytest.raises(InvalidTag):
            doc.open_datagram(key, bytes(tampered))

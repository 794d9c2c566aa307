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


@pytest.mark.parametrize("name, payload, datagram", [("keepalive", "", "keepalive"),
                                                      ("packet", "packet", "datagram"),
                                                      ("segment", "segment", "segment datagram")])
def test_datagrams_seal_and_open(name, payload, datagram):
    key = doc.derive_key(VECTORS["password"])
    session = int(VECTORS["session id"], 16)
    counter, timestamp = int(VECTORS[name + " counter"]), int(VECTORS[name + " timestamp"])
    flags = int(VECTORS[name + " flags"])
    packet = bytes.fromhex(VECTORS[payload]) if payload else b""
    sealed = doc.seal(key, session, counter, timestamp, packet, flags)
    assert sealed.hex() == VECTORS[datagram]
    assert len(sealed) == 37 + len(packet)
    assert doc.open_datagram(key, sealed) == (session, counter, timestamp, flags, packet)


def test_a_partial_checksum_is_completed_as_the_page_says_and_as_the_tunnel_does():
    from tomato_gevent.vpn.offload import complete_partial

    segment = bytes.fromhex(VECTORS["segment"])
    assert doc.complete_checksum(segment).hex() == VECTORS["segment completed"]
    completed = bytearray(segment)
    complete_partial(completed)
    assert completed.hex() == VECTORS["segment completed"]


def test_every_byte_is_authenticated():
    key = doc.derive_key(VECTORS["password"])
    datagram = bytes.fromhex(VECTORS["datagram"])
    for i in range(len(datagram)):
        tampered = bytearray(datagram)
        tampered[i] ^= 1
        with pytest.raises(InvalidTag):
            doc.open_datagram(key, bytes(tampered))

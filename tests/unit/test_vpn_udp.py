"""udp.py: one drain delivers a bounded number of datagrams, so what the tun answers to them
(TCP ACKs) is not held back behind thousands more (issue 19, item 6)."""
import collections

import pytest

from tomato_gevent.vpn.udp import DRAIN_BATCH, DRAIN_DATAGRAMS, UdpTransport, open_udp_socket

SIZE = 200


@pytest.fixture
def pair():
    made = [UdpTransport(open_udp_socket(("127.0.0.1", 0)), drops=collections.Counter()) for _ in range(2)]
    yield made
    for transport in made:
        transport.close()


def send(transport, address, count):
    """count datagrams of SIZE bytes, numbered, in GSO batches of up to 64."""
    for first in range(0, count, 64):
        n = min(64, count - first)
        batch = b"".join(i.to_bytes(4, "big") * (SIZE // 4) for i in range(first, first + n))
        transport.send_batch(memoryview(batch), len(batch), SIZE, n, address)


def test_a_drain_stops_after_drain_datagrams_and_the_next_goes_on(pair):
    sender, receiver = pair
    if not (sender.gso and receiver.gro):
        pytest.skip("no UDP GSO/GRO in this kernel")
    got = []
    receive = receiver.receiver(lambda datagram, source, now_ms, now_mono: got.append(bytes(datagram)))
    send(sender, receiver.local_address(), 1000)
    assert receive() is False
    assert DRAIN_DATAGRAMS <= len(got) < DRAIN_DATAGRAMS + 64      # not DRAIN_BATCH GRO receives' worth
    assert DRAIN_DATAGRAMS < DRAIN_BATCH * 64
    while not receive():
        pass
    assert [int.from_bytes(d[:4], "big") for d in got] == list(range(1000))

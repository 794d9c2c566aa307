"""outbound.relay: a tunnel's two directions, in one greenlet while sends go out whole, with a
helper greenlet for the other direction once one send would wait. Socket pairs only
(nothing leaves the process): `client` and `origin` are the far ends of the relayed sockets."""
import gevent
import pytest
from gevent import socket

from tomato_gevent.proxy import outbound


@pytest.fixture
def tunnel():
    near_client, client = socket.socketpair()
    near_origin, origin = socket.socketpair()
    socks = (near_client, client, near_origin, origin)
    yield near_client, client, near_origin, origin
    for sock in socks:
        sock.close()


def run_relay(near_client, near_origin, idle=30.0):
    def relay():
        try:
            return outbound.relay(near_client, near_origin, idle)
        finally:                            # as the front ends do: close both right after
            near_client.close()
            near_origin.close()
    return gevent.spawn(relay)


def read_all(sock):
    got = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return bytes(got)
        got += data


def test_a_request_and_its_answer_cross_in_one_greenlet(tunnel, monkeypatch):
    near_client, client, near_origin, origin = tunnel
    relaying = run_relay(near_client, near_origin)
    spawned = []
    real_spawn = outbound.gevent.spawn
    monkeypatch.setattr(outbound.gevent, "spawn", lambda *a: spawned.append(a) or real_spawn(*a))
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    client.shutdown(socket.SHUT_WR)
    assert read_all(origin) == b"GET / HTTP/1.1\r\n\r\n"        # the half-close passed on
    origin.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello")
    origin.shutdown(socket.SHUT_WR)
    assert read_all(client) == b"HTTP/1.1 200 OK\r\n\r\nhello"
    assert relaying.get(timeout=10) == (18, 24)
    assert spawned == []                    # no helper greenlet


def test_small_writes_in_a_row_all_cross(tunnel):
    # A short read ends a direction's turn without reading on (SMALL_READ_BYTES): what comes
    # behind it is read on a later turn, none of it lost or held back.
    near_client, client, near_origin, origin = tunnel
    relaying = run_relay(near_client, near_origin)
    words = [b"%05d;" % n for n in range(2000)]
    for word in words:
        client.send(word)
    client.shutdown(socket.SHUT_WR)
    assert read_all(origin) == b"".join(words)
    origin.shutdown(socket.SHUT_WR)
    assert relaying.get(timeout=10) == (len(words) * 6, 0)


def test_the_answer_flows_while_the_request_direction_is_stalled(tunnel):
    # The origin reads nothing until it has answered in full, the client reads the answer
    # before it reads anything else: one greenlet blocked in a send would hang both.
    near_client, client, near_origin, origin = tunnel
    big = bytes(range(256)) * 40000         # 10 MB each way: more than the socket buffers hold
    relaying = run_relay(near_client, near_origin)
    sender = gevent.spawn(client.sendall, big)
    answer = gevent.spawn(lambda: (origin.sendall(big), origin.shutdown(socket.SHUT_WR)))
    assert gevent.spawn(read_all, client).get(timeout=10) == big
    answer.get(timeout=10)
    reader = gevent.spawn(read_all, origin)
    sender.get(timeout=10)
    client.shutdown(socket.SHUT_WR)
    assert reader.get(timeout=10) == big
    assert relaying.get(timeout=10) == (len(big), len(big))


def test_a_reset_ends_both_directions(tunnel):
    near_client, client, near_origin, origin = tunnel
    relaying = run_relay(near_client, near_origin)
    client.sendall(b"x")
    assert origin.recv(10) == b"x"
    near_origin.shutdown(socket.SHUT_RDWR)  # what relay's watchdog does to an idle tunnel
    assert read_all(client) == b""
    assert relaying.get(timeout=10)[0] == 1


def test_an_idle_tunnel_is_shut_by_the_watchdog(tunnel):
    near_client, client, near_origin, origin = tunnel
    relaying = run_relay(near_client, near_origin, idle=0.05)
    assert read_all(client) == b""
    assert read_all(origin) == b""
    assert relaying.get(timeout=10) == (0, 0)

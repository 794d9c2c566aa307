"""tcp.py without root: two Links over TCP on 127.0.0.1 (tun stand-ins from vpn_doubles),
hostile and idle connections to the port, a peer restart, both sides dialling."""
import socket

import pytest

from tests.support import free_port, wait_for
from tests.unit.vpn_doubles import KEY_A, KEY_B, linked_pair
from tomato_gevent.vpn.framing import frame, frame_header


def round_trip(a, b, text=b"hello"):
    a.tun.host.send(text + b" from A")
    assert b.tun.host.recv(65536) == text + b" from A"
    b.tun.host.send(text + b" from B")
    assert a.tun.host.recv(65536) == text + b" from B"


def closed_by_peer(conn):
    conn.settimeout(5)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def tcp_pair(sides):
    a, b = linked_pair(sides, transport="tcp")
    wait_for(lambda: b.link.endpoint.address is not None, what="B learning A's connection")
    round_trip(a, b)
    return a, b


def test_garbage_connection_closed_at_first_bad_frame(tcp_pair):
    a, b = tcp_pair
    for junk in (frame(bytes(100)), frame(b"\xff" * 1400), frame_header(3) + b"abc"):
        with socket.create_connection(b.address) as attacker:
            attacker.sendall(junk)
            assert closed_by_peer(attacker)
    assert b.link.drops["bad frame length"] == 1 and b.link.drops["untrusted connection"] == 2
    round_trip(a, b, b"still")
    assert b.transport.rules.current is not None and b.transport.connection_count == 1


def test_a_frame_that_does_not_open_leaves_the_dialled_connection_open(tcp_pair):
    # A dialled B: its connection became the current one when it opened, and has carried
    # authenticated datagrams since. One that does not open (stale, forged) is dropped; the
    # connection stays, as it does on B's side.
    a, b = tcp_pair
    dialled = a.transport.rules.current
    assert dialled.outgoing and dialled.authenticated
    dropped = sum(a.link.drops.values())
    b.transport.rules.current.sock.sendall(frame(bytes(100)))
    wait_for(lambda: sum(a.link.drops.values()) > dropped, what="A dropping the datagram")
    round_trip(a, b, b"still")
    assert a.transport.rules.current is dialled and a.transport.connections_opened == 1


def test_idle_connections_closed_after_the_untrusted_time(tcp_pair):
    a, b = tcp_pair
    b.transport.rules.untrusted_seconds = 0.3
    idle = [socket.create_connection(b.address) for _ in range(3)]
    try:
        wait_for(lambda: b.transport.connection_count == 4, what="B accepting the idle connections")
        assert all(closed_by_peer(conn) for conn in idle)
    finally:
        for conn in idle:
            conn.close()
    assert b.link.drops["untrusted connection"] == 3
    round_trip(a, b, b"after idlers")


def test_untrusted_cap_drops_oldest_first(tcp_pair):
    a, b = tcp_pair
    b.transport.rules.max_untrusted = 2
    idle = []
    try:
        for _ in range(4):
            idle.append(socket.create_connection(b.address))
            wait_for(lambda: b.transport.connections_opened == 1 + len(idle), what="accept")
        assert closed_by_peer(idle[0]) and closed_by_peer(idle[1])
        idle[3].settimeout(0.2)
        with pytest.raises(socket.timeout):
            idle[3].recv(1)                 # the newest is still open
    finally:
        for conn in idle:
            conn.close()
    round_trip(a, b, b"after the flood")


def test_untrusted_byte_budget(tcp_pair):
    a, b = tcp_pair
    b.transport.rules.untrusted_bytes = 1000
    with socket.create_connection(b.address) as slow:
        slow.sendall(frame_header(2000) + bytes(1000))      # an incomplete frame, over the budget
        assert closed_by_peer(slow)
    round_trip(a, b, b"after the slow one")


def test_peer_restart_reconnects(sides):
    port = free_port()
    b = sides(KEY_B, KEY_A, transport="tcp", bind=("127.0.0.1", port))
    a = sides(KEY_A, KEY_B, peer=("127.0.0.1", port), transport="tcp")
    wait_for(lambda: b.link.endpoint.address is not None, what="first connection")
    round_trip(a, b)
    b.stop()
    b2 = sides(KEY_B, KEY_A, transport="tcp", bind=("127.0.0.1", port))
    wait_for(lambda: b2.link.endpoint.address is not None, timeout=10, what="A reconnecting to the new B")
    round_trip(a, b2, b"again")
    assert a.transport.connections_opened >= 2


def test_both_sides_dialling_settle_on_one_connection(sides):
    port_a, port_b = free_port(), free_port()
    a = sides(KEY_A, KEY_B, peer=("127.0.0.1", port_b), transport="tcp", bind=("127.0.0.1", port_a), hold=True)
    b = sides(KEY_B, KEY_A, peer=("127.0.0.1", port_a), transport="tcp", bind=("127.0.0.1", port_b), hold=True)
    for side in (a, b):
        side.transport.rules.grace = 0.3
        side.release()              # both listening already: both dials succeed, the connections cross
    wait_for(lambda: a.transport.connections_opened == b.transport.connections_opened == 2, what="crossed dials")
    wait_for(lambda: a.transport.connection_count == b.transport.connection_count == 1, timeout=10,
             what="the crossed connections settling on one")
    round_trip(a, b)
    kept_a, kept_b = a.transport.rules.current, b.transport.rules.current
    round_trip(a, b, b"again")
    assert (a.transport.rules.current, b.transport.rules.current) == (kept_a, kept_b)
    assert kept_a.sock.getsockname() == kept_b.sock.getpeername()      # the same connection
    assert a.transport.connections_opened + b.transport.connections_opened <= 4   # no redial loop


def test_a_peer_that_stops_reading_fills_the_queue_then_is_dropped(sides, monkeypatch):
    from tomato_gevent.vpn import tcp

    monkeypatch.setattr(tcp, "STALL_SECONDS", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        a = sides(KEY_A, KEY_B, peer=listener.getsockname(), transport="tcp")
        stuck, _ = listener.accept()            # accepts, never reads
        with stuck:
            packet = bytes(1400)
            for _ in range(50000):
                a.tun.host.send(packet)
                if a.link.drops["send queue full"]:
                    break
            assert a.link.drops["send queue full"] > 0, "the queue never filled"
            wait_for(lambda: a.link.drops["send stalled"] == 1, what="the stalled connection dropped")
            listener.settimeout(5)
            again, _ = listener.accept()        # and A dials again
            again.close()
            assert a.running


def test_http_proxy_refusal_is_retried_with_backoff(sides, caplog):
    import logging
    import threading

    caplog.set_level(logging.INFO)
    requests = []
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.settimeout(5)

        def refuse():
            for _ in range(2):
                conn, _ = proxy.accept()
                with conn:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        head += conn.recv(1)
                    requests.append(head)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        refuser = threading.Thread(target=refuse, daemon=True)
        refuser.start()
        a = sides(KEY_A, KEY_B, peer=("peer.invalid", 5000), transport="tcp", http_proxy=proxy.getsockname())
        refuser.join(10)
    assert requests == [b"CONNECT peer.invalid:5000 HTTP/1.1\r\nHost: peer.invalid:5000\r\n\r\n"] * 2
    assert a.transport.connections_opened == 0 and a.running
    assert "the HTTP proxy answered 403 Forbidden" in caplog.text


def test_a_silent_listener_on_the_peers_port_is_dropped_and_redialled(sides):  # noqa: F811
    # Something accepts on the peer's port and never speaks: the dialled connection gets the
    # deadline an accepted one gets, and A dials again -- and reaches the real peer once it
    # listens there.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # B binds the port next
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        port = listener.getsockname()[1]
        a = sides(KEY_A, KEY_B, peer=("127.0.0.1", port), transport="tcp", hold=True)
        a.transport.rules.untrusted_seconds = 0.3
        a.release()
        silent, _ = listener.accept()
        with silent:
            silent.settimeout(5)
            while silent.recv(4096):        # A's keepalive, then the end
                pass
        again, _ = listener.accept()
        again.close()
    assert a.link.drops["untrusted connection"] >= 1
    b = sides(KEY_B, KEY_A, transport="tcp", bind=("127.0.0.1", port))
    wait_for(lambda: b.link.endpoint.address is not None, timeout=15, what="A reaching the real peer")
    round_trip(a, b)
    current = a.transport.rules.current
    assert current.outgoing and current.authenticated      # B answered the new connection at once

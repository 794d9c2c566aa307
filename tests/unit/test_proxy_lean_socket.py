"""proxy/lean_socket.py: the proxy's TCP connections with gevent's socket meaning (timeouts,
close and shutdown waking a waiting greenlet), at a fraction of its cost. Loopback only."""
import errno
import ipaddress
import os
import socket as std_socket

import gevent
import pytest
from gevent import socket

from tomato_gevent.errors import NextHopError, Refused
from tomato_gevent.proxy import lean_socket, socket_io
from tomato_gevent.proxy.outbound import Outbound

from .proxy_doubles import FakeResolver, spawn_drain


def connected_fd():
    """(descriptor, gevent socket) connected over loopback TCP; the caller closes both."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        peer = socket.create_connection(listener.getsockname())
        fd, _ = listener._accept()
    finally:
        listener.close()
    return fd, peer


def lean(fd):
    return lean_socket.accepted(fd, std_socket.AF_INET, std_socket.SOCK_STREAM, 0)


def lean_pair():
    """(LeanSocket, gevent socket) connected over loopback TCP; the caller closes both."""
    fd, peer = connected_fd()
    return lean(fd), peer


@pytest.fixture
def pair():
    ours, peer = lean_pair()
    yield ours, peer
    ours.close()
    peer.close()


@pytest.fixture
def listening_port():
    """The port of a loopback listener (closed after the test)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    yield listener, listener.getsockname()[1]
    listener.close()


def test_a_closed_sockets_watcher_serves_the_next_socket():
    first, first_peer = lean_pair()
    watcher = first._read_event
    first.close()
    first_peer.close()
    second, peer = lean_pair()
    try:
        assert second._read_event is watcher and watcher.fd == second.fileno()
        sender = gevent.spawn(peer.sendall, b"again")       # runs once recv waits on it
        assert socket_io.recv(second, 100, 5.0) == b"again"
        sender.join()
    finally:
        second.close()
        peer.close()


def test_a_watcher_with_a_cancel_still_queued_is_not_given_to_the_next_socket():
    # shutdown() queues the hub's cancel_wait (it throws into whoever waits on the watcher when
    # the hub runs it); the socket closed at once must not hand that watcher on, or the cancel
    # would reach the next socket's reader (the relay shuts and closes both ends in one go).
    first, first_peer = lean_pair()
    sender = gevent.spawn(first_peer.sendall, b"x")
    assert socket_io.recv(first, 10, 5.0) == b"x"        # the read watcher stays started
    sender.join()
    fd, peer = connected_fd()               # made now: making it waits in the hub
    first.shutdown(std_socket.SHUT_RDWR)
    first.close()
    second = lean(fd)                       # and this socket waits before the hub runs the cancel
    try:
        sender = gevent.spawn(peer.sendall, b"mine")     # runs after the queued cancel
        assert socket_io.recv(second, 100, 5.0) == b"mine"
        sender.join()
    finally:
        second.close()
        peer.close()
        first_peer.close()


def test_recv_waits_within_the_timeout_and_raises_socket_timeout_after_it(pair):
    ours, peer = pair
    ours.settimeout(5.0)
    sender = gevent.spawn(peer.sendall, b"later")      # runs once recv waits
    assert ours.recv(100) == b"later"
    sender.join()
    ours.settimeout(0.02)
    with pytest.raises(socket.timeout):
        ours.recv(100)


def test_recv_into_waits_as_recv_does_and_non_waiting_methods_are_not_offered(pair):
    ours, peer = pair
    ours.settimeout(5.0)
    sender = gevent.spawn(peer.sendall, b"into")
    buffer = bytearray(10)
    assert ours.recv_into(buffer) == 4 and buffer[:4] == b"into"
    sender.join()
    with pytest.raises(AttributeError):
        ours.makefile("rb")
    assert ours.getpeername() == peer.getsockname()     # the rest: the real socket's


def test_timeout_zero_is_non_blocking(pair):
    ours, _ = pair
    ours.setblocking(False)
    assert ours.gettimeout() == 0.0
    with pytest.raises(BlockingIOError):
        ours.recv(1, socket.MSG_PEEK)
    with pytest.raises(ValueError):
        ours.settimeout(-1)


def test_sendall_sends_more_than_the_buffers_hold_and_times_out_on_a_stalled_peer(pair):
    ours, peer = pair
    data = bytes(range(256)) * 40000        # 10 MB
    reader, received = spawn_drain(peer, len(data))
    ours.settimeout(30.0)
    ours.sendall(data)
    reader.join(timeout=30)
    assert bytes(received) == data
    ours.settimeout(0.05)                   # nobody reads now: the buffers fill, then the timeout
    with pytest.raises(socket.timeout):     # (loopback buffers grow to ~10 MB: send more)
        ours.sendall(memoryview(bytes(64 << 20)))


def test_close_elsewhere_wakes_a_waiting_recv_with_gevents_error(pair):
    ours, _ = pair
    waiter = gevent.spawn(socket_io.recv, ours, 100, 30.0)
    gevent.sleep(0)                         # the waiter is now waiting
    ours.close()
    with pytest.raises(OSError) as woken:
        waiter.get(timeout=5)
    assert woken.value.errno == errno.EBADF
    assert ours.closed


def test_close_of_an_idle_socket_closes_the_descriptor_at_once(pair):
    ours, peer = pair
    sender = gevent.spawn(peer.sendall, b"x")
    assert socket_io.recv(ours, 100, 5.0) == b"x"   # leaves the read watcher started
    sender.join()
    fd = ours.fileno()
    ours.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    ours.close()                            # twice is fine
    with pytest.raises(OSError):
        ours.recv(1)
    peer.settimeout(5.0)
    assert peer.recv(10) == b""             # the peer sees the end


def test_a_dial_connects_or_says_refused():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    outbound = Outbound(rules=None, allow_private=True, connect_timeout=5.0)
    sock = outbound.connect_direct("127.0.0.1", port, None)
    try:
        assert isinstance(sock, lean_socket.LeanSocket)
        accepted, _ = listener.accept()
        sock.sendall(b"hello")
        accepted.settimeout(5.0)
        assert accepted.recv(10) == b"hello"
        accepted.close()
    finally:
        sock.close()
        listener.close()
    with pytest.raises(NextHopError) as refused:
        outbound.connect_direct("127.0.0.1", port, None)
    assert refused.value.errno == errno.ECONNREFUSED and refused.value.status_hint == 502


def test_a_dial_still_in_progress_waits_and_times_out():
    # A listener whose accept queue is full drops the SYN: connect stays in progress
    # (EALREADY on the second connect_ex), and the wait ends at the connect timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    queued = []
    outbound = Outbound(rules=None, allow_private=True, connect_timeout=0.2)
    try:
        while True:                         # fill the queue until a dial is left pending
            try:
                queued.append(outbound.connect_direct(*address, None))
            except NextHopError as e:
                assert e.status_hint == 504 and "timed out connecting to 127.0.0.1:%d" % address[1] in str(e)
                break
            assert len(queued) < 10
    finally:
        for sock in queued:
            sock.close()
        listener.close()


def test_the_remembered_destination_policy_is_each_clients_own(listening_port):
    # connect_direct remembers the policy's answer per (client, address): a loopback client
    # reaching 127.0.0.1 must not open it for a remote client, before or after.
    _, port = listening_port
    outbound = Outbound(rules=None, connect_timeout=5.0)       # --allow-private not given
    remote, local = ipaddress.ip_address("10.0.1.2"), ipaddress.ip_address("127.0.0.1")
    for client, allowed in ((remote, False), (local, True), (remote, False), (local, True)):
        if allowed:
            outbound.connect_direct("127.0.0.1", port, client).close()
        else:
            with pytest.raises(Refused):
                outbound.connect_direct("127.0.0.1", port, client)


def test_the_remembered_destination_policy_survives_reused_object_ids(listening_port):
    # The memory is keyed by the objects' ids: a client object made after another one died
    # often gets the dead one's id (CPython reuses the memory), and must still get its own answer.
    listener, port = listening_port
    outbound = Outbound(rules=None, connect_timeout=5.0,        # --allow-private not given
                        resolver=FakeResolver(addresses={"here.test": [ipaddress.ip_address("127.0.0.1")]}))
    for i in range(20):
        for text, allowed in (("127.0.0.%d" % (i + 1), True), ("10.0.%d.2" % i, False)):
            client = ipaddress.IPv4Address(text)        # new objects, not netutil's cached ones
            if allowed:
                outbound.connect_direct("here.test", port, client).close()
                listener.accept()[0].close()
            else:
                with pytest.raises(Refused):
                    outbound.connect_direct("here.test", port, client)
            del client

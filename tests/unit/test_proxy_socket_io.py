"""proxy/socket_io.py: recv and send_all on gevent sockets, without gevent's Timeout per wait.
Connected pairs on loopback (socketpair: nothing leaves the process)."""
import _socket

import gevent
import pytest
from gevent import socket

from tomato_gevent.proxy import lean_socket, socket_io

from .proxy_doubles import spawn_drain


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_recv_returns_what_is_there_without_waiting(pair):
    a, b = pair
    b.sendall(b"ready")
    assert socket_io.recv(a, 100, 5.0) == b"ready"


def test_recv_waits_for_bytes_that_come_later(pair):
    a, b = pair
    sender = gevent.spawn_later(0.01, b.sendall, b"later")
    assert socket_io.recv(a, 100, 5.0) == b"later"
    sender.join()


def test_recv_sees_the_end_of_the_stream(pair):
    a, b = pair
    gevent.spawn_later(0.01, b.shutdown, socket.SHUT_WR)
    assert socket_io.recv(a, 100, 5.0) == b""


def test_recv_raises_socket_timeout_when_nothing_comes(pair):
    a, _ = pair
    with pytest.raises(socket.timeout) as raised:
        socket_io.recv(a, 100, 0.02)
    assert str(raised.value) == "timed out"         # as gevent's recv says it (log lines)
    # The wait left nobody waiting behind: the socket's watcher is free for the next one.
    assert a._read_event.callback.__self__.waiting is None


def test_a_timed_out_wait_leaves_the_next_one_whole(pair):
    a, b = pair
    with pytest.raises(socket.timeout):
        socket_io.recv(a, 100, 0.02)
    b.sendall(b"next")
    assert socket_io.recv(a, 100, 5.0) == b"next"


def test_closing_the_socket_elsewhere_wakes_a_waiting_recv(pair):
    a, _ = pair
    waiter = gevent.spawn(socket_io.recv, a, 100, 30.0)
    gevent.sleep(0)                     # the waiter is now waiting
    a.close()
    with pytest.raises(Exception) as woken:
        waiter.get(timeout=5)
    assert not isinstance(woken.value, gevent.Timeout)


def test_the_read_watcher_stays_started_from_one_wait_to_the_next(pair):
    # Started once: libev re-registers a descriptor with epoll (epoll_ctl) at every start.
    a, b = pair
    for word in (b"one", b"two", b"three"):
        sender = gevent.spawn_later(0.01, b.sendall, word)
        assert socket_io.recv(a, 100, 5.0) == word
        sender.join()
        assert a._read_event.active
        if word == b"one":
            reader = a._read_event.callback.__self__
        assert a._read_event.callback.__self__ is reader


def test_bytes_that_come_while_nobody_waits_stop_the_watcher(pair):
    # epoll is level-triggered: a watcher left started on unread bytes would wake the loop
    # on every turn. The first wake-up stops it; the next recv takes the bytes and waits anew.
    a, b = pair
    sender = gevent.spawn_later(0.01, b.sendall, b"first")
    assert socket_io.recv(a, 100, 5.0) == b"first"
    sender.join()
    b.sendall(b"unasked")
    turns = 0
    while a._read_event.active:         # a few loop turns (sleep(0) runs no poll)
        turns += 1
        assert turns < 1000
        gevent.sleep(0.001)
    assert socket_io.recv(a, 100, 5.0) == b"unasked"
    sender = gevent.spawn_later(0.01, b.sendall, b"again")
    assert socket_io.recv(a, 100, 5.0) == b"again"
    sender.join()


@pytest.fixture(params=["gevent", "lean"])
def either_pair(request):
    """A connected pair whose first end is a gevent socket or a lean_socket.LeanSocket."""
    if request.param == "gevent":
        a, b = socket.socketpair()
    else:
        raw, b = _socket.socketpair()
        raw.setblocking(False)
        a, b = lean_socket.LeanSocket(raw), socket.socket(fileno=b.detach())
    yield a, b
    a.close()
    b.close()


def test_shutdown_elsewhere_wakes_a_waiting_recv(either_pair):
    # outbound.relay's watchdog ends an idle tunnel this way.
    a, _ = either_pair
    waiter = gevent.spawn(socket_io.recv, a, 100, None)
    gevent.sleep(0)
    a.shutdown(socket.SHUT_RDWR)
    try:
        result = waiter.get(timeout=5)
    except OSError:
        result = b""
    assert result == b""


def test_a_second_reader_of_one_socket_is_refused(pair):
    a, _ = pair
    first = gevent.spawn(socket_io.recv, a, 100, 5.0)
    gevent.sleep(0)
    with pytest.raises(gevent.exceptions.ConcurrentObjectUseError):
        socket_io.recv(a, 100, 5.0)
    first.kill()


def test_release_gives_the_watcher_back_to_gevents_own_recv(pair):
    a, b = pair
    sender = gevent.spawn_later(0.01, b.sendall, b"ours")
    assert socket_io.recv(a, 100, 5.0) == b"ours"
    sender.join()
    socket_io.release(a)
    sender = gevent.spawn_later(0.01, b.sendall, b"gevent's")
    a.settimeout(5.0)
    assert a.recv(100) == b"gevent's"
    sender.join()


def test_send_all_sends_more_than_one_send_takes(pair):
    a, b = pair
    data = bytes(range(256)) * 40000      # 10 MB: far more than the socket buffers hold
    reader, received = spawn_drain(b, len(data))
    socket_io.send_all(a, data)
    reader.join(timeout=30)
    assert bytes(received) == data


class Plain:
    """Not a gevent socket: socket_io falls back to the object's own recv/sendall."""

    def __init__(self):
        self.sent, self.timeout = [], None

    def settimeout(self, seconds):
        self.timeout = seconds

    def recv(self, size):
        return b"plain"[:size]

    def sendall(self, data):
        self.sent.append(bytes(data))


def test_other_sockets_go_through_their_own_methods():
    plain = Plain()
    assert socket_io.recv(plain, 3, 7.0) == b"pla" and plain.timeout == 7.0
    socket_io.send_all(plain, b"abc")
    assert plain.sent == [b"abc"]


def test_recv_without_a_limit_waits_as_long_as_it_takes(pair):
    a, b = pair
    sender = gevent.spawn_later(0.05, b.sendall, b"whenever")
    assert socket_io.recv(a, 100, None) == b"whenever"
    sender.join()


def test_a_serving_process_spawns_greenlets_without_recording_their_stack():
    from tomato_gevent.proxy import server
    before = gevent.config.track_greenlet_tree
    try:
        server.tune_gevent()
        spawned = gevent.spawn(lambda: None)
        spawned.join()
        assert spawned.spawning_stack is None
    finally:
        gevent.config.track_greenlet_tree = before


class CountingRecv:
    """A real socket's stand-in that counts its recv calls (and the ones that found nothing)."""

    def __init__(self, raw):
        self.raw = raw
        self.calls = self.empty = 0

    def recv(self, size):
        self.calls += 1
        try:
            return self.raw.recv(size)
        except BlockingIOError:
            self.empty += 1
            raise


def test_recv_later_waits_for_readable_before_its_recv(pair):
    a, b = pair
    raw = a._sock
    counting = a._sock = CountingRecv(raw)
    try:
        sender = gevent.spawn_later(0.01, b.sendall, b"next request")
        assert socket_io.recv_later(a, 100, 5.0) == b"next request"
        sender.join()
    finally:
        a._sock = raw
    assert (counting.calls, counting.empty) == (1, 0)      # plain recv: (2, 1)


def test_recv_later_takes_what_is_there_and_times_out_as_recv(pair):
    a, b = pair
    b.sendall(b"ready")
    assert socket_io.recv_later(a, 100, 5.0) == b"ready"
    with pytest.raises(socket.timeout):
        socket_io.recv_later(a, 100, 0.02)
    b.shutdown(socket.SHUT_WR)
    assert socket_io.recv_later(a, 100, 5.0) == b""
    assert socket_io.recv_later(Plain(), 3, 7.0) == b"pla"

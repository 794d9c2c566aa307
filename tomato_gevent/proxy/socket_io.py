"""recv and send for the proxy's per-request path: what gevent's socket methods do, with less
of their Python layer per call. gevent glue, no protocol.

    recv(sock, size, seconds)       at most size bytes, b"" at EOF; socket.timeout when nothing
                                    came for `seconds` (a wait starts only on EAGAIN; None:
                                    no limit, no timer)
    recv_later(sock, size, seconds) the same, waiting for readable first: for bytes that are
                                    almost never there yet (a keep-alive client's next
                                    request, right after its answer went out)
    send_all(sock, data)            one send(); the rest, if the kernel took less, with gevent's
                                    sendall (its waits and the socket's own timeout)
    wait_writable(sock, seconds)    for a connect() in progress: on the socket's own write
                                    watcher (gevent's wait_write makes a new watcher, whose
                                    set-up checks the descriptor with an fcntl, and a Timeout)
    release(sock)                   stops the read watcher recv keeps started (see below), for
                                    a socket read with gevent's own recv from then on
    wait_readable(sock, seconds)    until sock is readable (socket.timeout after seconds; None:
                                    no limit)
    wait_either(a, b)               until a (0) or b (1) is readable, for one greenlet that
                                    relays both ways (outbound.relay); no limit

Why: gevent's socket.recv/send are Python methods around the real socket's (a frame and a
wrapper per call), and every wait with a timeout builds a gevent Timeout: a Python object, its
own timer watcher and about ten Python calls to start, enter, leave and close it, two hub
switches aside. Here a wait is one timer watcher whose callback throws socket.timeout into the
waiting greenlet, exactly as that Timeout would.

The read watcher stays started between waits (a _Reader is its callback): gevent's hub.wait
starts the socket's watcher for each wait and stops it after, and libev then re-registers the
descriptor with epoll (an epoll_ctl) at every start. While a greenlet waits, the watcher's
callback is that greenlet's switch (it wakes it with no Python call between); otherwise it is a
_Reader's ready: bytes (or the end) that come while nobody waits stop the watcher, since
epoll is level-triggered and would report them on every loop turn (the next wait starts it
again). wait_either's two watchers keep their _Readers, which switch to the greenlet in
`waiting`. gevent's close() and shutdown() still wake a waiting recv: they throw into the
watcher's callback.__self__ (hub.cancel_wait): the waiting greenlet, or a _Reader that passes
it on.
Since the watcher is taken, gevent's own recv on such a socket would raise
ConcurrentObjectUseError: a socket read here is read only here, or release()d first.

Only for gevent sockets (`_sock` is the real socket, `_read_event` its watcher: gevent's
socket layout since 1.0); anything else goes through its own recv/sendall.

recv_later is for the first recv after a send whose answer comes back on this socket: the
client's next request (sent only once the client has read our answer) and the origin's
answer (outbound.read_response_head). Under make bench's load (bench/proxy_load_counts.py,
wrk -c50) neither was ever there that soon: 6.11 -> 5.12 -> 4.11 syscalls per request,
switches unchanged at 4.0. Bytes that are there already cost a hub round trip instead of a
recv (a proxy that keeps up with nothing: bench/proxy_counts.py without WAIT_MS, +12k
instructions a wait); an earlier measurement, on a busier machine, found the origin's
answer there for one request in four (then 6.31 -> 6.03 syscalls, 2.65 -> 3.23 switches).
"""
from gevent import get_hub, getcurrent, socket
from gevent.exceptions import ConcurrentObjectUseError

_timeout = socket.timeout


def _wait(watcher, seconds):
    hub = get_hub()
    if seconds is None:
        hub.wait(watcher)
        return
    timer = hub.loop.timer(seconds)
    timer.start(getcurrent().throw, _timeout, "timed out")     # gevent's own message
    try:
        hub.wait(watcher)
    finally:
        timer.close()


def wait_writable(sock, seconds):
    _wait(sock._write_event, seconds)


class _Reader:
    """A socket's read watcher, kept started: wakes the greenlet in `waiting`, if any."""

    __slots__ = ("watcher", "waiting")

    def __init__(self, watcher):
        self.watcher = watcher
        self.waiting = None

    def ready(self):
        waiting = self.waiting
        if waiting is None:                 # readable with nobody waiting: see the docstring
            self.watcher.stop()
            return
        self.waiting = None
        waiting.switch(self)

    def throw(self, *error):
        """hub.cancel_wait's way in (close, shutdown): to the waiting greenlet, if any."""
        waiting = self.waiting
        if waiting is not None:
            self.waiting = None
            waiting.throw(*error)


def _reader(watcher):
    """The watcher's _Reader, the watcher started with it if it was not."""
    callback = watcher.callback
    if callback is None:
        reader = _Reader(watcher)
        watcher.start(reader.ready)
        return reader
    reader = callback.__self__              # ours, or a gevent wait's Waiter
    if type(reader) is not _Reader or reader.waiting is not None:
        raise ConcurrentObjectUseError("this socket is already read by another greenlet")
    return reader


def _wait_readable(watcher, seconds):
    ready = watcher.callback                # _reader(watcher), inlined: twice per request
    if ready is None:
        ready = _Reader(watcher).ready
        watcher.start(ready)
    else:
        reader = ready.__self__
        if type(reader) is not _Reader or reader.waiting is not None:
            raise ConcurrentObjectUseError("this socket is already read by another greenlet")
    # While we wait, the watcher wakes us itself (no _Reader.ready call in between); a
    # second reader sees a greenlet's switch there and is refused, as above; gevent's
    # close() and shutdown() throw into callback.__self__: this greenlet.
    current = getcurrent()
    watcher.callback = current.switch
    if seconds is None:
        try:
            get_hub().switch()
        finally:
            watcher.callback = ready
        return
    hub = get_hub()
    timer = hub.loop.timer(seconds)
    timer.start(current.throw, _timeout, "timed out")     # gevent's own message
    try:
        hub.switch()
    finally:
        watcher.callback = ready
        timer.close()


def wait_readable(sock, seconds=None):
    _wait_readable(sock._read_event, seconds)


def wait_either(a, b):
    first, second = _reader(a._read_event), _reader(b._read_event)
    first.waiting = second.waiting = getcurrent()
    try:
        return 0 if get_hub().switch() is first else 1
    finally:
        first.waiting = second.waiting = None


def release(sock):
    """Stop the read watcher recv left started (gevent's own recv may wait on it again)."""
    watcher = sock._read_event
    if watcher is not None and type(getattr(watcher.callback, "__self__", None)) is _Reader:
        watcher.stop()


def recv(sock, size, seconds):
    try:
        raw = sock._sock
    except AttributeError:
        sock.settimeout(seconds)
        return sock.recv(size)
    while True:
        try:
            data = raw.recv(size)
        except BlockingIOError:
            _wait_readable(sock._read_event, seconds)
            continue
        if not data:                        # the end stays readable: nobody waits for more
            release(sock)
        return data


def recv_later(sock, size, seconds):
    """recv for bytes that are almost never there yet: waits for the socket to be readable
    first, sparing the recv that would find nothing (a system call and a raised
    BlockingIOError). For a keep-alive client's next request, read right after its answer
    went out: the client sends it only once it has read that answer."""
    watcher = getattr(sock, "_read_event", None)     # None: not gevent's layout, or closed
    if watcher is not None:
        _wait_readable(watcher, seconds)
    return recv(sock, size, seconds)


def send_all(sock, data):
    try:
        raw = sock._sock
    except AttributeError:
        sock.sendall(data)
        return
    try:
        sent = raw.send(data)
    except BlockingIOError:
        sent = 0
    if sent != len(data):
        sock.sendall(memoryview(data)[sent:])

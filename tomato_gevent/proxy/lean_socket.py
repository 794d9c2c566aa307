"""The proxy's TCP connections (accepted clients, dialled next hops): the real non-blocking
socket with one read watcher, instead of gevent's socket object. gevent glue, no protocol.

    accepted(fd, family, type, proto) -> LeanSocket   a descriptor accept() returned
    dialling(family) -> LeanSocket                    a new socket to connect (non-blocking
                                                      from its socket() call: no ioctl)

A LeanSocket has the attributes socket_io.py works with (`_sock` the real socket,
`_read_event` its read watcher, `_write_event`) and the methods of gevent's socket that
the proxy calls, with gevent's meaning: recv, recv_into, send, sendall (waits within `timeout`:
socket.timeout after it; timeout 0.0 = BlockingIOError at once, None = no limit), settimeout,
gettimeout, setblocking, shutdown and close (both wake a greenlet waiting in recv or send
with gevent's cancel_wait_ex, as gevent's do), and the real socket's own for the rest
(getsockname, setsockopt, fileno, ...); the real socket's other I/O methods (recvfrom,
makefile, connect, ...: they would not wait) are an AttributeError rather than a surprise.

Why: gevent's socket costs ~33k instructions to make and close (a Python __init__ that asks
for the default timeout and makes two watchers, a closed-socket stand-in built at close, the
close deferred to a hub callback whenever a watcher has a callback, which the read watcher
socket_io keeps started always has), against ~4k here: the write watcher is made only for a
wait (a dial still in progress, a send the kernel did not take whole), and close stops an
idle read watcher and closes the descriptor at once. A SOCKS5 session has two connections.
The read watcher of a closed socket goes to the next one (IDLE_WATCHERS kept) when nothing can
reach it any more: stopped, no greenlet waiting on it, no cancel of shutdown() queued in the hub.
"""
import _socket
import time

from gevent import get_hub
from gevent._socketcommon import cancel_wait_ex    # what gevent's socket close/shutdown throw

from . import socket_io

_SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
_SHUT_RD, _SHUT_WR = _socket.SHUT_RD, _socket.SHUT_WR
# Read watchers of closed LeanSockets kept for the next ones (at most this many): a new gevent io
# watcher checks its descriptor with an fcntl() and costs ~2k instructions to make and free;
# giving a stopped one the next descriptor costs neither.
IDLE_WATCHERS = 64
_idle_watchers = []
# The real socket's I/O methods that gevent's socket makes wait and this one does not offer.
_NOT_HERE = frozenset(("recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into", "sendto", "sendmsg",
                       "sendfile", "makefile", "accept", "connect", "connect_ex", "dup", "detach"))


def accepted(fd, family, type, proto):
    """The LeanSocket of a descriptor accept() returned (made non-blocking here)."""
    raw = _socket.socket(family, type, proto, fd)
    raw.setblocking(False)
    return LeanSocket(raw)


def dialling(family):
    """A new TCP LeanSocket, not connected yet (outbound.py connects it)."""
    if _SOCK_NONBLOCK:
        return LeanSocket(_socket.socket(family, _socket.SOCK_STREAM | _SOCK_NONBLOCK))
    raw = _socket.socket(family, _socket.SOCK_STREAM)
    raw.setblocking(False)
    return LeanSocket(raw)


class LeanSocket:
    __slots__ = ("_sock", "_read_event", "_write", "timeout", "hub", "_cancelled", "__weakref__")

    def __init__(self, raw):
        self._sock = raw                    # non-blocking
        self.hub = hub = get_hub()
        loop = hub.loop
        watcher = _idle_watchers.pop() if _idle_watchers else None
        if watcher is not None and watcher.loop is loop:
            watcher.fd = raw.fileno()       # stopped: libev lets it take another descriptor
        else:
            watcher = loop.io(raw.fileno(), 1)
        self._read_event = watcher
        self._write = None
        self.timeout = None
        self._cancelled = False             # a cancel_wait of the read watcher may be queued

    @property
    def _write_event(self):
        """The write watcher, made at its first wait (most connections never wait to write)."""
        watcher = self._write
        if watcher is None:
            if self._read_event is None:    # closed: as gevent's closed socket has none
                return None
            watcher = self._write = self.hub.loop.io(self._sock.fileno(), 2)
        return watcher

    def __getattr__(self, name):            # getpeername, getsockopt, family, ...: the real socket's
        if name in _NOT_HERE:
            # The real socket's would not wait (it is non-blocking): say so, loudly.
            raise AttributeError("LeanSocket has no %s (recv, recv_into, send, sendall do)" % name)
        return getattr(self._sock, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return "<LeanSocket %r>" % (self._sock,)

    def fileno(self):
        return self._sock.fileno()

    def getsockname(self):
        return self._sock.getsockname()

    def setsockopt(self, *args):
        self._sock.setsockopt(*args)

    # -- timeouts, as gevent's socket keeps them ------------------------------------------
    def settimeout(self, seconds):
        if seconds is not None:
            seconds = float(seconds)
            if seconds < 0.0:
                raise ValueError("Timeout value out of range")
        self.timeout = seconds

    def gettimeout(self):
        return self.timeout

    def setblocking(self, flag):
        self.timeout = None if flag else 0.0

    # -- I/O --------------------------------------------------------------------------------
    def recv(self, size, flags=0):
        raw = self._sock
        while True:
            try:
                return raw.recv(size, flags)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
                socket_io.wait_readable(self, self.timeout)

    def recv_into(self, buffer, nbytes=0, flags=0):
        raw = self._sock
        while True:
            try:
                return raw.recv_into(buffer, nbytes, flags)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
                socket_io.wait_readable(self, self.timeout)

    def send(self, data, flags=0):
        raw = self._sock
        while True:
            try:
                return raw.send(data, flags)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
                socket_io.wait_writable(self, self.timeout)

    def sendall(self, data):
        """All of data, each wait within what is left of `timeout` (gevent's sendall)."""
        raw = self._sock
        view = memoryview(data).cast("B")
        timeout = self.timeout
        end = None if not timeout else time.monotonic() + timeout
        while view:
            try:
                view = view[raw.send(view):]
                continue
            except BlockingIOError:
                if timeout == 0.0:
                    raise
            left = None
            if end is not None:
                left = end - time.monotonic()
                if left <= 0.0:
                    raise _socket.timeout("timed out")
            socket_io.wait_writable(self, left)

    # -- the end ------------------------------------------------------------------------------
    def shutdown(self, how):
        hub = self.hub
        if how != _SHUT_WR:
            self._cancelled = True          # the hub may throw through this watcher later
            hub.cancel_wait(self._read_event, cancel_wait_ex)
        if how != _SHUT_RD and self._write is not None:
            hub.cancel_wait(self._write, cancel_wait_ex)
        self._sock.shutdown(how)

    def close(self):
        """Close now; a greenlet waiting on this socket gets cancel_wait_ex (gevent's close).
        The real socket stays, closed: every later call on it is OSError(EBADF)."""
        reader = self._read_event
        if reader is None:
            return
        writer = self._write
        self._read_event = self._write = None
        if getattr(getattr(reader.callback, "__self__", None), "waiting", True) is None:
            reader.stop()                   # socket_io's kept watcher, nobody waiting on it
        if reader.callback is None and writer is None and not self._cancelled:
            # Stopped (so neither active nor pending), nobody waits on it and no cancel_wait of
            # the hub can reach it later: the next LeanSocket may have it.
            if len(_idle_watchers) < IDLE_WATCHERS:
                _idle_watchers.append(reader)
            else:
                reader.close()
            self._sock.close()
            return
        # Watchers without a callback are closed at once and so is the socket; one a greenlet
        # waits on gets the error first, from the hub (gevent's own way).
        self.hub.cancel_waits_close_and_then((reader, writer), cancel_wait_ex, self._sock.close)

    @property
    def closed(self):
        return self._read_event is None

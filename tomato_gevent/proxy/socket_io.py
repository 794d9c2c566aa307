"""recv and send for the proxy's per-request path: what gevent's socket methods do, with less
of their Python layer per call. gevent glue, no protocol.

    recv(sock, size, seconds)       at most size bytes, b"" at EOF; socket.timeout when nothing
                                    came for `seconds` (a wait starts only on EAGAIN; None:
                                    no limit, no timer)
    send_all(sock, data)            one send(); the rest, if the kernel took less, with gevent's
                                    sendall (its waits and the socket's own timeout)
    wait_writable(sock, seconds)    for a connect() in progress: on the socket's own write
                                    watcher (gevent's wait_write makes a new watcher, whose
                                    set-up checks the descriptor with an fcntl, and a Timeout)

Why: gevent's socket.recv/send are Python methods around the real socket's (a frame and a
wrapper per call), and every wait with a timeout builds a gevent Timeout: a Python object, its
own timer watcher and about ten Python calls to start, enter, leave and close it, two hub
switches aside. Here a wait is one timer watcher whose callback throws socket.timeout into the
waiting greenlet, exactly as that Timeout would, around gevent's own hub.wait on the socket's
own read watcher (so sock.close() from elsewhere still wakes it, as gevent's waits do).

Only for gevent sockets (`_sock` is the real socket, `_read_event` its watcher: gevent's
socket layout since 1.0); anything else goes through its own recv/sendall.

Tried and dropped: waiting before the first recv of an answer (the request went out a moment
ago). Under make bench's load (bench/proxy_load_counts.py) the answer was already there for
about one request in four, and each of those paid a hub round trip (two switches, an
epoll_ctl) to save the others an EAGAIN recv: 6.31 -> 6.03 syscalls, 2.65 -> 3.23 switches
per request, no clear gain.
"""
from gevent import get_hub, getcurrent, socket

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


def recv(sock, size, seconds):
    try:
        raw = sock._sock
    except AttributeError:
        sock.settimeout(seconds)
        return sock.recv(size)
    while True:
        try:
            return raw.recv(size)
        except BlockingIOError:
            pass
        _wait(sock._read_event, seconds)


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

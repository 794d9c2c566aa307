"""The TCP transport: sealed datagrams framed on TCP connections (framing.py), for networks
that drop or throttle UDP.

  listening     every side accepts on -la (TCP, same port number as UDP would use)
  dialling      a side with -pa also connects to the peer (directly, or through an HTTP
                proxy's CONNECT tunnel, --http-proxy: http_connect.py) whenever it has no
                connection to send on, or when the one it sends on is an incoming one that
                goes unanswered (connections.py); after a failure or a lost connection it waits
                BACKOFF_MIN_SECONDS, doubling up to BACKOFF_MAX_SECONDS, back to the
                minimum once a connection has worked (carried an authenticated
                datagram, or lasted BACKOFF_MAX_SECONDS). The side that accepts a
                connection answers its first authenticated datagram with a keepalive when
                the connection becomes current, so the dialler's connection is
                authenticated at once (a dialled connection that carries nothing
                authentic is closed after UNTRUSTED_SECONDS, as an accepted one is)
  trust, choice which connections are kept, closed and sent on: connections.py
  receive       the transport's fileno() is an epoll fd holding the listening socket
                and every connection (the scheduler waits on it as on a UDP socket);
                receive() accepts, reads large chunks into each connection's
                FrameSplitter and delivers every complete frame, without a copy
  send          the frames of one batch go out in one sendmsg (header, datagram,
                header, ...); TCP_NODELAY, as the batch is already what there is to
                send. What the kernel does not take at once is queued on the
                connection (up to SEND_QUEUE_BYTES, beyond that frames are dropped
                as a full router queue drops them) and written by its flusher
                greenlet; a connection that takes nothing for STALL_SECONDS is closed.
Sealing, sessions, replay window, timestamps and keepalives are exactly those of UDP.
Socket buffers are left to the kernel's autotuning (it grows them to several MiB;
setting SO_RCVBUF/SO_SNDBUF would switch it off and cap them at rmem_max/wmem_max).
"""
import _socket
import errno
import logging
import os
import select
import time

import gevent
from gevent import get_hub
from gevent.core import WRITE
from gevent.event import Event
from gevent.monkey import get_original
from gevent.socket import wait_read, wait_write

from ..errors import BadPacket, RemoteProtocolError
from ..netutil import format_address
from .connections import ConnectionRules, ConnectionState
from .framing import FRAME_HEADER_SIZE, FrameSplitter, frame_header, frame_iovecs
from .http_connect import ProxyAuthRequired, connect_request, parse_connect_reply
from .keypair import DATA_TYPE, HEADER, OVERHEAD
from .sockets import open_bound_socket
from .throttle import LogThrottle
from .transport import DatagramTransport

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
STALL_SECONDS = 10.0                    # a connection that takes no data this long is closed
SEND_QUEUE_BYTES = 512 * 1024           # queued beyond the socket buffer, per connection
USER_TIMEOUT_MS = 20000                 # TCP_USER_TIMEOUT: unacknowledged data this long = dead peer
HOUSEKEEPING_SECONDS = 0.5
RECEIVE_BUFFER_BYTES = 256 * 1024       # per connection: several frames per recv
RECEIVES_PER_DRAIN = 16                 # recv calls per connection per drain
ACCEPTS_PER_DRAIN = 64
ACCEPT_PAUSE_SECONDS = 1.0              # after accept() failed (out of fds): retry then
LISTEN_BACKLOG = 128
PROXY_REPLY_CHUNK = 4096
LOG_INTERVAL_SECONDS = 10.0             # connected/lost/reconnecting lines: at most LOG_BURST
LOG_BURST = 6                           # of them per peer host in this interval (then DEBUG)



def open_tcp_listener(address):
    """Listening non-blocking TCP socket for a sockaddr tuple (dual-stack for v6)."""
    reuse = (_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1, True)   # a restart finds the port in TIME_WAIT
    return open_bound_socket(address, _socket.SOCK_STREAM, "listen on TCP", [reuse], LISTEN_BACKLOG)


def _tune(sock):
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    try:
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    except (AttributeError, OSError):
        pass


class Connection(ConnectionState):
    def __init__(self, sock, peer, outgoing, now):
        super().__init__(outgoing, now)
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        # Large enough for several frames per recv; pages never written are never committed
        # (the allocation is mmap'ed), so an untrusted connection costs at most its budget.
        self.splitter = FrameSplitter(RECEIVE_BUFFER_BYTES)
        self.pending = bytearray()          # accepted for sending, not yet taken by the kernel
        self.flusher = None
        self.closed = Event()
        self.writable = get_hub().loop.io(self.fd, WRITE)

    def __repr__(self):
        return "<%s %s>" % ("to" if self.outgoing else "from", format_address(self.peer))


class TcpTransport(DatagramTransport):
    """Listens on one TCP socket, dials peer_address if given (see the module docstring)."""

    name = "tcp"
    max_batch_bytes = 256 * 1024

    def __init__(self, listener, peer_address=None, mono=time.monotonic, http_proxy=None, connect_target=None,
                 keep_outgoing=lambda: True, drops=None, proxy_authorization=None):
        """http_proxy: sockaddr of an HTTP proxy to dial through (CONNECT connect_target,
        the peer's (host, port) as the user wrote it: the proxy resolves names), with
        proxy_authorization (Proxy-Authorization's value) if it wants credentials.
        keep_outgoing: the crossed-connection tie-break (connections.py)."""
        super().__init__(log, drops)
        self.listener = listener
        self.peer_address = peer_address
        self.http_proxy = http_proxy
        self.connect_target = connect_target
        self.proxy_authorization = proxy_authorization
        self.mono = mono
        self.rules = ConnectionRules(keep_outgoing=keep_outgoing)
        self._by_fd = {}
        self.connections_opened = 0
        self._epoll = get_original("select", "epoll")()
        self._epoll.register(listener.fileno(), select.EPOLLIN)
        self._changed = Event()             # a connection closed: the dialler re-checks
        self._greenlets = []
        self._announce = None
        self._events = LogThrottle(log, interval=LOG_INTERVAL_SECONDS, level=logging.INFO,
                                           burst=LOG_BURST)

    # -- interface ---------------------------------------------------------------------
    def fileno(self):
        return self._epoll.fileno()

    def local_address(self):
        return self.listener.getsockname()

    def describe(self, source):
        if isinstance(source, Connection):
            return "%s (TCP)" % format_address(source.peer)
        return format_address(source)

    @property
    def connection_count(self):
        return len(self._by_fd)

    def start(self, announce):
        self._announce = announce
        if self.peer_address is not None:
            self._greenlets.append(gevent.spawn(self._dial_forever))
        self._greenlets.append(gevent.spawn(self._housekeeping))

    def peer_moved(self, address):
        if self.peer_address is not None:       # a dialling side dials the new address from now on
            self.peer_address = address

    def close(self):
        gevent.killall(self._greenlets)
        for conn in list(self._by_fd.values()):
            self._close(conn, "shutting down", quiet=True)
        self._epoll.close()
        self.listener.close()

    # -- receive -------------------------------------------------------------------------
    def receiver(self, deliver, wall=time.time, mono=time.monotonic):
        """receive(): accept new connections, read each readable connection (up to
        RECEIVES_PER_DRAIN chunks), deliver every complete frame; True when drained."""
        poll, listen_fd, by_fd, rules, drops = self._epoll.poll, self.listener.fileno(), self._by_fd, \
            self.rules, self.drops
        unpack_header = HEADER.unpack_from

        def header_of(datagram):
            """(receiver index, counter) of a data datagram: its freshness (connections.py); None
            for a handshake message that completed a handshake (fresh: it cannot be replayed)."""
            return unpack_header(datagram)[2:] if datagram[0] == DATA_TYPE else None

        def receive():
            drained = True
            for fd, _ in poll(0):
                if fd == listen_fd:
                    self._accept()
                    continue
                conn = by_fd.get(fd)
                if conn is None:
                    continue
                sock, splitter = conn.sock, conn.splitter
                for _ in range(RECEIVES_PER_DRAIN):
                    try:
                        n = sock.recv_into(splitter.free())
                    except BlockingIOError:
                        break
                    except OSError as e:
                        self._close(conn, e.strerror)
                        break
                    if not n:
                        self._close(conn, "closed by the peer")
                        break
                    splitter.filled(n)
                    if not conn.authenticated and rules.received(conn, n):
                        drops["untrusted connection"] += 1
                        self._close(conn, "no authenticated datagram in %d bytes" % rules.untrusted_bytes)
                        break
                    now_mono = mono()
                    now_ms = int(wall() * 1000)
                    newest = None
                    try:
                        for datagram in splitter.frames():
                            result = deliver(datagram, conn, now_ms, now_mono)
                            if result:
                                if conn.authenticated and rules.current is conn:
                                    conn.last_authenticated = now_mono      # the usual case, cheaply
                                    newest = datagram
                                else:
                                    self._authenticated(conn, now_mono, header_of(datagram))
                            elif result is False and rules.refused(conn):
                                drops["untrusted connection"] += 1
                                self._close(conn, "a datagram that does not open")
                                break
                    except BadPacket as e:
                        drops[e.reason] += 1
                        self._close(conn, e.reason)
                    header = header_of(newest) if newest is not None else None
                    if header is not None:      # valid until the next recv: the newest so far
                        rules.heard(header)
                    if conn.closed.is_set():
                        break
                else:
                    drained = False
            return drained

        return receive

    def _accept(self):
        for _ in range(ACCEPTS_PER_DRAIN):
            try:
                fd, peer = self.listener._accept()
            except BlockingIOError:
                return
            except OSError as e:
                # e.g. EMFILE: the connection stays in the backlog, and the listening socket
                # stays readable; stop polling it for a while rather than spin on it.
                self.warn(("accept", e.errno), "cannot accept TCP connections: %s", e.strerror)
                self._epoll.unregister(self.listener.fileno())
                self._greenlets.append(gevent.spawn_later(ACCEPT_PAUSE_SECONDS, self._resume_accepting))
                return
            sock = _socket.socket(self.listener.family, _socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            _tune(sock)
            conn = self._add(sock, peer, outgoing=False)
            log.debug("TCP connection from %s (untrusted until a datagram opens)", format_address(peer))
            for oldest in self.rules.opened(conn):
                self.drops["untrusted connection"] += 1
                self._close(oldest, "too many untrusted connections")

    def _resume_accepting(self):
        self._greenlets = [g for g in self._greenlets if not g.dead]
        self._epoll.register(self.listener.fileno(), select.EPOLLIN)

    def _authenticated(self, conn, now, header):
        first = not conn.authenticated
        before = self.rules.current
        tell_peer = self.rules.authenticated(conn, now, header)
        if first:
            if conn.outgoing:
                log.debug("TCP connection to %s carries authenticated datagrams", format_address(conn.peer))
            else:
                self._events(conn.peer[0], "peer connected from %s (TCP)", format_address(conn.peer))
        if self.rules.current is not before:
            log.debug("sending on %r from now on", self.rules.current)
            if first and self.rules.current is conn and self._announce is not None:
                self._announce(dialled=False)   # the dialler's connection is answered (and trusted) at once
        if tell_peer and self._announce is not None:
            self._announce(dialled=False)       # a keepalive on the connection we keep (connections.py)

    # -- send ------------------------------------------------------------------------------
    def send(self, view, destination):
        conn = self.rules.current
        if conn is None:
            self.drops["no connection"] += 1
            return
        if len(view) > OVERHEAD:                # not a keepalive: an answer may be expected
            conn.sent_data += 1
        self._write(conn, [frame_header(len(view)), view], len(view) + FRAME_HEADER_SIZE, 1)

    def reply(self, view, source):
        """A handshake message on the connection it answers (an initiation arrives on a new,
        untrusted connection: the response goes back on it)."""
        if source.closed.is_set():
            self.drops["no connection"] += 1
            return
        self._write(source, [frame_header(len(view)), view], len(view) + FRAME_HEADER_SIZE, 1)

    def send_batch(self, view, size, segment, count, destination):
        conn = self.rules.current
        if conn is None:
            self.drops["no connection"] += count
            return
        conn.sent_data += count
        self._write(conn, frame_iovecs(view, size, segment), size + count * FRAME_HEADER_SIZE, count)

    def _write(self, conn, iovecs, total, count):
        """Never waits: a sender blocked on a full connection would stop reading too, and
        two sides doing that at once would wait for each other."""
        if conn.pending:                            # the flusher is behind: queue after it, or drop
            if len(conn.pending) >= SEND_QUEUE_BYTES:
                self.drops["send queue full"] += count
                return
            for piece in iovecs:
                conn.pending += piece
            self.sent += count
            self.sent_bytes += total
            return
        try:
            n = conn.sock.sendmsg(iovecs)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self.drops["send error"] += count
            self._close(conn, e.strerror)
            return
        self.sent += count
        self.sent_bytes += total
        if n < total:
            conn.pending += b"".join(iovecs)[n:]
            conn.flusher = gevent.spawn(self._flush, conn)

    def _flush(self, conn):
        """Write conn.pending as the socket takes it; the only greenlet waiting on conn.writable.
        A connection that takes nothing for STALL_SECONDS is closed."""
        stalled = OSError(errno.ETIMEDOUT, "took no data for %gs" % STALL_SECONDS)
        try:
            while conn.pending:
                try:
                    n = conn.sock.send(conn.pending)
                except BlockingIOError:
                    with gevent.Timeout(STALL_SECONDS, stalled):
                        get_hub().wait(conn.writable)
                    continue
                del conn.pending[:n]
        except OSError as e:
            conn.flusher = None
            if e is stalled:
                self.drops["send stalled"] += 1
            self._close(conn, e.strerror)
            return
        conn.flusher = None

    # -- connections -------------------------------------------------------------------------
    def _add(self, sock, peer, outgoing):
        conn = Connection(sock, peer, outgoing, self.mono())
        self.connections_opened += 1
        self._by_fd[conn.fd] = conn
        self._epoll.register(conn.fd, select.EPOLLIN)
        return conn

    def _close(self, conn, reason, quiet=False):
        if conn.closed.is_set():
            return
        conn.closed.set()
        was_current, trusted = self.rules.current is conn, conn.authenticated or conn.outgoing
        if conn.flusher is not None and conn.flusher is not gevent.getcurrent():
            conn.flusher.kill()       # it stops waiting on conn.writable before that is closed
        self._by_fd.pop(conn.fd, None)
        try:
            self._epoll.unregister(conn.fd)
        except (OSError, ValueError):
            pass
        conn.writable.close()
        conn.sock.close()
        self.rules.closed(conn)
        self._changed.set()
        if quiet:
            return
        if trusted and (was_current or conn.retire_at is None):
            self._events(conn.peer[0], "TCP connection %s %s lost: %s", "to" if conn.outgoing else "from",
                         format_address(conn.peer), reason)
        else:
            log.debug("closed TCP connection %r: %s", conn, reason)

    def _housekeeping(self):
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = self.mono()
            for conn in self.rules.expired(now):
                if conn.authenticated:
                    self._close(conn, "replaced by another connection")
                else:
                    self.drops["untrusted connection"] += 1
                    self._close(conn, "no authenticated datagram within %gs" % self.rules.untrusted_seconds)
            if self.peer_address is not None and self.rules.redial_wanted(now):
                self._changed.set()

    def _dial_forever(self):
        backoff = BACKOFF_MIN_SECONDS
        failures = 0                # connection attempts failed in a row
        dialled = None              # the connection made last, until a new dial is wanted
        via = "" if self.http_proxy is None else " via the HTTP proxy %s" % format_address(self.http_proxy)
        while True:
            while not self.rules.redial_wanted(self.mono()):   # a connection to send on that works
                self._changed.clear()
                self._changed.wait()
            peer = self.peer_address            # may change: a re-resolved -pa name (endpoints.PeerResolver)
            if dialled is not None:             # it was lost, or another one goes unanswered
                if dialled.authenticated or self.mono() - dialled.opened_at >= BACKOFF_MAX_SECONDS:
                    backoff = BACKOFF_MIN_SECONDS       # it worked: the next loss starts from the minimum
                if self.rules.current is None:
                    self._events(peer[0], "reconnecting to %s (TCP) in %.1fs", format_address(peer), backoff)
                else:
                    log.debug("the current TCP connection goes unanswered: dialling %s in %.1fs",
                              format_address(peer), backoff)
                dialled = None
                gevent.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            try:
                sock = self._connect(peer) if self.http_proxy is None else self._connect_via_proxy()
            except (OSError, RemoteProtocolError) as e:
                # The first failure of a streak and then one per BACKOFF_MAX_SECONDS at INFO.
                message = ("cannot connect to %s (TCP%s): %s; retrying in %.1fs", format_address(peer), via,
                           getattr(e, "strerror", None) or e, backoff)
                if isinstance(e, ProxyAuthRequired):
                    log.warning(*message)           # not a network hiccup: someone must act
                elif failures == 0 or backoff >= BACKOFF_MAX_SECONDS:
                    self._events(peer[0], *message)
                else:
                    log.debug(*message)
                failures += 1
                gevent.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            conn = self._add(sock, peer, outgoing=True)
            if self.rules.opened(conn):
                self._close(conn, "another connection became current meanwhile", quiet=True)
                continue
            failures = 0
            dialled = conn
            self._events(peer[0], "connected to %s (TCP%s)", format_address(peer), via)
            if self._announce is not None:
                self._announce()        # the peer learns this connection (and our session) at once

    def _connect_via_proxy(self):
        """A connection to the peer through the HTTP proxy's CONNECT tunnel."""
        sock = self._connect(self.http_proxy)
        try:
            with gevent.Timeout(CONNECT_TIMEOUT_SECONDS, OSError(errno.ETIMEDOUT, "the HTTP proxy did not answer")):
                request = memoryview(connect_request(*self.connect_target, self.proxy_authorization))
                while request:
                    try:
                        request = request[sock.send(request):]
                    except BlockingIOError:
                        wait_write(sock.fileno())
                reply = bytearray()
                while True:
                    try:
                        chunk = sock.recv(PROXY_REPLY_CHUNK)
                    except BlockingIOError:
                        wait_read(sock.fileno())
                        continue
                    if not chunk:
                        raise OSError(errno.ECONNRESET, "the HTTP proxy closed the connection")
                    reply += chunk
                    length = parse_connect_reply(reply)
                    if length is not None:
                        break
            if length != len(reply):
                # The peer never speaks first on a new connection: this is not our peer.
                raise RemoteProtocolError("data after the HTTP proxy's answer")
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect(self, address):
        family = _socket.AF_INET6 if len(address) == 4 else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            _tune(sock)
            err = sock.connect_ex(address)
            if err == errno.EINPROGRESS:
                with gevent.Timeout(CONNECT_TIMEOUT_SECONDS, OSError(errno.ETIMEDOUT, "connection timed out")):
                    wait_write(sock.fileno())
                err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
        except BaseException:
            sock.close()
            raise
        return sock

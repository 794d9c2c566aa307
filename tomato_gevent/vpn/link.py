"""The running link: UDP socket, the two packet greenlets, housekeeping, shutdown.

Flow (one greenlet each, listed in flow order):
  _tun_to_udp   read the tun (drain until EAGAIN, bounded batch), seal, send to the peer
  _udp_to_tun   receive, Receiver.open_into (auth, -pvt, replay, session), learn the
                address (dynamic mode), write the payload to the tun
  _housekeeping once a second: forget a stale dynamic address, send keepalives
Protocol decisions are made in session.py / packet.py; this file only moves bytes,
counts drops and decides when to stop. A refused datagram is counted by reason,
logged at DEBUG and never answered. Send errors (ICMP unreachable, no route)
are counted and warned about at most every WARN_INTERVAL_SECONDS; the loop goes on.
"""
import _socket
import collections
import logging
import os
import time

import gevent
from gevent import get_hub
from gevent.event import Event

from ..errors import BadPacket, TomatoError
from .packet import HEADER_SIZE, MAX_DATAGRAM_SIZE, TAG_SIZE, TIMESTAMP_SIZE, CounterExhausted
from .session import new_sealer

log = logging.getLogger(__name__)

SOCKET_BUFFER_BYTES = 4 * 1024 * 1024   # absorbs bursts; rmem_max/wmem_max permitting
DRAIN_BATCH = 64                        # packets per wakeup before yielding to the other direction
HOUSEKEEPING_SECONDS = 1.0
WARN_INTERVAL_SECONDS = 10.0
KEEPALIVE_SECONDS = 25.0                # below common NAT UDP timeouts (30 s)

_READ, _WRITE = 1, 2


def open_udp_socket(address):
    """Bound non-blocking UDP socket for a sockaddr tuple (IPv4 or IPv6, dual-stack for v6)."""
    family = _socket.AF_INET6 if len(address) == 4 else _socket.AF_INET
    # The C socket type: the gevent wrapper would add a Python layer per packet;
    # waiting is done explicitly with io watchers below.
    sock = _socket.socket(family, _socket.SOCK_DGRAM)
    try:
        if family == _socket.AF_INET6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
        for option in (_socket.SO_SNDBUF, _socket.SO_RCVBUF):
            try:
                sock.setsockopt(_socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            except OSError:
                pass
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise TomatoError("cannot bind UDP %s: %s" % (format_address(address), e.strerror)) from None
    sock.setblocking(False)
    return sock


def format_address(address):
    host, port = address[0], address[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


class Link:
    def __init__(self, tun, sock, password_key, receiver, endpoint, keepalive=KEEPALIVE_SECONDS,
                 backend=None):
        self.tun = tun
        self.sock = sock
        self.receiver = receiver
        self.endpoint = endpoint
        self.keepalive = keepalive
        self._password_key = password_key
        self._backend_kw = {} if backend is None else {"backend": backend}
        self.sealer = self._new_sealer()
        self.drops = collections.Counter()
        self.sent = self.received = 0
        self._warned = {}
        self._stopped = Event()
        self._greenlets = []
        self._error = None
        loop = get_hub().loop
        self._sock_read = loop.io(sock.fileno(), _READ)
        self._sock_write = loop.io(sock.fileno(), _WRITE)

    def _new_sealer(self, after=None):
        random16 = int.from_bytes(os.urandom(2), "big")
        return new_sealer(self._password_key, int(time.time() * 1000), random16, after=after,
                          **self._backend_kw)

    # -- lifecycle ------------------------------------------------------------------
    def serve_forever(self):
        """Run until stop() or a fatal device error (raised as TomatoError)."""
        for loop in (self._tun_to_udp, self._udp_to_tun, self._housekeeping):
            g = gevent.spawn(loop)
            g.link_exception(self._crashed)
            self._greenlets.append(g)
        try:
            self._stopped.wait()
        finally:
            gevent.killall(self._greenlets)
            self._sock_read.close()
            self._sock_write.close()
        if self._error is not None:
            raise self._error

    def stop(self):
        self._stopped.set()

    def _crashed(self, greenlet):
        e = greenlet.exception
        self._error = e if isinstance(e, TomatoError) else TomatoError("link failed: %r" % (e,))
        self._stopped.set()

    def stats(self):
        drops = ", ".join("%s: %d" % kv for kv in sorted(self.drops.items())) or "none"
        return "sent %d, received %d packets; dropped %s" % (self.sent, self.received, drops)

    # -- helpers ---------------------------------------------------------------------
    def _warn_limited(self, key, msg, *args):
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_INTERVAL_SECONDS) >= WARN_INTERVAL_SECONDS:
            self._warned[key] = now
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)

    def _send(self, view, address):
        """sendto, waiting once if the socket buffer is full; errors counted, never fatal."""
        while True:
            try:
                self.sock.sendto(view, address)
                self.sent += 1
                return
            except BlockingIOError:
                get_hub().wait(self._sock_write)
            except OSError as e:
                self.drops["send error"] += 1
                self._warn_limited(("send", e.errno), "cannot send to %s: %s",
                                   format_address(address), e.strerror)
                return

    def _seal_into(self, out, plain):
        try:
            return self.sealer.seal_into(out, plain, int(time.time() * 1000))
        except CounterExhausted:
            self.sealer = self._new_sealer(after=self.sealer.session_id)
            log.info("counter exhausted, started a new session")
            return self.sealer.seal_into(out, plain, int(time.time() * 1000))

    def send_keepalive(self):
        address = self.endpoint.address
        if address is None:
            return
        out = bytearray(HEADER_SIZE + TIMESTAMP_SIZE + TAG_SIZE)
        size = self._seal_into(out, bytearray(TIMESTAMP_SIZE))
        self._send(memoryview(out)[:size], address)

    # -- the loops ------------------------------------------------------------------
    def _tun_to_udp(self):
        tun_fd = self.tun.fd
        plain = bytearray(MAX_DATAGRAM_SIZE)        # [timestamp slot][IP packet]
        plain_view = memoryview(plain)
        payload_view = [plain_view[TIMESTAMP_SIZE:]]
        out = bytearray(MAX_DATAGRAM_SIZE + HEADER_SIZE + TAG_SIZE)
        out_view = memoryview(out)
        readv = os.readv
        endpoint = self.endpoint
        while True:
            for _ in range(DRAIN_BATCH):
                try:
                    n = readv(tun_fd, payload_view)
                except BlockingIOError:
                    self.tun.wait_readable()
                    break
                except OSError as e:
                    raise TomatoError("reading %s failed: %s" % (self.tun.name, e.strerror)) from None
                address = endpoint.address
                if address is None:
                    self.drops["no peer address yet"] += 1
                    continue
                size = self._seal_into(out, plain_view[:TIMESTAMP_SIZE + n])
                self._send(out_view[:size], address)
            else:
                gevent.sleep(0)     # a full batch: let the other direction run

    def _udp_to_tun(self):
        tun_fd = self.tun.fd
        buf = bytearray(MAX_DATAGRAM_SIZE + 1)          # +1: oversize is detectable
        view = memoryview(buf)
        plain = bytearray(MAX_DATAGRAM_SIZE)
        plain_view = memoryview(plain)
        recvfrom_into = self.sock.recvfrom_into
        receiver, endpoint = self.receiver, self.endpoint
        wall, mono = time.time, time.monotonic
        debug = log.isEnabledFor(logging.DEBUG)
        while True:
            for _ in range(DRAIN_BATCH):
                try:
                    size, address = recvfrom_into(buf)
                except BlockingIOError:
                    get_hub().wait(self._sock_read)
                    break
                except OSError as e:    # e.g. ECONNREFUSED reported from an earlier send
                    self.drops["receive error"] += 1
                    log.debug("receive error: %s", e.strerror)
                    continue
                now_mono = mono()
                session_before = receiver.session_id
                try:
                    n = receiver.open_into(view[:size], plain, int(wall() * 1000), now_mono)
                except BadPacket as e:
                    self.drops[e.reason] += 1
                    if debug:
                        log.debug("dropped %d-byte datagram from %s: %s", size, format_address(address), e.reason)
                    continue
                self.received += 1
                if receiver.session_id != session_before:
                    log.debug("peer session %016x accepted (from %s)", receiver.session_id, format_address(address))
                if endpoint.dynamic and endpoint.learn(address, now_mono):
                    log.debug("peer address is now %s", format_address(address))
                if n:
                    try:
                        os.write(tun_fd, plain_view[TIMESTAMP_SIZE:TIMESTAMP_SIZE + n])
                    except BlockingIOError:
                        self.drops["tun full"] += 1
                    except OSError as e:
                        # e.g. EINVAL for a payload that is not an IP packet: the peer's problem.
                        self.drops["tun write error"] += 1
                        self._warn_limited(("tun", e.errno), "writing %s failed: %s", self.tun.name, e.strerror)
            else:
                gevent.sleep(0)

    def _housekeeping(self):
        self.send_keepalive()     # announce our (new) session right away: a restarted peer recovers
        last_counter = self.sealer.counter
        idle_since = time.monotonic()
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = time.monotonic()
            if self.endpoint.expire(now):
                log.debug("forgot peer address: nothing authentic for %gs", self.endpoint.forget_after)
            if self.sealer.counter != last_counter:
                last_counter = self.sealer.counter
                idle_since = now
            elif self.keepalive and now - idle_since >= self.keepalive:
                self.send_keepalive()
                last_counter = self.sealer.counter
                idle_since = now


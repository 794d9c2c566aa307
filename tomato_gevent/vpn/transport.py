"""The datagram transport interface: what the link needs from the network side.

A transport carries sealed datagrams (packet.py) between the two hosts; the link
never looks inside it. udp.py is the first implementation (one datagram per UDP
datagram, GSO/GRO batching), tcp.py the second (length-prefixed frames on TCP
connections). A transport provides:

  fileno()          an fd that polls readable when receive() may find datagrams
                    (the scheduler waits on it, in the hub or in its own epoll)
  receiver(deliver) -> receive(): take in what arrived until the fd is drained
                    (returns True) or a batch limit is reached (returns False), and
                    call deliver(datagram, source, now_ms, now_mono) for each
                    datagram; deliver returns True when the datagram was authentic.
                    source is whatever send() accepts as destination.
  send(view, destination)
  send_batch(view, size, segment, count, destination)
                    count sealed datagrams back to back in view[:size], each
                    segment bytes long except possibly the last. Never waits for
                    the peer (UDP waits for room in its socket buffer, TCP queues
                    and drops beyond a bound); errors are counted, never raised.
  max_batch_bytes, max_batch_count
                    the largest batch send_batch takes (the scheduler cuts there)
  describe(source)  the source/destination as text, for the log
  start(announce)   called once by the running link; announce() sends a keepalive (a
                    transport that opens a connection calls it, so the peer learns
                    the connection at once). close(): once, after the link stopped.
  sent              datagrams handed to the kernel so far.
  sent_bytes        their bytes (whole sealed datagrams), counted per send or batch.

Constructor arguments every transport takes (assembly.py passes them):
  drops             collections.Counter, reason -> count: refused datagrams and send
                    errors; the link's drop counter, given to the Link as well.
The TCP transport also takes keep_outgoing: () -> bool, the crossed-connection
tie-break (session.Receiver.keeps_outgoing, a rule both sides evaluate alike).
"""
import _socket
import collections
import logging
import time

from ..errors import TomatoError
from ..netutil import format_address
from .status import LogThrottle


WARN_INTERVAL_SECONDS = 10.0


def open_bound_socket(address, sock_type, describe, options=(), listen_backlog=None):
    """Non-blocking socket of sock_type bound to a sockaddr tuple (IPv4, or dual-stack IPv6).

    options: (level, name, value, required) set before bind; an optional one the kernel
    refuses keeps its default. listen_backlog: listen() after bind. An OSError on the way
    closes the socket and becomes a TomatoError "cannot <describe> <address>: <reason>"."""
    family = _socket.AF_INET6 if len(address) == 4 else _socket.AF_INET
    sock = _socket.socket(family, sock_type)
    try:
        if family == _socket.AF_INET6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
        for level, name, value, required in options:
            try:
                sock.setsockopt(level, name, value)
            except OSError:
                if required:
                    raise
        sock.bind(address)
        if listen_backlog is not None:
            sock.listen(listen_backlog)
    except OSError as e:
        sock.close()
        raise TomatoError("cannot %s %s: %s" % (describe, format_address(address), e.strerror)) from None
    sock.setblocking(False)
    return sock


class DatagramTransport:
    """Base of the transports: the interface above (sent, drops) and the no-op start."""

    max_batch_bytes = 65000
    max_batch_count = 64

    def __init__(self, logger, drops=None):
        self.drops = collections.Counter() if drops is None else drops
        self.warn = RateLimitedWarnings(logger)
        self.sent = 0
        self.sent_bytes = 0

    def fileno(self):
        raise NotImplementedError

    def receiver(self, deliver):
        raise NotImplementedError

    def send(self, view, destination):
        raise NotImplementedError

    def send_batch(self, view, size, segment, count, destination):
        raise NotImplementedError

    def describe(self, source):
        raise NotImplementedError

    def start(self, announce):
        """Called once from the running link (greenlets may be spawned here)."""

    def peer_moved(self, address):
        """The peer's fixed address is now address (datagrams carry their destination)."""

    def close(self):
        raise NotImplementedError


class RateLimitedWarnings:
    """warn(key, msg, *args): at most `burst` WARNINGs (or `level`) per key within any
    WARN_INTERVAL_SECONDS (status.LogThrottle decides), DEBUG beyond that.

    For errors that repeat per packet (send failures, tun write errors: burst 1) and for
    events that can flap (a connection lost and made again: a small burst, so that one
    "lost, reconnecting, connected" sequence is told in full): the log says that it
    happens without saying it a thousand times a second.
    """

    def __init__(self, logger, monotonic=time.monotonic, interval=WARN_INTERVAL_SECONDS, level=logging.WARNING,
                 burst=1):
        self._log = logger
        self._monotonic = monotonic
        self._level = level
        self._throttle = LogThrottle(interval, burst)

    def __call__(self, key, msg, *args):
        if self._throttle.admit(key, self._monotonic()) is None:
            self._log.debug(msg, *args)
        else:
            self._log.log(self._level, msg, *args)

"""gevent glue: an ICMP socket, a send schedule, a receiving greenlet, one log line per event.

Socket choice, as iputils: first an unprivileged ICMP datagram socket (SOCK_DGRAM +
IPPROTO_ICMP/ICMPV6; allowed when the caller's group is in net.ipv4.ping_group_range). The
kernel then picks the identifier, delivers only replies carrying it (from any address), and
reports ICMP errors through the socket error queue (IP_RECVERR). Else a raw socket (root /
CAP_NET_RAW): it sees every ICMP message of the host. Either way replies and errors are
matched by identifier, sequence and address (tracker.py) and all other traffic is ignored.

Flow: `Pinger.run()` sends on a fixed schedule (the first request at once), expires requests
older than the timeout, and returns when the count is done and nothing is outstanding, or
when stop() was called (SIGINT/SIGTERM). `_receive_loop` runs in its own greenlet: it waits
for the socket, drains it, parses (icmp.py), matches (tracker.py) and logs.
"""
import dataclasses
import errno
import logging
import random
import socket
import struct
import time

import gevent
import gevent.event
import gevent.socket

from ..errors import BadPacket, ConfigError
from ..netutil import ip_literal
from ..peername import PeerName, Unresolved, getaddrinfo
from . import icmp
from .tracker import DifferentAddress, Duplicate, EchoTracker, Failed, Late, Lost, Reply

log = logging.getLogger(__name__)

# -- socket options not (all) exported by Python's socket module (linux/in.h, in6.h, icmp.h)
IP_RECVERR = 11
IP_RECVTTL = 12
IP_TTL = 2
IPV6_RECVERR = 25
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1

# -- implementation constants
RECEIVE_BUFFER_BYTES = 1 << 16
ANCILLARY_BUFFER_BYTES = 512
MAX_READS_PER_WAKEUP = 64  # bounded drain, so a flood cannot starve the sender
MIN_USER_INTERVAL_SECONDS = 0.2  # iputils refuses shorter intervals to non-root users

DATAGRAM, RAW = "datagram", "raw"
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
PROTOCOL = {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}
WILDCARD = {4: "0.0.0.0", 6: "::"}


# -- resolution ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """What we ping: the name as given, its address (ipaddress object) and the sockaddr to send to."""

    host: str
    address: object
    sockaddr: tuple

    @property
    def version(self):
        return self.address.version

    @property
    def numeric(self):
        return ip_literal(self.host) is not None


def resolve(host, version=None):
    """HOST (address or name) -> Target; version 4/6 restricts the family. ConfigError if impossible."""
    family = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[version]
    literal = ip_literal(host)
    if literal is not None and version is not None and literal.version != version:
        raise ConfigError("%s is an IPv%d address, but -%d was given" % (host, literal.version, version))
    infos = getaddrinfo(host, None, family, socket.AI_NUMERICHOST if literal is not None else 0)
    for info_family, _, _, _, sockaddr in infos:
        if info_family in (socket.AF_INET, socket.AF_INET6):
            address = ip_literal(sockaddr[0])
            return Target(host, address, (sockaddr[0], 0) + tuple(sockaddr[2:]))
    raise Unresolved("cannot resolve %s: no IPv%s address" % (host, version or "4/IPv6"))


# -- the socket ----------------------------------------------------------------
class IcmpSocket:
    """One non-blocking ICMP socket of one IP version, datagram or raw, with its identifier."""

    def __init__(self, sock, version, kind, ident):
        self.sock = sock
        self.version = version
        self.kind = kind
        self.ident = ident

    @classmethod
    def open(cls, version):
        """Datagram socket if allowed, else raw; ConfigError (exit 2) if neither is."""
        family, protocol = FAMILY[version], PROTOCOL[version]
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, protocol)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
                raise ConfigError("cannot open an ICMP socket: %s" % e.strerror) from None
            datagram_error = e
        else:
            return cls._setup(cls._setup_datagram, sock, version)
        try:
            sock = socket.socket(family, socket.SOCK_RAW, protocol)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise ConfigError(
                    "no permission for ICMP sockets: run as root, or add your group to "
                    "net.ipv4.ping_group_range (datagram socket: %s; raw socket: %s)"
                    % (datagram_error.strerror, e.strerror)) from None
            raise ConfigError("cannot open an ICMP socket: %s" % e.strerror) from None
        return cls._setup(cls._setup_raw, sock, version)

    @staticmethod
    def _setup(setup, sock, version):
        try:
            return setup(sock, version)
        except OSError as e:
            sock.close()
            raise ConfigError("cannot set up the ICMP socket: %s" % (e.strerror or e)) from None

    @classmethod
    def _setup_datagram(cls, sock, version):
        # Binding makes the kernel pick the identifier now, so we know it before sending.
        sock.bind((WILDCARD[version], 0))
        if version == 4:
            sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
            sock.setsockopt(socket.SOL_IP, IP_RECVTTL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.setblocking(False)
        return cls(sock, version, DATAGRAM, sock.getsockname()[1])

    @classmethod
    def _setup_raw(cls, sock, version):
        # Kernel-side filter: wake up only for echo replies and the errors we report.
        if version == 4:
            passed = {icmp.ICMP_ECHO_REPLY} | icmp.ERROR_TYPES[4]
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", _block_mask(passed, 32)[0]))
        else:
            passed = {icmp.ICMPV6_ECHO_REPLY} | icmp.ERROR_TYPES[6]
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *_block_mask(passed, 256)))
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.setblocking(False)
        # A raw socket has no port: pick an identifier unlikely to collide with another pinger's.
        return cls(sock, version, RAW, random.getrandbits(16))

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, packet, sockaddr):
        self.sock.sendto(packet, sockaddr)

    def receive_pending(self):
        """Everything readable now, without blocking: a list of (message, source, ttl).

        Malformed and unrelated packets are dropped here (debug log); `message` is what
        icmp.py parsed, `source` the sender's address, `ttl` the TTL/hop limit or None.
        """
        received = []
        for _ in range(MAX_READS_PER_WAKEUP):
            if self.kind == DATAGRAM:
                self._drain_error_queue(received)
            try:
                data, ancillary, _, address = self.sock.recvmsg(RECEIVE_BUFFER_BYTES, ANCILLARY_BUFFER_BYTES)
            except BlockingIOError:
                break
            except OSError as e:
                # A datagram socket also reports a queued ICMP error as a pending socket
                # error; its details are read from the error queue on the next turn.
                log.debug("socket error %s; reading the error queue", e.strerror)
                continue
            try:
                parsed = self._parse(data, ancillary, address)
            except BadPacket as e:
                log.debug("ignored a packet from %s: %s", address[0], e.reason)
                continue
            if parsed is not None:
                received.append(parsed)
        return received

    def _parse(self, data, ancillary, address):
        source = ip_literal(address[0])
        ttl = None
        if self.kind == RAW and self.version == 4:
            source, ttl, data = icmp.parse_ipv4_packet(data)
        else:
            for level, kind, value in ancillary:
                if (level, kind) in ((socket.SOL_IP, IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                    ttl = struct.unpack("=i", value[:4])[0]
        message = icmp.parse_icmp_message(self.version, data)
        return None if message is None else (message, source, ttl)

    def _drain_error_queue(self, received):
        while True:
            try:
                data, ancillary, _, address = self.sock.recvmsg(RECEIVE_BUFFER_BYTES, ANCILLARY_BUFFER_BYTES,
                                                                socket.MSG_ERRQUEUE)
            except OSError:  # EAGAIN: the queue is empty
                return
            # The entry's address is the failed request's destination (ip(7), IP_RECVERR).
            destination = ip_literal(address[0]) if address else None
            for level, kind, value in ancillary:
                if (level, kind) not in ((socket.SOL_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                    continue
                try:
                    message, offender = icmp.parse_extended_error(self.version, value, data, destination)
                except BadPacket as e:
                    log.debug("ignored an error-queue entry: %s", e.reason)
                    continue
                if message is not None:
                    received.append((message, offender, None))


def _block_mask(passed_types, bits):
    """ICMP_FILTER / ICMP6_FILTER bitmaps: a set bit blocks that type. Returns 32-bit words."""
    words = [0xFFFFFFFF] * (bits // 32)
    for kind in passed_types:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return words


# -- the pinger ----------------------------------------------------------------
class Pinger:
    def __init__(self, icmp_socket, target, interval, count=None, timeout=10.0, payload_size=56):
        self.icmp_socket = icmp_socket
        self.target = target
        # Resolved again after a loss or an error (resolve looked up at each call: tests replace it).
        self.name = PeerName(target.host, lambda host: resolve(host, target.version))
        self.interval = interval
        self.count = count
        self.timeout = timeout
        self.payload = icmp.make_payload(payload_size)
        self.tracker = EchoTracker(icmp_socket.ident, self.payload, timeout)
        self.started = None
        self.finished = None
        self._stopping = False
        self._resolve_before_next_send = False
        self._wakeup = gevent.event.Event()

    def stop(self):
        """Finish at the next turn of run() (signal handlers call this)."""
        self._stopping = True
        self._wakeup.set()

    @property
    def elapsed(self):
        return (self.finished or time.monotonic()) - self.started

    def run(self):
        """Ping until the count is done (and answered or timed out) or stop(); returns Statistics."""
        self.started = time.monotonic()
        receiver = gevent.spawn(self._receive_loop)
        receiver.link_exception(lambda _: self._wakeup.set())
        try:
            next_send = self.started
            while not self._stopping:
                self._wakeup.clear()
                now = time.monotonic()
                more_to_send = self.count is None or self.tracker.transmitted < self.count
                if more_to_send and now >= next_send:
                    self._send_one()
                    # A fixed schedule; after a stall (suspend, slow resolver) resume, don't burst.
                    next_send = max(next_send + self.interval, time.monotonic())
                    more_to_send = self.count is None or self.tracker.transmitted < self.count
                for event in self.tracker.expire(time.monotonic()):
                    self._report(event, None, None)
                if not more_to_send and not self.tracker.outstanding:
                    break
                deadlines = [d for d in (next_send if more_to_send else None, self.tracker.next_deadline())
                             if d is not None]
                self._wakeup.wait(max(0.0, min(deadlines) - time.monotonic()))
                if receiver.dead:
                    receiver.get()  # a bug in the receiving path: raise it here rather than ping on deaf
        finally:
            self.finished = time.monotonic()
            receiver.kill()
        return self.tracker.statistics()

    def _send_one(self):
        if self._resolve_before_next_send:
            self._resolve_before_next_send = False
            self._re_resolve()
        seq = self.tracker.start_request(time.monotonic(), self.target.address)
        packet = icmp.build_echo_request(self.target.version, self.icmp_socket.ident, seq, self.payload)
        try:
            self.icmp_socket.send(packet, self.target.sockaddr)
        except OSError as e:
            self.tracker.request_failed(seq)
            self._resolve_before_next_send = not self.target.numeric
            log.warning("icmp_seq=%d not sent: %s", seq, e.strerror or e)

    def _re_resolve(self):
        """After a failure, a name may point elsewhere now (dynamic DNS, a moved peer)."""
        try:
            fresh = self.name.moved(self.target)
        except ConfigError as e:
            log.warning("%s; still using %s", e, self.target.address)
            return
        if fresh is not None:
            log.info("%s now resolves to %s (was %s)", self.target.host, fresh.address, self.target.address)
            self.target = fresh

    def _receive_loop(self):
        fd = self.icmp_socket.fileno()
        while True:
            gevent.socket.wait_read(fd)
            for message, source, ttl in self.icmp_socket.receive_pending():
                event = self.tracker.receive(message, time.monotonic(), source)
                if event is None:
                    log.debug("ignored %s from %s (not one of ours)", type(message).__name__, source)
                    continue
                self._report(event, source, ttl)
            self._wakeup.set()

    def _report(self, event, source, ttl):
        """One log line per event, in iputils' words."""
        ttl_text = "" if ttl is None else " ttl=%d" % ttl
        if isinstance(event, Reply):
            line = "%d bytes from %s: icmp_seq=%d%s time=%.3f ms" % (
                event.size, source, event.seq, ttl_text, event.rtt * 1000)
            if event.payload_matches:
                log.info("%s", line)
            else:
                log.warning("%s (payload differs from the request)", line)
        elif isinstance(event, Duplicate):
            log.info("%d bytes from %s: icmp_seq=%d%s time=%.3f ms (DUP!)",
                     event.size, source, event.seq, ttl_text, event.rtt * 1000)
        elif isinstance(event, DifferentAddress):
            log.warning("%d bytes from %s: icmp_seq=%d%s (DIFFERENT ADDRESS! expected %s: ignored)",
                        event.size, source, event.seq, ttl_text, event.expected)
        elif isinstance(event, Late):
            log.info("%d bytes from %s: icmp_seq=%d%s time=%.3f ms (late: already counted as lost)",
                     event.size, source, event.seq, ttl_text, event.rtt * 1000)
        elif isinstance(event, Lost):
            self._resolve_before_next_send = not self.target.numeric
            log.warning("no reply to icmp_seq=%d within %gs", event.seq, self.timeout)
        elif isinstance(event, Failed):
            self._resolve_before_next_send = not self.target.numeric
            if source is None:
                log.warning("icmp_seq=%d %s", event.seq, event.message.reason)
            else:
                log.warning("From %s icmp_seq=%d %s", source, event.seq, event.message.reason)

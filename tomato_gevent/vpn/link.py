"""The running link: UDP socket, the packet greenlet, housekeeping, shutdown.

Flow (one greenlet each):
  _forward      moves packets both ways, draining whichever fd is readable:
    drain_tun   read the tun until EAGAIN (bounded batch), seal each packet straight
                into a send buffer, send the batch: one sendmsg with UDP_SEGMENT
                (GSO) per run of equal-size datagrams, or one sendto each
    drain_udp   receive until EAGAIN: recvmsg_into with UDP_GRO (the kernel hands
                over several datagrams at once, split by the gso_size control
                message) or recvfrom_into; Receiver.open_into each datagram (auth,
                -pvt, replay, session), learn the address (dynamic mode), write the
                payload to the tun -- with offloads, through TcpCoalescer, which
                writes consecutive TCP segments as one GSO packet (IFF_VNET_HDR) --
                then drain_tun at once: the answer to what was written is often there
    It waits in the gevent hub while the link is idle and in a native epoll_wait
    (at most WARM_INTERVAL_SECONDS, warming the path on each timeout) while packets
    flow: see _forward for why.
  _housekeeping once a second: forget a stale dynamic address, send keepalives
Each datagram on the wire is still exactly one sealed packet: offloads change the
number of system calls, not the protocol. They are used when the kernel accepts
them (probed at start; TOMATO_VPN_OFFLOAD=0 turns them off), with a plain
sendto/recvfrom fallback.

Protocol decisions are made in session.py / packet.py; this file moves bytes,
counts drops and decides when to stop. A refused datagram is counted by reason,
logged at DEBUG and never answered. Send errors (ICMP unreachable, no route) are
counted and warned about at most every WARN_INTERVAL_SECONDS; the loops go on.
"""
import _socket
import collections
import errno
import logging
import os
import struct
import time

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.hub import Waiter
from gevent.monkey import get_original

from ..errors import BadPacket, TomatoError
from ..netutil import format_address
from .coalesce import VNET_HDR_SIZE, TcpCoalescer
from .packet import HEADER_SIZE, MAX_DATAGRAM_SIZE, OVERHEAD, TAG_SIZE, TIMESTAMP_SIZE, CounterExhausted
from .report import DIAGNOSED_REASONS, LinkReport
from .session import new_sealer
from .status import build_status, silence_threshold

log = logging.getLogger(__name__)

SOCKET_BUFFER_BYTES = 4 * 1024 * 1024   # absorbs bursts; rmem_max/wmem_max permitting
DRAIN_BATCH = 64                        # packets per wakeup before yielding to the other direction
HOUSEKEEPING_SECONDS = 1.0
WARN_INTERVAL_SECONDS = 10.0
KEEPALIVE_SECONDS = 25.0                # below common NAT UDP timeouts (30 s)
WARM_INTERVAL_SECONDS = 0.002           # see _forward
WARM_AFTER_TRAFFIC_SECONDS = 2.0
HUB_INTERVAL_SECONDS = 0.01             # while traffic flows, other greenlets wait at most this

# Linux UDP offloads (include/uapi/linux/udp.h); Python's socket module lacks the names.
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
GSO_MAX_SEGMENTS = 64                   # kernel's UDP_MAX_SEGMENTS (older kernels)
GSO_MAX_BYTES = 65000                   # one GSO send stays below the 64 KiB IP datagram limit
GRO_BUFFER_BYTES = 65536 * 2            # a coalesced receive is at most 64 KiB
_GRO_CMSG_SPACE = _socket.CMSG_SPACE(4)
_GSO_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")
_GSO_FATAL_ERRNOS = (errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP)   # the device/kernel cannot: stop using it

_READ, _WRITE = 1, 2                    # libev io watcher events
_EPOLLIN = 1
_UDP_READY, _TUN_READY = 1, 2


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


def offloads_wanted():
    """False when TOMATO_VPN_OFFLOAD=0: one system call per packet everywhere."""
    return os.environ.get("TOMATO_VPN_OFFLOAD", "1") != "0"


def enable_offloads(sock):
    """(gso, gro): which UDP offloads this kernel accepts on sock (GRO is switched on here)."""
    if not offloads_wanted():
        return False, False
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
        gso = True
    except OSError:
        gso = False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        gro = True
    except OSError:
        gro = False
    return gso, gro


class Link:
    def __init__(self, tun, sock, password_key, receiver, endpoint, keepalive=KEEPALIVE_SECONDS,
                 backend=None, stop_event=None, silent_after=None, peer_host=None):
        self.tun = tun
        self.sock = sock
        self.receiver = receiver
        self.endpoint = endpoint
        self.keepalive = keepalive
        self._password_key = password_key
        self._backend_kw = {} if backend is None else {"backend": backend}
        self.sealer = self._new_sealer()
        self.gso, self.gro = enable_offloads(sock)
        self.drops = collections.Counter()
        self.sent = self.received = 0
        self.sent_bytes = self.received_bytes = 0     # datagrams on the wire, overhead included
        self.peer_host = peer_host                    # the -pa host as given, for the status
        self.started = time.monotonic()
        if silent_after is None:
            silent_after = silence_threshold(keepalive)
        self.report = LinkReport(tun.name, endpoint, receiver.pvt_seconds, silent_after, format_address,
                                 self.started)
        self._warned = {}
        self._stopped = Event() if stop_event is None else stop_event
        self._greenlets = []
        self._error = None
        loop = get_hub().loop
        self._sock_read = loop.io(sock.fileno(), _READ)
        self._sock_write = loop.io(sock.fileno(), _WRITE)
        self._tun_read = loop.io(tun.fd, _READ)

    def _new_sealer(self, after=None):
        random16 = int.from_bytes(os.urandom(2), "big")
        return new_sealer(self._password_key, int(time.time() * 1000), random16, after=after,
                          **self._backend_kw)

    # -- lifecycle ------------------------------------------------------------------
    def serve_forever(self):
        """Run until stop() or a fatal device error (raised as TomatoError)."""
        log.debug("UDP offloads: GSO %s, GRO %s", "on" if self.gso else "off", "on" if self.gro else "off")
        for loop in (self._forward, self._housekeeping):
            g = gevent.spawn(loop)
            g.link_exception(self._crashed)
            self._greenlets.append(g)
        try:
            self._stopped.wait()
        finally:
            gevent.killall(self._greenlets)
            for watcher in (self._sock_read, self._sock_write, self._tun_read):
                watcher.close()
        if self._error is not None:
            raise self._error

    def stop(self):
        self._stopped.set()

    def _crashed(self, greenlet):
        e = greenlet.exception
        self._error = e if isinstance(e, TomatoError) else TomatoError("link failed: %r" % (e,))
        self._stopped.set()

    @property
    def watch(self):
        return self.report.watch

    def status(self):
        """The status dict of status.py: what `vpn show`, SIGUSR1 and the stop line report."""
        address = self.endpoint.address
        return build_status(
            interface=self.tun.name, listen_address=format_address(self.sock.getsockname()),
            peer_address=format_address(address) if address is not None else None, peer_host=self.peer_host,
            dynamic=self.endpoint.dynamic, session_id=self.receiver.session_id,
            last_received=self.report.watch.last_received, started=self.started, now=time.monotonic(),
            now_ms=int(time.time() * 1000), rx_packets=self.received, rx_bytes=self.received_bytes,
            tx_packets=self.sent, tx_bytes=self.sent_bytes, drops=self.drops)

    # -- helpers ---------------------------------------------------------------------
    def _warn_limited(self, key, msg, *args):
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_INTERVAL_SECONDS) >= WARN_INTERVAL_SECONDS:
            self._warned[key] = now
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)

    def _send_error(self, e, address, count=1):
        self.drops["send error"] += count
        self._warn_limited(("send", e.errno), "cannot send to %s: %s", format_address(address), e.strerror)

    def _send(self, view, address):
        """sendto, waiting while the socket buffer is full; errors counted, never fatal."""
        while True:
            try:
                self.sock.sendto(view, address)
                self.sent += 1
                self.sent_bytes += len(view)
                return
            except BlockingIOError:
                get_hub().wait(self._sock_write)
            except OSError as e:
                self._send_error(e, address)
                return

    def _send_batch(self, view, size, segment, count, address):
        """Send count sealed datagrams laid out back to back in view[:size], all segment
        bytes long except possibly the last: one GSO sendmsg, else one sendto each."""
        if count > 1 and self.gso:
            while True:
                try:
                    self.sock.sendmsg([view[:size]], [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(segment))], 0, address)
                    self.sent += count
                    self.sent_bytes += size
                    return
                except BlockingIOError:
                    get_hub().wait(self._sock_write)
                except OSError as e:
                    if e.errno in _GSO_FATAL_ERRNOS:
                        self.gso = False
                        log.info("UDP segmentation offload refused (%s): one datagram per send from now on",
                                 e.strerror)
                    elif e.errno != errno.EINVAL:    # EINVAL: e.g. segment above the path MTU; retry plainly
                        self._send_error(e, address, count)
                        return
                    break
        for offset in range(0, size, segment):
            self._send(view[offset:min(offset + segment, size)], address)

    def _seal_into(self, out, plain, timestamp_ms):
        try:
            return self.sealer.seal_into(out, plain, timestamp_ms)
        except CounterExhausted:
            self.sealer = self._new_sealer(after=self.sealer.session_id)
            log.info("counter exhausted, started a new session")
            return self.sealer.seal_into(out, plain, timestamp_ms)

    def send_keepalive(self):
        address = self.endpoint.address
        if address is None:
            return
        out = bytearray(OVERHEAD)
        size = self._seal_into(out, bytearray(TIMESTAMP_SIZE), int(time.time() * 1000))
        self._send(memoryview(out)[:size], address)

    # -- the loops ------------------------------------------------------------------
    def _forward(self):
        """Move packets both ways; the only greenlet that touches the tun and the data buffers.

        Idle (no packet for WARM_AFTER_TRAFFIC_SECONDS), it waits in the gevent hub like
        any greenlet and costs nothing. While packets flow it waits instead in a native
        epoll on the two fds, at most WARM_INTERVAL_SECONDS at a time, and lets the hub
        run between waits (timers, signals, the housekeeping greenlet). Why: each packet
        that arrives after a wait wakes the process, and the wakeup is what a ping
        pays for -- through the hub (libev callback, greenlet switch) it cost here
        ~20-40 us more than returning from epoll_wait straight into this loop, and a
        process that sleeps for long stretches wakes slower still (cold caches, idle
        CPU). On a timeout the path is warmed: a dummy packet is sealed and opened, and
        both drains run (each finds its fd empty), so their code is still in the caches
        when the next packet comes.
        """
        drain_tun = self._tun_drainer()
        drain_udp, warm = self._udp_drainer(drain_tun), self._warmer()
        sock_fd, tun_fd = self.sock.fileno(), self.tun.fd
        epoll = get_original("select", "epoll")()      # gevent's monkey patching hides it
        epoll.register(sock_fd, _EPOLLIN)
        epoll.register(tun_fd, _EPOLLIN)
        poll, mono, sleep = epoll.poll, time.monotonic, gevent.sleep
        udp_ready = tun_ready = True            # drain whatever arrived before the start
        busy_until = hub_due = 0.0
        try:
            while True:
                if udp_ready:
                    udp_ready = not drain_udp()     # drained to EAGAIN: wait for the next
                if tun_ready:
                    tun_ready = not drain_tun()
                now = mono()
                if udp_ready or tun_ready or now >= hub_due:
                    sleep(0)                        # full batches, or the hub's turn: let it run
                    hub_due = now + HUB_INTERVAL_SECONDS
                    continue
                if now >= busy_until:
                    ready = self._wait_idle()
                    udp_ready, tun_ready = ready == _UDP_READY, ready == _TUN_READY
                    busy_until = mono() + WARM_AFTER_TRAFFIC_SECONDS
                    continue
                events = poll(WARM_INTERVAL_SECONDS)    # blocks the whole process: bounded
                if not events:
                    warm()
                    udp_ready = tun_ready = True    # run the drains' code too: keeps it warm
                    continue
                busy_until = now + WARM_AFTER_TRAFFIC_SECONDS
                for fd, _ in events:
                    if fd == sock_fd:
                        udp_ready = True
                    else:
                        tun_ready = True
        finally:
            epoll.close()

    def _wait_idle(self):
        """Wait in the hub until the socket or the tun is readable; returns which one."""
        waiter = Waiter()
        self._sock_read.start(waiter.switch, _UDP_READY)
        self._tun_read.start(waiter.switch, _TUN_READY)
        try:
            return waiter.get()
        finally:
            self._sock_read.stop()
            self._tun_read.stop()

    def _tun_drainer(self):
        """drain_tun(): read the tun until EAGAIN or DRAIN_BATCH packets, seal them into one
        batch buffer and send it; True when the tun was drained. Waits only for room in
        the socket buffer."""
        tun_fd = self.tun.fd
        plain = bytearray(MAX_DATAGRAM_SIZE)        # [timestamp slot][IP packet read from the tun]
        plain_view = memoryview(plain)
        read_into = [plain_view[TIMESTAMP_SIZE:MAX_DATAGRAM_SIZE - HEADER_SIZE - TAG_SIZE]]
        vnet_hdr = self.tun.vnet_hdr
        if vnet_hdr:
            # Without TUNSETOFFLOAD the kernel hands over whole, checksummed packets:
            # the header is all zero and only has to be skipped.
            vnet_header = bytearray(VNET_HDR_SIZE)
            read_into.insert(0, vnet_header)
        batch = bytearray(GSO_MAX_BYTES + MAX_DATAGRAM_SIZE)   # sealed datagrams back to back
        batch_view = memoryview(batch)
        readv, wall = os.readv, time.time
        endpoint, drops = self.endpoint, self.drops
        trickle = True          # the last drain read at most one packet

        def drain_tun():
            nonlocal trickle
            address = endpoint.address
            seal_into = self.sealer.seal_into       # looked up per batch: a new session replaces it
            now_ms = int(wall() * 1000)
            size = count = segment = 0
            drained = False
            first = trickle
            reads = 0
            for reads in range(DRAIN_BATCH):
                try:
                    n = readv(tun_fd, read_into)
                except BlockingIOError:
                    drained = True
                    break
                except OSError as e:
                    raise TomatoError("reading %s failed: %s" % (self.tun.name, e.strerror)) from None
                if vnet_hdr:
                    n -= VNET_HDR_SIZE
                    if vnet_header[0] or vnet_header[1]:    # partial checksum / GSO: not ours to forward
                        drops["offloaded packet from tun"] += 1
                        continue
                if address is None:
                    drops["no peer address"] += 1
                    continue
                sealed = n + OVERHEAD
                if count and (sealed > segment or size + sealed > GSO_MAX_BYTES or count == GSO_MAX_SEGMENTS):
                    self._send_batch(batch_view, size, segment, count, address)
                    size = count = 0
                if not count:
                    segment = sealed
                try:
                    seal_into(batch_view[size:], plain_view[:TIMESTAMP_SIZE + n], now_ms)
                except CounterExhausted:
                    self._seal_into(batch_view[size:], plain_view[:TIMESTAMP_SIZE + n], now_ms)
                if first:
                    # While packets come one at a time (ping, keystrokes), the first goes
                    # out at once, before the read that finds out whether more are queued.
                    # Bulk traffic (the last drain read more) is batched from the first.
                    first = False
                    self._send(batch_view[:sealed], address)
                    continue
                size += sealed
                count += 1
                if sealed < segment:        # a shorter datagram can only end a GSO batch
                    self._send_batch(batch_view, size, segment, count, address)
                    size = count = 0
            if count:
                self._send_batch(batch_view, size, segment, count, address)
            trickle = reads <= 1           # reads counts the packets before EAGAIN
            return drained

        return drain_tun

    def _udp_drainer(self, drain_tun):
        """drain_udp(): receive until EAGAIN or DRAIN_BATCH receives, open each datagram and
        write its payload to the tun; True when the socket was drained. Then forwards
        what the tun already holds: see the end of drain_udp."""
        tun_fd = self.tun.fd
        buf = bytearray(GRO_BUFFER_BYTES)
        view = memoryview(buf)
        bufs = [view]
        plain_view = memoryview(bytearray(MAX_DATAGRAM_SIZE))     # timestamp + payload of one packet
        sock = self.sock
        receiver, endpoint, drops, report = self.receiver, self.endpoint, self.drops, self.report
        wall, mono, write = time.time, time.monotonic, os.write
        debug = log.isEnabledFor(logging.DEBUG)
        payload_start = TIMESTAMP_SIZE
        coalescer = self._coalescer = TcpCoalescer(self._write_frame) if self.tun.vnet_hdr else None
        dynamic, gro = endpoint.dynamic, self.gro

        def drain_udp():
            drained = False
            accepted = accepted_bytes = 0
            accepted_from = None
            for _ in range(DRAIN_BATCH):
                try:
                    if gro:
                        total, ancdata, flags, address = sock.recvmsg_into(bufs, _GRO_CMSG_SPACE)
                        if flags & _socket.MSG_TRUNC:
                            drops["truncated"] += 1
                            continue
                        segment = total
                        for level, kind, data in ancdata:
                            if level == SOL_UDP and kind == UDP_GRO:
                                segment = _GRO_SIZE.unpack(data)[0]
                    else:
                        total, address = sock.recvfrom_into(buf, MAX_DATAGRAM_SIZE + 1)
                        segment = total
                except BlockingIOError:
                    drained = True
                    break
                except OSError as e:    # e.g. ECONNREFUSED reported from an earlier send
                    drops["receive error"] += 1
                    if debug:
                        log.debug("receive error: %s", e.strerror)
                    continue
                now_mono = mono()
                now_ms = int(wall() * 1000)
                if segment <= 0:
                    segment = total or 1
                received = view[:total]
                for offset in range(0, total or 1, segment):
                    datagram = received[offset:offset + segment]      # the last one may be shorter
                    if debug:
                        session_before = receiver.session_id
                    try:
                        n = receiver.open_into(datagram, plain_view, now_ms, now_mono)
                    except BadPacket as e:
                        drops[e.reason] += 1
                        if debug:
                            log.debug("dropped %d-byte datagram from %s: %s", len(datagram),
                                      format_address(address), e.reason)
                        if e.reason in DIAGNOSED_REASONS:
                            report.refused(e, address, now_mono)
                        continue
                    accepted += 1
                    accepted_bytes += n
                    accepted_from = address
                    if debug and receiver.session_id != session_before:
                        log.debug("peer session %016x accepted (from %s)", receiver.session_id,
                                  format_address(address))
                    if dynamic and endpoint.learn(address, now_mono):
                        report.learned(address, now_mono)
                    if n and coalescer is not None:
                        coalescer.add(plain_view[payload_start:payload_start + n])
                    elif n:
                        try:
                            write(tun_fd, plain_view[payload_start:payload_start + n])
                        except BlockingIOError:
                            drops["tun full"] += 1
                        except OSError as e:
                            # e.g. EINVAL for a payload that is not an IP packet: the peer's problem.
                            drops["tun write error"] += 1
                            self._warn_limited(("tun", e.errno), "writing %s failed: %s", self.tun.name,
                                               e.strerror)
            if accepted:
                self.received += accepted
                self.received_bytes += accepted_bytes + accepted * OVERHEAD
                report.received(accepted_from, receiver.session_id, mono())
            if coalescer is not None:
                coalescer.flush()
            if accepted:
                # What was just written to the tun is often answered at once: the kernel
                # runs the local receiver (ping, a TCP ACK) inside the write, so the
                # answer already waits in the tun. Sending it now saves a wakeup.
                drain_tun()
            return drained

        return drain_udp

    def _write_frame(self, vnet_header, packet):
        """Write one frame (virtio_net_hdr + packet) to a tun opened with IFF_VNET_HDR."""
        try:
            os.writev(self.tun.fd, (vnet_header, packet))
        except BlockingIOError:
            self.drops["tun full"] += 1
        except OSError as e:
            self.drops["tun write error"] += 1
            if vnet_header[1] and e.errno == errno.EINVAL and self._coalescer.merging:
                # A kernel that refuses merged packets: stop merging, TCP resends what was lost.
                self._coalescer.merging = False
                log.warning("%s refused a merged TCP packet: writing one packet at a time from now on",
                            self.tun.name)
                return
            self._warn_limited(("tun", e.errno), "writing %s failed: %s", self.tun.name, e.strerror)

    def _housekeeping(self):
        self.send_keepalive()     # announce our (new) session right away: a restarted peer recovers
        last_counter = self.sealer.counter
        idle_since = time.monotonic()
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = time.monotonic()
            address = self.endpoint.address
            if self.endpoint.expire(now):
                self.report.forgot(address, now)
            self.report.tick(now)
            if self.sealer.counter != last_counter:
                last_counter = self.sealer.counter
                idle_since = now
            elif self.keepalive and now - idle_since >= self.keepalive:
                self.send_keepalive()
                last_counter = self.sealer.counter
                idle_since = now

    def _warmer(self):
        """warm(): seal and open a throwaway packet (own key, own counters: the real
        sessions are untouched). Why: a packet arriving after a millisecond or more
        of idleness finds the interpreter's and OpenSSL's code and data evicted from
        the caches, and the ~25 Python and C steps of seal/open then cost several
        times their warm price."""
        from .session import Receiver

        key = bytes(32)
        backend_kw = self._backend_kw
        sealer = new_sealer(key, int(time.time() * 1000), 0, **backend_kw)
        receiver = Receiver(key, 3600.0, **backend_kw)
        plain = bytearray(TIMESTAMP_SIZE + 64)
        sealed = memoryview(bytearray(len(plain) + HEADER_SIZE + TAG_SIZE))
        opened = bytearray(len(plain))
        wall, mono = time.time, time.monotonic

        def warm():
            nonlocal sealer
            if sealer.counter >= sealer.limit - 1:
                sealer = new_sealer(key, int(wall() * 1000), 0, after=sealer.session_id, **backend_kw)
            size = sealer.seal_into(sealed, plain, int(wall() * 1000))
            receiver.open_into(sealed[:size], opened, int(wall() * 1000), mono())

        return warm

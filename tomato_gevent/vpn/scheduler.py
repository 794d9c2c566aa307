"""The packet scheduler: moves packets between the tun and the transport, decides when to wait.

One greenlet (Scheduler.run) drains whichever side is readable:
  drain_tun   read the tun until EAGAIN (bounded batch), lower the MSS of a TCP SYN
              (mss.py), seal each packet straight into a batch buffer, hand the
              batch to the transport (one send per run of equal-size datagrams
              where it can batch). With the tun's offloads (tun.py, offload.py) a
              read may be a TCP super-packet: it is cut into segments in place, each
              sealed with the "checksum partial" flag, and a partial checksum on a
              single packet is kept and flagged too
  drain_net   let the transport receive until drained (bounded); open each datagram
              (Receiver.open_into: auth, -pvt, replay, session), learn the peer
              (dynamic mode), lower the MSS of a TCP SYN, write the payload to the
              tun -- with a vnet header,
              through TcpCoalescer, which writes consecutive TCP segments as one GSO
              packet, trusting flagged segments and verifying the others -- then
              drain_tun at once: the answer to what was written is
              often already there
It waits in the gevent hub while the link is idle and in a native epoll_wait around
packets (warming the path only where that pays): see run() and warmth.py. Protocol decisions are made in session.py / packet.py; a refused
datagram is counted by reason, logged at DEBUG and never answered.
"""
import errno
import logging
import os
import select
import time

from gevent import get_hub
from gevent.core import READ
from gevent.hub import Waiter
from gevent.monkey import get_original

from ..errors import BadPacket, TomatoError
from .coalesce import TcpCoalescer
from .mss import SYN_FLAGS_OFFSET_IPV4, SYN_FLAGS_OFFSET_IPV6, TCP_SYN, clamp_mss
from .offload import OffloadError, complete_partial, split
from .packet import (FLAG_CHECKSUM_PARTIAL, FLAGS_OFFSET, HEADER_SIZE, MAX_DATAGRAM_SIZE, OVERHEAD, PAYLOAD_OFFSET,
                     TAG_SIZE, TIMESTAMP, TIMESTAMP_SIZE, CounterExhausted)
from .report import diagnosed
from .session import Receiver, new_sealer
from .throttle import LogThrottle
from .vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM, VNET_HDR_SIZE
from .warmth import (HUB_INTERVAL_SECONDS, LINGER_SECONDS, WARM_AFTER_TRAFFIC_SECONDS, WARM_INTERVAL_SECONDS,
                     Density, Rhythm)

log = logging.getLogger(__name__)

DRAIN_BATCH = 64                        # tun reads per wakeup before yielding to the other direction
MAX_TUN_READ = 65536 + 64               # a super-packet (the tun's gso_max_size), with room to spare
# What goes in front of each packet sealed: the timestamp (packed once per drain) and the flags.
PARTIAL_FLAGS, COMPLETE_FLAGS = bytes([FLAG_CHECKSUM_PARTIAL]), bytes([0])

_NET_READY, _TUN_READY = 1, 2


class Scheduler:
    """The data path of one link. Shares with the Link: the send session (sealer), the
    receiver, the endpoint and the drop counters.

    wall/mono are the clock of the protocol (timestamps, -pvt, address expiry); the
    waiting itself always uses time.monotonic: it is about CPU wakeups, not the peer.
    """

    def __init__(self, tun, transport, sending, receiver, endpoint, drops, report, wall=time.time,
                 mono=time.monotonic, announce=None, keep_warm=WARM_AFTER_TRAFFIC_SECONDS, mss=None):
        self.tun = tun
        self.transport = transport
        self.sending = sending
        self.receiver = receiver
        self.endpoint = endpoint
        self.drops = drops
        self.report = report        # report.LinkReport: what is worth a log line
        self.announce = announce    # announce(): tell the peer our session (a keepalive)
        self.warn = LogThrottle(log)
        self.wall, self.mono = wall, mono
        self.keep_warm = keep_warm  # seconds after traffic spent in the warm epoll loop (0: none)
        self.mss = mss              # (IPv4, IPv6) MSS ceilings of TCP SYNs both ways, None: untouched
        self.received = 0
        self.received_bytes = 0     # accepted datagrams' bytes, counted per drain
        # With a vnet header, accepted TCP segments go to the tun through the coalescer.
        self.coalescer = TcpCoalescer(self._write_frame) if tun.vnet_hdr else None
        loop = get_hub().loop
        self._net_read = loop.io(transport.fileno(), READ)
        self._tun_read = loop.io(tun.fd, READ)

    def close(self):
        for watcher in (self._net_read, self._tun_read):
            watcher.close()

    def run(self):
        """Move packets both ways; the only greenlet that touches the tun and the data buffers.

        Where it waits (warmth.py says when): idle, in the gevent hub like any greenlet,
        at no cost; around packets (a short linger after each, a window around the next
        one of a steady rhythm, and for keep_warm seconds after dense traffic), in a
        native epoll on the two fds. Why: each packet that arrives after a wait wakes the
        process, and the wakeup is what a ping pays for -- through the hub (libev
        callback, greenlet switch) it cost here ~20-40 us more than returning from
        epoll_wait straight into this loop, and a process that sleeps for long stretches
        wakes slower still (cold caches, idle CPU). Warming seals and opens a dummy packet
        and runs both drains (each finds its fd empty), so their code is still in the
        caches when the next packet comes.
        The native epoll also holds the hub's own fd: another greenlet's socket, a signal
        or a thread's wake-up makes it readable, and the hub then gets its turn at once;
        timers get theirs at least every HUB_INTERVAL_SECONDS. The turn is a zero timer,
        not sleep(0): gevent runs sleep(0)'s callbacks without polling in between, so a
        loop that yields by sleep(0) keeps the hub from its epoll for up to 50 of them.
        """
        drain_tun = self._tun_drainer()
        drain_net, warm = self._net_drainer(drain_tun), self._warmer()
        net_fd, tun_fd = self.transport.fileno(), self.tun.fd
        hub = get_hub()
        hub_fd = hub.loop.fileno()
        hub_turn = hub.loop.timer(0.0)
        epoll = get_original("select", "epoll")()      # gevent's monkey patching hides it
        for fd in (net_fd, tun_fd, hub_fd):
            epoll.register(fd, select.EPOLLIN)
        poll, mono, wait = epoll.poll, time.monotonic, hub.wait
        keep_warm = self.keep_warm
        density, rhythm = Density(), Rhythm()
        net_ready = tun_ready = True            # drain whatever arrived before the start
        hub_due = 0.0
        warm_until = 0.0                        # dense traffic: warm until then
        native_until = 0.0                      # linger or rhythm window: the epoll until then
        expecting = False                       # in a rhythm window, its packet not yet here
        try:
            while True:
                if net_ready:
                    net_ready = not drain_net()     # drained to EAGAIN: wait for the next
                if tun_ready:
                    tun_ready = not drain_tun()
                now = mono()
                idle = not (net_ready or tun_ready) and now >= warm_until and now >= native_until
                if now >= hub_due and not idle:     # (waiting idle is waiting in the hub)
                    wait(hub_turn)                  # one hub iteration: its epoll, due timers, callbacks
                    hub_due = now + HUB_INTERVAL_SECONDS
                    if net_ready or tun_ready:
                        # One side keeps filling its batches (a flood): try the other one too
                        # now and then (an empty drain is one EAGAIN), else it waits for the end.
                        net_ready = tun_ready = True
                if net_ready or tun_ready:
                    continue                        # full batches: more is waiting
                if idle:
                    window = rhythm.window() if keep_warm else None
                    if window is not None and window[1] > now:
                        ready = self._wait_idle(window[0] - now)
                        if ready is None:           # woken just before the predicted packet
                            warm()
                            net_ready = tun_ready = True
                            native_until, expecting = window[1], True
                            continue
                    else:
                        ready = self._wait_idle()
                    now = mono()
                    hub_due = now + HUB_INTERVAL_SECONDS
                    rhythm.arrived(now)
                    net_ready, tun_ready = ready == _NET_READY, ready == _TUN_READY
                    if density.dense(now) and keep_warm:
                        warm_until = now + keep_warm
                    native_until, expecting = now + LINGER_SECONDS, False
                    continue
                warming = now < warm_until
                deadline = now + WARM_INTERVAL_SECONDS if warming else native_until
                events = poll(max(min(deadline, hub_due) - now, 0.0))     # blocks the whole process: bounded
                if not events:
                    if warming:
                        warm()
                        net_ready = tun_ready = True    # run the drains' code too: keeps it warm
                        hub_due = 0.0                   # and the hub gets a turn after each slice
                    continue
                packet = False
                for fd, _ in events:
                    if fd == net_fd:
                        net_ready = packet = True
                    elif fd == tun_fd:
                        tun_ready = packet = True
                    else:
                        hub_due = 0.0               # the hub has something to do: its turn next
                if packet:
                    now = mono()
                    if expecting:
                        rhythm.arrived(now)
                        expecting = False
                    if density.dense(now) and keep_warm:
                        warm_until = now + keep_warm
                    native_until = now + LINGER_SECONDS
        finally:
            epoll.close()
            hub_turn.close()

    def _wait_idle(self, timeout=None):
        """Wait in the hub until the transport or the tun is readable; returns which one, or
        None when timeout seconds passed first."""
        waiter = Waiter()
        self._net_read.start(waiter.switch, _NET_READY)
        self._tun_read.start(waiter.switch, _TUN_READY)
        timer = None
        if timeout is not None:
            timer = get_hub().loop.timer(max(timeout, 0.0))
            timer.start(waiter.switch, None)
        try:
            return waiter.get()
        finally:
            self._net_read.stop()
            self._tun_read.stop()
            if timer is not None:
                timer.close()

    def _tun_drainer(self):
        """drain_tun(): read the tun until EAGAIN or DRAIN_BATCH reads, seal what was read
        into one batch buffer and send it; True when the tun was drained. Waits only for
        room in the transport's send buffer."""
        tun_fd = self.tun.fd
        plain = bytearray(PAYLOAD_OFFSET + MAX_TUN_READ)    # [timestamp slot][flags][what the tun read]
        plain_view = memoryview(plain)
        read_into = [plain_view[PAYLOAD_OFFSET:]]
        vnet_hdr = self.tun.vnet_hdr
        if vnet_hdr:
            # The header is zero or says DATA_VALID (checksum verified: an ordinary packet),
            # or, with the tun's offloads, NEEDS_CSUM and/or GSO: offload.split cuts those.
            vnet_header = bytearray(VNET_HDR_SIZE)
            read_into.insert(0, vnet_header)
        max_batch_bytes, max_batch_count = self.transport.max_batch_bytes, self.transport.max_batch_count
        batch = bytearray(max_batch_bytes + MAX_DATAGRAM_SIZE)   # sealed datagrams back to back
        batch_view = memoryview(batch)
        readv, wall = os.readv, self.wall
        endpoint, drops, sending = self.endpoint, self.drops, self.sending
        send, send_batch = self.transport.send, self.transport.send_batch
        mss = self.mss
        mss4, mss6 = mss or (0, 0)
        packet_start = PAYLOAD_OFFSET
        syn4, syn6 = packet_start + SYN_FLAGS_OFFSET_IPV4, packet_start + SYN_FLAGS_OFFSET_IPV6
        trickle = True          # the last drain sealed at most one packet
        tag_header_size = HEADER_SIZE + TAG_SIZE

        def drain_tun():
            nonlocal trickle
            address = endpoint.address
            seal_into = sending.sealer.seal_into    # looked up per batch: a new session replaces it
            stamp = TIMESTAMP.pack(int(wall() * 1000))     # every packet of this drain carries it
            partial_prefix, complete_prefix = stamp + PARTIAL_FLAGS, stamp + COMPLETE_FLAGS
            size = count = segment = sealed_count = 0
            drained = False
            first = trickle
            for _ in range(DRAIN_BATCH):
                try:
                    n = readv(tun_fd, read_into)
                except BlockingIOError:
                    drained = True
                    break
                except OSError as e:
                    raise TomatoError("reading %s failed: %s" % (self.tun.name, e.strerror)) from None
                partial = offloaded = 0
                if vnet_hdr:
                    n -= VNET_HDR_SIZE
                    partial = vnet_header[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM
                    offloaded = partial or vnet_header[1]
                if mss is not None:
                    # mss.may_be_syn, inlined (a call per packet would cost more than the test): the
                    # TCP flags byte at its offset for IPv4 without options (the common case) or IPv6.
                    # A partial checksum does not cover the option yet: only the value changes.
                    version = plain[packet_start]
                    if (plain[syn4] & TCP_SYN if version == 0x45 else plain[syn6] & TCP_SYN if version >> 4 == 6
                            else version >> 4 == 4):
                        clamp_mss(plain_view[packet_start:packet_start + n], mss4, mss6, not partial)
                if offloaded:
                    try:
                        pieces = split(plain, PAYLOAD_OFFSET, PAYLOAD_OFFSET + n, vnet_header, partial_prefix,
                                       complete_prefix)
                    except OffloadError:
                        drops["offloaded packet from tun"] += 1
                        continue
                else:
                    plain[:PAYLOAD_OFFSET] = complete_prefix
                    pieces = ((0, PAYLOAD_OFFSET + n),)
                if address is None:
                    drops["no peer address"] += 1
                    continue
                for start, end in pieces:
                    # A super-packet's segments are written in place, each in front of its
                    # payload: one is valid until the next is asked for (offload.cut).
                    sealed = end - start + tag_header_size
                    if sealed > MAX_DATAGRAM_SIZE:
                        drops["oversized packet from tun"] += 1
                        continue
                    if count and (sealed > segment or size + sealed > max_batch_bytes or count == max_batch_count):
                        send_batch(batch_view, size, segment, count, address)
                        size = count = 0
                    if not count:
                        segment = sealed
                    try:
                        seal_into(batch_view[size:], plain_view[start:end])
                    except CounterExhausted:
                        sending.seal_into(batch_view[size:], plain_view[start:end])
                        seal_into = sending.sealer.seal_into
                    sealed_count += 1
                    if first:
                        # While packets come one at a time (ping, keystrokes), the first goes
                        # out at once, before the read that finds out whether more are queued.
                        # Bulk traffic (the last drain sealed more) is batched from the first.
                        first = False
                        send(batch_view[:sealed], address)
                        continue
                    size += sealed
                    count += 1
                    if sealed < segment:        # a shorter datagram can only end a GSO batch
                        send_batch(batch_view, size, segment, count, address)
                        size = count = 0
            if count:
                send_batch(batch_view, size, segment, count, address)
            trickle = sealed_count <= 1
            return drained

        return drain_tun

    def _net_drainer(self, drain_tun):
        """drain_net(): the transport's receive() with deliver() below for each datagram;
        True when the transport was drained. Then forwards what the tun already holds:
        see the end of drain_net."""
        tun_fd = self.tun.fd
        plain = bytearray(MAX_DATAGRAM_SIZE)      # timestamp + payload of one packet
        plain_view = memoryview(plain)
        receiver, endpoint, drops, report = self.receiver, self.endpoint, self.drops, self.report
        write, describe = os.write, self.transport.describe
        debug = log.isEnabledFor(logging.DEBUG)
        payload_start = PAYLOAD_OFFSET
        coalescer = self.coalescer
        dynamic = endpoint.dynamic
        mss = self.mss
        mss4, mss6 = mss or (0, 0)
        syn4, syn6 = payload_start + SYN_FLAGS_OFFSET_IPV4, payload_start + SYN_FLAGS_OFFSET_IPV6
        accepted = accepted_bytes = 0
        accepted_from = None

        def deliver(datagram, source, now_ms, now_mono):
            nonlocal accepted, accepted_bytes, accepted_from
            if debug:
                session_before = receiver.session_id
            try:
                n = receiver.open_into(datagram, plain_view, now_ms, now_mono)
            except BadPacket as e:
                drops[e.reason] += 1
                if debug:
                    log.debug("dropped %d-byte datagram from %s: %s", len(datagram), describe(source), e.reason)
                if diagnosed(e):
                    report.refused(e, source, now_mono, datagram)
                return False
            accepted += 1
            accepted_bytes += n
            accepted_from = source
            if debug and receiver.session_id != session_before:
                log.debug("peer session %016x accepted (from %s)", receiver.session_id, describe(source))
            if dynamic and endpoint.learn(source, now_mono):
                report.learned(source, now_mono)
            if mss is not None and n:
                version = plain[payload_start]      # the same cheap test as in drain_tun
                if (plain[syn4] & TCP_SYN if version == 0x45 else plain[syn6] & TCP_SYN if version >> 4 == 6
                        else version >> 4 == 4):
                    # A segment flagged "checksum partial" carries the pseudo-header sum only.
                    clamp_mss(plain_view[payload_start:payload_start + n], mss4, mss6,
                              not plain_view[FLAGS_OFFSET] & FLAG_CHECKSUM_PARTIAL)
            if n and coalescer is not None:
                coalescer.add(plain_view[payload_start:payload_start + n],
                              plain_view[FLAGS_OFFSET] & FLAG_CHECKSUM_PARTIAL)
            elif n:
                packet = plain_view[payload_start:payload_start + n]
                if plain_view[FLAGS_OFFSET] & FLAG_CHECKSUM_PARTIAL:
                    complete_partial(packet)        # a tun without vnet headers: completed here
                try:
                    write(tun_fd, packet)
                except BlockingIOError:
                    drops["tun full"] += 1
                except OSError as e:
                    # e.g. EINVAL for a payload that is not an IP packet: the peer's problem.
                    drops["tun write error"] += 1
                    self.warn(("tun", e.errno), "writing %s failed: %s", self.tun.name, e.strerror)
            return True

        receive = self.transport.receiver(deliver, self.wall, self.mono)

        peer_session = None

        def drain_net():
            nonlocal accepted, accepted_bytes, peer_session
            accepted = accepted_bytes = 0
            drained = receive()
            if accepted:
                self.received += accepted
                self.received_bytes += accepted_bytes + accepted * OVERHEAD
                report.received(accepted_from, receiver.session_id, self.mono())
                if receiver.session_id != peer_session:
                    # A peer that (re)started hears from us at once, not at our next
                    # keepalive: its tunnel is up as soon as ours.
                    peer_session = receiver.session_id
                    if self.announce is not None:
                        self.announce()
            if coalescer is not None and (drained or not accepted):
                # Cut short by the datagram bound (udp.DRAIN_DATAGRAMS) while packets flow, the
                # drain leaves the packet being merged open: the next drain, at once, goes on
                # with it, and merges stay as large as when drains were long. A drain that
                # accepted nothing (a flood of forged datagrams) closes it.
                coalescer.flush()
            if accepted:
                # What was just written to the tun is often answered at once: the kernel
                # runs the local receiver (ping, a TCP ACK) inside the write, so the
                # answer already waits in the tun. Sending it now saves a wakeup.
                drain_tun()
            return drained

        return drain_net

    def _write_frame(self, vnet_header, packet):
        """Write one frame (virtio_net_hdr + packet) to a tun opened with IFF_VNET_HDR."""
        try:
            os.writev(self.tun.fd, (vnet_header, packet))
        except BlockingIOError:
            self.drops["tun full"] += 1
        except OSError as e:
            self.drops["tun write error"] += 1
            if vnet_header[1] and e.errno == errno.EINVAL and self.coalescer.merging:
                # A kernel that refuses merged packets: stop merging, TCP resends what was lost.
                self.coalescer.merging = False
                log.warning("%s refused a merged TCP packet: writing one packet at a time from now on",
                            self.tun.name)
                return
            self.warn(("tun", e.errno), "writing %s failed: %s", self.tun.name, e.strerror)

    def _warmer(self):
        """warm(): seal and open a throwaway packet (own key, own counters: the real
        sessions are untouched). Why: a packet arriving after a millisecond or more
        of idleness finds the interpreter's and OpenSSL's code and data evicted from
        the caches, and the ~25 Python and C steps of seal/open then cost several
        times their warm price."""
        key = bytes(32)
        wall, mono = time.time, time.monotonic
        sealer = new_sealer(key, int(wall() * 1000), 0)
        receiver = Receiver(key, 3600.0, None)     # no send session: it opens what it seals
        plain = bytearray(TIMESTAMP_SIZE + 64)
        sealed = memoryview(bytearray(len(plain) + HEADER_SIZE + TAG_SIZE))
        opened = bytearray(len(plain))

        def warm():
            nonlocal sealer
            if sealer.counter >= sealer.limit - 1:
                sealer = new_sealer(key, int(wall() * 1000), 0, after=sealer.session_id)
            size = sealer.seal_into(sealed, plain, int(wall() * 1000))
            receiver.open_into(sealed[:size], opened, int(wall() * 1000), mono())

        return warm

"""The packet scheduler: moves packets between the tun and the transport, decides when to wait.

One greenlet (Scheduler.run) drains whichever side is readable:
  drain_tun   read the tun until EAGAIN (bounded batch), lower the MSS of a TCP SYN
              (mss.py), seal each packet straight into a batch buffer with the
              current keypair, hand the batch to the transport (one send per run of
              equal-size datagrams where it can batch). With the tun's offloads (offload.py)
              a read may be a TCP super-packet: it is cut into segments in place, each sealed
              with the "checksum partial" flag, as is a single packet's partial checksum
  drain_net   let the transport receive until drained (bounded); open each data
              datagram (Keypairs.open_into: index, one AEAD call, replay window),
              hand any other message to the handshake (handshake.py; the link carries
              out what it returns), learn the peer (dynamic mode), lower the MSS of a
              TCP SYN, write the payload to the tun -- with a vnet header,
              through TcpCoalescer, which writes consecutive TCP segments as one GSO
              packet, trusting flagged segments and verifying the others -- then
              drain_tun at once: the answer to what was written is often already there
It waits in the gevent hub while the link is idle and in a native epoll_wait around
packets (warming the path only where that pays): see run() and warmth.py. Protocol
decisions are made in keypair.py / handshake.py; a refused
datagram is counted by reason, logged at DEBUG and never answered.
"""
import collections
import errno
import logging
import os
import select
import time

from gevent import get_hub
from gevent.monkey import get_original

from ..errors import BadPacket, TomatoError
from .coalesce import TcpCoalescer
from .handshake import Established
from .idlewait import NET_READY, TUN_READY, IdleWait
from .keypair import DATA_TYPE, FLAG_CHECKSUM_PARTIAL, MAX_DATAGRAM_SIZE, OVERHEAD
from .messages import SMALLEST_MESSAGE
from .mss import SYN_FLAGS_OFFSET_IPV4, SYN_FLAGS_OFFSET_IPV6, TCP_SYN, clamp_mss
from .offload import (IPV4_HEADER_SIZE, IPV6_HEADER_SIZE, UDP_CHECKSUM_OFFSET, OffloadError, complete_partial,
                      partial_header, split)
from .report import diagnosed
from .throttle import LogThrottle
from .vnet import PLAIN_VNET_HDR, VIRTIO_NET_HDR_F_NEEDS_CSUM, VNET_HDR, VNET_HDR_SIZE
from .warmth import (HUB_INTERVAL_SECONDS, WARM_AFTER_TRAFFIC_SECONDS, WARM_INTERVAL_SECONDS, Density, Rhythm,
                     after_packets, warmer)

log = logging.getLogger(__name__)

DRAIN_BATCH = 64                        # tun reads per wakeup before yielding to the other direction
MAX_TUN_READ = 65536 + 64               # a super-packet (the tun's gso_max_size), with room to spare
STAGED_PACKETS = 64                     # packets kept while a handshake is due (the oldest beyond go)


class Scheduler:
    """The data path of one link. Shares with the Link: the handshake and its keypairs,
    the endpoint and the drop counters; apply(actions) is the link's (handshake messages).

    wall/mono are the clock of the protocol (timestamps, -pvt, address expiry); the
    waiting itself always uses time.monotonic: it is about CPU wakeups, not the peer.
    """

    def __init__(self, tun, transport, handshake, endpoint, drops, report, wall=time.time,
                 mono=time.monotonic, apply=None, keep_warm=WARM_AFTER_TRAFFIC_SECONDS, mss=None):
        self.tun = tun
        self.transport = transport
        self.handshake = handshake
        self.keypairs = handshake.keypairs
        self.endpoint = endpoint
        self.drops = drops
        self.report = report        # report.LinkReport: what is worth a log line
        self.apply = apply          # apply(actions): the link carries out the handshake's actions
        self.warn = LogThrottle(log)
        self.wall, self.mono = wall, mono
        self.keep_warm = keep_warm  # seconds after traffic spent in the warm epoll loop (0: none)
        self.mss = mss              # (IPv4, IPv6) MSS ceilings of TCP SYNs both ways, None: untouched
        self.received = 0
        self.received_bytes = 0     # accepted datagrams' bytes, counted per drain
        # With a vnet header, accepted TCP segments go to the tun through the coalescer.
        self.coalescer = TcpCoalescer(self._write_frame) if tun.vnet_hdr else None
        # Packets read while no keypair can seal them, sent once a handshake completes (as
        # WireGuard stages them): the first packet after a start or restart is not lost.
        self.staged = collections.deque(maxlen=STAGED_PACKETS)
        self._sent_at = [None]      # when drain_net's forwarding drain_tun sent, for settle()
        self._idle = IdleWait(transport.fileno(), tun.fd)

    def send_staged(self):
        """Seal and send what waited for a handshake (the link calls it when one completes)."""
        keypair, address = self.keypairs.sending(self.mono()), self.endpoint.address
        if keypair is None or address is None or not self.staged:
            return
        send, out = self.transport.send, bytearray(MAX_DATAGRAM_SIZE)
        while self.staged:
            packet, flags = self.staged.popleft()
            size = keypair.seal_into(out, packet, flags)
            send(memoryview(out)[:size], address)
        self.handshake.data_sent(self.mono(), True)

    def close(self):
        self._idle.close()

    def run(self):
        """Move packets both ways; the only greenlet that touches the tun and the data buffers.

        Idle, it waits in the gevent hub; around packets, in a native epoll on the two fds
        and the hub's own fd. When, when it warms the path and when the hub gets a turn (a
        zero timer: gevent runs sleep(0)'s callbacks without polling between): warmth.py.
        """
        drain_tun = self._tun_drainer()
        (drain_net, settle), warm = self._net_drainer(drain_tun), self._warmer()
        net_fd, tun_fd = self.transport.fileno(), self.tun.fd
        hub = get_hub()
        hub_fd = hub.loop.fileno()
        hub_turn = hub.loop.timer(0.0)
        epoll = get_original("select", "epoll")()      # gevent's monkey patching hides it
        for fd in (net_fd, tun_fd, hub_fd):
            epoll.register(fd, select.EPOLLIN)
        poll, mono, wait, wait_idle = epoll.poll, time.monotonic, hub.wait, self._idle.wait
        keep_warm = self.keep_warm
        density, rhythm = Density(), Rhythm()
        net_ready = tun_ready = True            # drain whatever arrived before the start
        hub_due = 0.0
        warm_until = 0.0                        # dense traffic: warm until then
        native_until = 0.0                      # linger or rhythm window: the epoll until then
        expecting = False                       # in a rhythm window, its packet not yet here
        hub_postponed = hub_asks = yield_cpu = False    # (warmth.py: hub turns, yield)
        woke = None             # (from tun, from peer, a rhythm's beat): decided after the drains
        settle_due = False
        try:
            while True:
                if net_ready:
                    net_ready = not drain_net()     # drained to EAGAIN: wait for the next
                    settle_due = True
                if tun_ready:
                    tun_ready = not drain_tun()
                if woke is not None:    # what the wakeup's packets decide, once they went on
                    now = mono()
                    warm_until, native_until, yield_cpu = after_packets(
                        now, density.dense(now), keep_warm, warm_until, woke[0], woke[1])
                if yield_cpu:       # light traffic: whom the peer's packet woke runs first (warmth.py)
                    yield_cpu = os.sched_yield()    # (None)
                if settle_due:      # drain_net's counters and timers: after the yield, as the rhythm
                    settle_due = settle()           # (None)
                if woke is not None:
                    if woke[2]:
                        rhythm.arrived(now)
                    woke = None
                now = mono()
                idle = not (net_ready or tun_ready) and now >= warm_until and now >= native_until
                # Timers' turn while busy (full batches, warm loop); a linger/window ends in the hub.
                if hub_asks or now >= hub_due and (net_ready or tun_ready or now < warm_until):
                    if net_ready or tun_ready or hub_postponed or hub_asks:
                        hub_postponed = hub_asks = False
                        wait(hub_turn)              # one hub iteration: its epoll, due timers, callbacks
                        hub_due = now + HUB_INTERVAL_SECONDS
                        if net_ready or tun_ready:
                            # One side keeps filling its batches (a flood): try the other one too
                            # now and then (an empty drain is one EAGAIN), else it waits for the end.
                            net_ready = tun_ready = True
                    else:           # the poll(0) below takes an answer already there first
                        hub_postponed = True
                if net_ready or tun_ready:
                    continue                        # full batches: more is waiting
                if idle:
                    hub_postponed = hub_asks = False    # waiting idle is the hub's turn
                    window = rhythm.window() if keep_warm else None
                    if window is not None and window[1] > now:
                        ready = wait_idle(window[0] - now)
                        if ready is None:           # woken just before the predicted packet
                            warm()
                            net_ready = tun_ready = True
                            native_until, expecting = window[1], True
                            hub_due = mono() + HUB_INTERVAL_SECONDS     # it just had its turn
                            continue
                    else:
                        ready = wait_idle()
                    hub_due = mono() + HUB_INTERVAL_SECONDS
                    net_ready, tun_ready = ready == NET_READY, ready == TUN_READY
                    woke, expecting = (tun_ready, net_ready, True), False
                    continue
                warming = now < warm_until
                deadline = min(now + WARM_INTERVAL_SECONDS, hub_due) if warming else native_until
                events = poll(max(deadline - now, 0.0))     # blocks the whole process: bounded
                if not events:
                    if warming and not hub_postponed:   # (a postponed turn's poll(0) is no slice)
                        warm()
                        net_ready = tun_ready = True    # run the drains' code too: keeps it warm
                        hub_due = 0.0                   # and the hub gets a turn after each slice
                    continue
                for fd, _ in events:
                    if fd == net_fd:
                        net_ready = True
                    elif fd == tun_fd:
                        tun_ready = True
                    else:
                        hub_asks = True             # the hub has something to do: its turn next
                if net_ready or tun_ready:
                    hub_asks = False                # a packet makes the hub's fd readable too: warmth.py
                    woke, expecting = (tun_ready, net_ready, expecting), False
        finally:
            epoll.close()
            hub_turn.close()

    def _tun_drainer(self):
        """drain_tun(): read the tun until EAGAIN or DRAIN_BATCH reads, seal what was read
        into one batch buffer and send it; True when the tun was drained. Waits only for
        room in the transport's send buffer."""
        tun_fd = self.tun.fd
        plain = bytearray(MAX_TUN_READ)             # what the tun read: a packet or a super-packet
        plain_view = memoryview(plain)
        read_into = [plain_view]
        vnet_hdr = self.tun.vnet_hdr
        if vnet_hdr:
            # The header is zero or says DATA_VALID (checksum verified: an ordinary packet),
            # or, with the tun's offloads, NEEDS_CSUM and/or GSO: offload.split cuts those.
            vnet_header = bytearray(VNET_HDR_SIZE)
            read_into.insert(0, vnet_header)
        max_batch_bytes, max_batch_count = self.transport.max_batch_bytes, self.transport.max_batch_count
        batch = bytearray(max_batch_bytes + MAX_DATAGRAM_SIZE)   # sealed datagrams back to back
        batch_view = memoryview(batch)
        readv, mono = os.readv, self.mono
        endpoint, drops, keypairs, handshake = self.endpoint, self.drops, self.keypairs, self.handshake
        send, send_batch = self.transport.send, self.transport.send_batch
        mss = self.mss
        mss4, mss6 = mss or (0, 0)
        syn4, syn6 = SYN_FLAGS_OFFSET_IPV4, SYN_FLAGS_OFFSET_IPV6      # the packet is read to the start of plain
        trickle = True          # the last drain sealed at most one packet
        staged = self.staged
        sent_at = self._sent_at
        udp4_at = VNET_HDR.pack(0, 0, 0, 0, IPV4_HEADER_SIZE, UDP_CHECKSUM_OFFSET)[6:]   # csum_start, csum_offset
        udp6_at = VNET_HDR.pack(0, 0, 0, 0, IPV6_HEADER_SIZE, UDP_CHECKSUM_OFFSET)[6:]

        def drain_tun(deferred=False):
            nonlocal trickle
            address = endpoint.address
            keypair = now = None        # looked up per batch (a rekey replaces it), at its first packet
            sealed_count = 0
            size = count = segment = 0
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
                    version = plain[0]
                    if (plain[syn4] & TCP_SYN if version == 0x45 else plain[syn6] & TCP_SYN if version >> 4 == 6
                            else version >> 4 == 4):
                        clamp_mss(plain_view[:n], mss4, mss6, not partial)
                # A local UDP socket's packet (NEEDS_CSUM, no GSO, the checksum where checksum_layout
                # finds it): split's answer without its five calls (issue 19's small packets).
                at = vnet_header[6:10] if offloaded and not vnet_header[1] else None
                if at is not None and ((at == udp4_at and plain[0] == 0x45 and plain[9] == 17 and n >= 28)
                                       or (at == udp6_at and plain[0] >> 4 == 6 and plain[6] == 17 and n >= 48)):
                    flags, pieces = FLAG_CHECKSUM_PARTIAL, ((0, n),)
                elif offloaded:
                    try:
                        partial, pieces = split(plain, 0, n, vnet_header)
                    except OffloadError:
                        drops["offloaded packet from tun"] += 1
                        continue
                    flags = FLAG_CHECKSUM_PARTIAL if partial else 0
                else:
                    flags, pieces = 0, ((0, n),)
                if address is None:
                    drops["no peer address"] += 1
                    continue
                if now is None:
                    now = mono()
                    keypair = keypairs.sending(now)
                    if keypair is not None:
                        seal_into = keypair.seal_into
                for start, end in pieces:
                    # A super-packet's segments are written in place, each in front of its
                    # payload: one is valid until the next is asked for (offload.cut).
                    if keypair is None:             # waits for the handshake (its timers start one)
                        if len(staged) == STAGED_PACKETS:
                            drops["no session"] += 1
                        staged.append((bytes(plain_view[start:end]), flags))
                        continue
                    sealed = end - start + OVERHEAD
                    if sealed > MAX_DATAGRAM_SIZE:
                        drops["oversized packet from tun"] += 1
                        continue
                    if count and (sealed > segment or size + sealed > max_batch_bytes or count == max_batch_count):
                        send_batch(batch_view, size, segment, count, address)
                        size = count = 0
                    if not count:
                        segment = sealed
                    try:
                        seal_into(batch_view[size:], plain_view[start:end], flags)
                    except ValueError:              # the keypair's counter is used up (2^64 - 2^13)
                        drops["no session"] += 1
                        keypair = None
                        continue
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
            if sealed_count:
                if deferred:            # drain_net's answer: settle() tells the handshake, after what came
                    sent_at[0] = now
                else:
                    handshake.data_sent(now, True)
            trickle = sealed_count <= 1
            return drained

        return drain_tun

    def _net_drainer(self, drain_tun):
        """(drain_net, settle). drain_net(): the transport's receive() with deliver() below for
        each datagram; True when the transport was drained. Then forwards what the tun already
        holds: see the end of drain_net. settle(), due after each drain_net: its counters and
        the handshake's timers, after the packets (and the CPU, in light traffic) went on."""
        tun_fd = self.tun.fd
        plain = bytearray(MAX_DATAGRAM_SIZE)      # the payload of one datagram
        plain_view = memoryview(plain)
        keypairs, handshake, endpoint, drops, report = self.keypairs, self.handshake, self.endpoint, self.drops, \
            self.report
        open_into, apply = keypairs.open_into, self.apply
        write, writev, describe = os.write, os.writev, self.transport.describe
        udp4_partial = partial_header(IPV4_HEADER_SIZE, UDP_CHECKSUM_OFFSET)     # as offload.checksum_layout
        udp6_partial = partial_header(IPV6_HEADER_SIZE, UDP_CHECKSUM_OFFSET)     # finds a UDP checksum
        debug = log.isEnabledFor(logging.DEBUG)
        coalescer = self.coalescer
        dynamic = endpoint.dynamic
        mss = self.mss
        mss4, mss6 = mss or (0, 0)
        syn4, syn6 = SYN_FLAGS_OFFSET_IPV4, SYN_FLAGS_OFFSET_IPV6      # the payload starts at 0
        replies = []                # (destination, message) the refusals of one drain answer
        accepted = accepted_bytes = payloads = 0
        accepted_from = accepted_keypair = None

        def refused(e, datagram, source, now_mono):
            drops[e.reason] += 1
            if debug:
                log.debug("dropped %d-byte datagram from %s: %s", len(datagram), describe(source), e.reason)
            if diagnosed(e):
                report.refused(e, source, now_mono)
            reply = getattr(e, "reply", None)       # a cookie reply, our crossed initiation again, a confirmation
            if reply is not None:
                replies.append((e.destination, reply))

        def shake(datagram, source, now_ms, now_mono):
            """A handshake message: True if it completed a handshake (authenticated), None if it
            was taken in or refused as a handshake message of ours (an initiation, a crossed or
            stale one: a TCP connection carrying it stays), False if it is none (not v3)."""
            try:
                actions = handshake.receive(datagram, source, now_mono, now_ms)
            except BadPacket as e:
                refused(e, datagram, source, now_mono)
                return None if len(datagram) >= SMALLEST_MESSAGE and datagram[0] >> 4 == 3 else False
            apply(actions)
            return True if any(type(a) is Established for a in actions) else None

        def deliver(datagram, source, now_ms, now_mono):
            nonlocal accepted, accepted_bytes, accepted_from, accepted_keypair, payloads
            try:
                data = datagram[0] == DATA_TYPE     # (no len(): one call per datagram less)
            except IndexError:                      # an empty datagram
                data = False
            if not data:
                return shake(datagram, source, now_ms, now_mono)
            try:
                n, flags, keypair, confirmed = open_into(datagram, plain_view, now_mono)
            except BadPacket as e:
                refused(e, datagram, source, now_mono)
                return False
            if confirmed:
                apply(handshake.confirmed_by_data(keypair, source, now_mono))
            accepted += 1
            accepted_bytes += n
            accepted_from, accepted_keypair = source, keypair
            if dynamic and endpoint.learn(source, now_mono):
                report.learned(source, now_mono)
            version = plain[0]
            if mss is not None and n:               # the same cheap test as in drain_tun
                if (plain[syn4] & TCP_SYN if version == 0x45 else plain[syn6] & TCP_SYN if version >> 4 == 6
                        else version >> 4 == 4):
                    # A segment flagged "checksum partial" carries the pseudo-header sum only.
                    clamp_mss(plain_view[:n], mss4, mss6, not flags & FLAG_CHECKSUM_PARTIAL)
            if not n:
                return True
            payloads += 1
            packet = plain_view[:n]
            partial = flags & FLAG_CHECKSUM_PARTIAL
            if coalescer is not None:
                # Only TCP is merged: with no merge pending, anything else is written here as add()
                # would write it (3-8 Python calls fewer per small packet): as it came, or a flagged
                # UDP packet right behind an IPv4 header without options or an IPv6 header with
                # NEEDS_CSUM where its checksum is.
                header = PLAIN_VNET_HDR
                if partial:
                    header = (udp4_partial if version == 0x45 and plain[9] == 17 and n >= 28 else
                              udp6_partial if version >> 4 == 6 and plain[6] == 17 and n >= 48 else None)
                if header is None or coalescer.pending or plain[9 if version >> 4 == 4 else 6] == 6:
                    coalescer.add(packet, partial)
                    return True
            elif partial:
                complete_partial(packet)            # a tun without vnet headers: completed here
            try:
                if coalescer is None:
                    write(tun_fd, packet)
                else:
                    writev(tun_fd, (header, packet))
            except BlockingIOError:
                drops["tun full"] += 1
            except OSError as e:
                # e.g. EINVAL for a payload that is not an IP packet: the peer's problem.
                drops["tun write error"] += 1
                self.warn(("tun", e.errno), "writing %s failed: %s", self.tun.name, e.strerror)
            return True

        receive = self.transport.receiver(deliver, self.wall, self.mono)

        sent_at = self._sent_at

        def settle():
            nonlocal accepted
            if accepted:
                now = self.mono()
                self.received += accepted
                self.received_bytes += accepted_bytes + accepted * OVERHEAD
                report.received(accepted_from, accepted_keypair, now)
                handshake.data_received(now, payloads > 0)
                accepted = 0
            if sent_at[0] is not None:      # the answer went after what came: the handshake hears it so
                handshake.data_sent(sent_at[0], True)
                sent_at[0] = None

        def drain_net():
            nonlocal accepted, accepted_bytes, payloads
            accepted = accepted_bytes = payloads = 0
            drained = receive()
            if replies:
                self.transport.send_replies(replies)
                replies.clear()
            if coalescer is not None and coalescer.pending and (drained or not accepted):
                # Cut short by the datagram bound (udp.DRAIN_DATAGRAMS) while packets flow, the
                # drain leaves the packet being merged open: the next drain, at once, goes on
                # with it, and merges stay as large as when drains were long. A drain that
                # accepted nothing (a flood of forged datagrams) closes it.
                coalescer.flush()
            if accepted:
                # What was just written to the tun is often answered at once: the kernel
                # runs the local receiver (ping, a TCP ACK) inside the write, so the
                # answer already waits in the tun. Sending it now saves a wakeup; the
                # counters and the handshake's timers wait for settle().
                drain_tun(True)
            return drained

        return drain_net, settle

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
        """warm(): warmth.warmer's throwaway seal and open (tests count its calls)."""
        return warmer(time.monotonic)

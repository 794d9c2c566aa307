"""The running link: composes a tun, a datagram transport and the scheduler; housekeeping, shutdown.

  Link(tun, transport, sending, receiver, endpoint, drops, ...) -- everything is built
  by the caller (assembly.py): the transport (udp.py, with or without offloads), the
  send session (session.SendSession: a sealer factory drawing the session id from the
  caller's clock and randomness), the Receiver, the PeerEndpoint, the drop counter
  the transport counts into too, and the clock.
  Link.status() is the status dict of status.py (`vpn show`, SIGUSR1, the stop line);
  Link.report (report.py) says what is worth a log line.
Greenlets:
  Scheduler.run   moves packets both ways (scheduler.py)
  _housekeeping   once a second: forget a stale dynamic address, send keepalives,
                  notice a silent peer
A TomatoError in either (a tun that fails, say) stops the link and is raised from
serve_forever() for the CLI to log as one line; anything else is a bug and keeps its
traceback.
"""
import collections
import logging
import os
import time

import gevent
from gevent.event import Event

from ..errors import TomatoError
from .packet import OVERHEAD, PAYLOAD_OFFSET
from .peerwatch import silence_threshold
from .report import LinkReport
from .scheduler import WARM_AFTER_TRAFFIC_SECONDS, Scheduler
from .status import build_status, format_status_line

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0
KEEPALIVE_SECONDS = 25.0                # below common NAT UDP timeouts (30 s)

Clock = collections.namedtuple("Clock", "wall mono")    # seconds: time.time-like, time.monotonic-like
SYSTEM_CLOCK = Clock(time.time, time.monotonic)


class Link:
    def __init__(self, tun, transport, sending, receiver, endpoint, drops, keepalive=KEEPALIVE_SECONDS,
                 clock=SYSTEM_CLOCK, stop_event=None, silent_after=None, peer_host=None,
                 keep_warm=WARM_AFTER_TRAFFIC_SECONDS, mss=None, versions=None):
        self.tun = tun
        self.transport = transport
        self.sending = sending
        self.receiver = receiver
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.clock = clock
        self.drops = drops          # collections.Counter, reason -> count: the transport counts into it too
        self.peer_host = peer_host              # the -pa host as given, for the status
        self.started = clock.mono()
        if silent_after is None:
            silent_after = silence_threshold(keepalive)
        self.report = LinkReport(tun.name, endpoint, receiver.pvt_seconds, silent_after, transport.describe,
                                 self.started, clock.wall, versions=versions)
        self.scheduler = Scheduler(tun, transport, sending, receiver, endpoint, self.drops, self.report,
                                   clock.wall, clock.mono, announce=self.send_keepalive, keep_warm=keep_warm,
                                   mss=mss)
        self._stopped = Event() if stop_event is None else stop_event
        self._greenlets = []
        self._error = None

    @property
    def sent(self):
        return self.transport.sent

    @property
    def received(self):
        return self.scheduler.received

    # -- lifecycle ------------------------------------------------------------------
    def serve_forever(self):
        """Run until stop() or a fatal device error (raised as TomatoError)."""
        self.transport.start(self.send_keepalive)
        for loop in (self.scheduler.run, self._housekeeping):
            g = gevent.spawn(self._guarded, loop)
            g.link_exception(self._crashed)
            self._greenlets.append(g)
        try:
            self._stopped.wait()
        finally:
            gevent.killall(self._greenlets)
            self.scheduler.close()
        if self._error is not None:
            raise self._error

    def stop(self):
        self._stopped.set()

    def _guarded(self, loop):
        """Run loop; a TomatoError ends the link quietly here (the CLI logs it once),
        so gevent does not print it as a crash as well."""
        try:
            loop()
        except TomatoError as e:
            self._error = e
            self._stopped.set()

    def _crashed(self, greenlet):
        e = greenlet.exception
        self._error = TomatoError("link failed: %r" % (e,))
        self._stopped.set()

    def move_peer(self, address):
        """The peer's fixed address changed (its -pa name resolves elsewhere now)."""
        self.endpoint.address = address
        self.transport.peer_moved(address)

    @property
    def watch(self):
        """status.PeerWatch: when the peer was last heard, whether it is silent."""
        return self.report.watch

    def status(self):
        """The status dict of status.py: what `vpn show`, SIGUSR1 and the stop line report."""
        address, describe = self.endpoint.address, self.transport.describe
        return build_status(
            interface=self.tun.name, listen_address=describe(self.transport.local_address()),
            peer_address=describe(address) if address is not None else None, peer_host=self.peer_host,
            dynamic=self.endpoint.dynamic, session_id=self.receiver.session_id,
            last_received=self.watch.last_received, started=self.started, now=self.clock.mono(),
            now_ms=int(self.clock.wall() * 1000), rx_packets=self.received, rx_bytes=self.scheduler.received_bytes,
            tx_packets=self.sent, tx_bytes=self.transport.sent_bytes, drops=self.drops, pid=os.getpid())

    def stats(self):
        """The status in one line."""
        return format_status_line(self.status())

    # -- housekeeping ------------------------------------------------------------------
    def send_keepalive(self):
        address = self.endpoint.address
        if address is None:
            return
        out = bytearray(OVERHEAD)
        size = self.sending.seal_into(out, bytearray(PAYLOAD_OFFSET), int(self.clock.wall() * 1000))
        self.transport.send(memoryview(out)[:size], address)

    def _housekeeping(self):
        self.send_keepalive()     # announce our (new) session right away: a restarted peer recovers
        last_counter = self.sending.sealer.counter
        mono = self.clock.mono
        idle_since = mono()
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = mono()
            address = self.endpoint.address
            if self.endpoint.expire(now):
                self.report.forgot(address, now)
            self.report.tick(now)
            if self.sending.sealer.counter != last_counter:
                last_counter = self.sending.sealer.counter
                idle_since = now
            elif self.keepalive and now - idle_since >= self.keepalive:
                self.send_keepalive()
                last_counter = self.sending.sealer.counter
                idle_since = now

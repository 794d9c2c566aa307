"""The running link: composes a tun, a datagram transport and the scheduler; housekeeping, shutdown.

  Link(tun, transport, handshake, endpoint, drops, ...) -- everything is built by the
  caller (assembly.py): the transport (udp.py, with or without offloads), the handshake
  (handshake.py: the pure v3 state machine, holding the keypairs the data path seals and
  opens with), the PeerEndpoint it sends initiations to, the drop counter the transport
  counts into too, and the clock.
  Link.apply(actions) carries out what the handshake asks for (send a message, a session
  is up, send a keepalive); the scheduler calls it for handshake messages it received.
  Link.status() is the status dict of status.py (`vpn show`, SIGUSR1, the stop line);
  Link.report (report.py) says what is worth a log line.
Greenlets:
  Scheduler.run   moves packets both ways (scheduler.py)
  _housekeeping   at start and once a second: the handshake's timers (initiate, rekey,
                  retry, keepalive after received data), forget a stale dynamic address,
                  send keepalives while idle, notice a silent peer
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
from .handshake import Established, Send, SendKeepalive
from .keypair import OVERHEAD
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
    def __init__(self, tun, transport, handshake, endpoint, drops, keepalive=KEEPALIVE_SECONDS,
                 clock=SYSTEM_CLOCK, stop_event=None, silent_after=None, peer_host=None,
                 keep_warm=WARM_AFTER_TRAFFIC_SECONDS, mss=None):
        self.tun = tun
        self.transport = transport
        self.handshake = handshake
        self.keypairs = handshake.keypairs
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.clock = clock
        self.drops = drops          # collections.Counter, reason -> count: the transport counts into it too
        self.peer_host = peer_host              # the -pa host as given, for the status
        self.started = clock.mono()
        if silent_after is None:
            silent_after = silence_threshold(keepalive)
        self.report = LinkReport(tun.name, endpoint, handshake.pvt_ms / 1000.0, silent_after, transport.describe,
                                 self.started, clock.wall)
        self.scheduler = Scheduler(tun, transport, handshake, endpoint, self.drops, self.report,
                                   clock.wall, clock.mono, apply=self.apply, keep_warm=keep_warm, mss=mss)
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
        self.transport.start(self.announce)
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

    # -- the handshake's actions ---------------------------------------------------------
    def apply(self, actions):
        """Carry out what the handshake returned: messages to send, sessions that are up."""
        for action in actions:
            if type(action) is Send:
                view = memoryview(action.message)
                if action.reply:
                    self.transport.reply(view, action.destination)
                elif action.destination is not None:
                    self.transport.send(view, action.destination)
            elif type(action) is Established:
                now = self.clock.mono()
                if self.endpoint.dynamic and self.endpoint.learn(action.source, now):
                    self.report.learned(action.source, now)
                self.report.established(action.source, action.keypair, action.initiator, now)
                self.report.received(action.source, action.keypair, now)   # heard from the peer: tunnel up
                self.scheduler.send_staged()
            elif type(action) is SendKeepalive:
                self.send_keepalive()

    def announce(self, dialled=True):
        """The TCP transport calls it. A connection to the peer opened (dialled): start a
        handshake on it at once -- one in flight went out on no connection or the old one, and
        the peer may have restarted (a lost connection is how a TCP peer's restart shows), its
        keys gone; if it did not, this is an early rekey. A connection the peer dialled became
        the current one (not dialled): a keepalive on it, if we have keys, so the dialler trusts
        it at once."""
        if not dialled and self.keypairs.sending(self.clock.mono()) is not None:
            self.send_keepalive()
            return
        self.apply(self.handshake.initiate(self.clock.mono(), int(self.clock.wall() * 1000)))

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
            dynamic=self.endpoint.dynamic, session=self.keypairs.current,
            last_received=self.watch.last_received, started=self.started, now=self.clock.mono(),
            now_ms=int(self.clock.wall() * 1000), rx_packets=self.received, rx_bytes=self.scheduler.received_bytes,
            tx_packets=self.sent, tx_bytes=self.transport.sent_bytes, drops=self.drops, pid=os.getpid())

    def stats(self):
        """The status in one line."""
        return format_status_line(self.status())

    # -- housekeeping ------------------------------------------------------------------
    def send_keepalive(self):
        """An empty data datagram under the current keypair (none without one: the
        handshake's timers start one)."""
        address = self.endpoint.address
        keypair = self.keypairs.sending(self.clock.mono())
        if address is None or keypair is None:
            return
        out = bytearray(OVERHEAD)
        size = keypair.seal_into(out, b"")
        self.handshake.data_sent(self.clock.mono(), False)
        self.transport.send(memoryview(out)[:size], address)

    def _housekeeping(self):
        mono, wall = self.clock.mono, self.clock.wall
        self.apply(self.handshake.tick(mono(), int(wall() * 1000)))    # at once: a restarted side is back fast
        last_sent = self.transport.sent
        idle_since = mono()
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = mono()
            address = self.endpoint.address
            if self.endpoint.expire(now):
                self.report.forgot(address, now)
            self.report.tick(now)
            self.apply(self.handshake.tick(now, int(wall() * 1000)))
            if self.transport.sent != last_sent:
                last_sent = self.transport.sent
                idle_since = now
            elif self.keepalive and now - idle_since >= self.keepalive:
                self.send_keepalive()
                last_sent = self.transport.sent
                idle_since = now

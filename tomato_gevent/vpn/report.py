"""What a running link says at the default log level (glue over peerwatch.py and status.py).

The data path calls it with what it saw; it decides, with PeerWatch and throttle.LogThrottle,
whether that is worth a line:
  received(source, keypair, now)      once per drain that accepted something:
                                      "tunnel IFACE up" on the first authenticated
                                      datagram, "peer ... back" after a silence
  established(source, keypair, initiator, now)   a handshake completed: the first one
                                      at INFO, rekeys at DEBUG; one the peer started
                                      before a rekey was due at INFO (it restarted)
  refused(error, source, now)         a handshake whose passwords do not match, a
                                      refused clock, another protocol version, from the
                                      peer's address: a throttled warning naming the
                                      likely mistake (other refusals stay DEBUG lines
                                      and counters)
  learned(address, now) / forgot(address, now)   dynamic mode's address changes: each
                                      one (a peer flapping between addresses is cut
                                      at ADDRESS_LINES_PER_INTERVAL lines a minute)
  tick(now)                           once a second: "peer silent since ..."
Each diagnostic cause is throttled to one line per THROTTLE_SECONDS; the lines held
back are counted in the next one. `now` is monotonic seconds; wall() converts for the log.
"""
import logging
import time

from .handshake import HandshakeTimestampRefused, PasswordMismatch
from .keypair import REKEY_AFTER_SECONDS
from .keyschedule import PROTOCOL
from .peerwatch import PeerWatch
from .status import clock_skew_message, format_duration
from .throttle import LogThrottle
from .versions import VersionMismatch

log = logging.getLogger(__name__)

THROTTLE_SECONDS = 60.0                 # at most one diagnostic line per cause per minute
ADDRESS_LINES_PER_INTERVAL = 10         # address changes told per THROTTLE_SECONDS; more are counted


def diagnosed(error):
    """True for the refusals LinkReport.refused explains: passwords, clock, version."""
    return isinstance(error, (PasswordMismatch, HandshakeTimestampRefused, VersionMismatch))


class LinkReport:
    def __init__(self, interface, endpoint, pvt_seconds, silent_after, describe, now, wall=time.time,
                 throttle_seconds=THROTTLE_SECONDS):
        self.interface = interface
        self.endpoint = endpoint            # PeerEndpoint: whose address counts as "the peer's"
        self.pvt_seconds = pvt_seconds
        self.describe = describe            # sockaddr -> text
        self.watch = PeerWatch(silent_after, now)
        self.throttle = LogThrottle(log, throttle_seconds)      # diagnostics, as warnings
        self.address_throttle = LogThrottle(log, throttle_seconds, burst=ADDRESS_LINES_PER_INTERVAL)
        self._mono_to_wall = wall() - now
        self._handshakes = 0
        self._session = None                # (session id, when) of the last completed handshake
        self._told_address = None           # the learned address in the last "peer address" line

    # -- events from the data path -------------------------------------------------
    def received(self, source, keypair, now):
        event = self.watch.received(now)
        if event == PeerWatch.UP:
            log.info("tunnel %s up: first authenticated datagram from %s (session %08x)",
                     self.interface, self.describe(source), keypair.local_index)
        elif event == PeerWatch.BACK:
            log.info("peer %s back after %s of silence", self.describe(source),
                     format_duration(now - self._silent_from))

    def established(self, source, keypair, initiator, now):
        first = not self._handshakes
        self._handshakes += 1
        log.log(logging.INFO if first else logging.DEBUG, "handshake with %s complete (%s, session %08x)",
                self.describe(source), "we initiated" if initiator else "the peer initiated", keypair.local_index)
        session = keypair.remote_index << 32 | keypair.local_index
        if not initiator and self._session is not None and now - self._session[1] < REKEY_AFTER_SECONDS:
            # Only the peer's passwords complete a handshake: the peer started one before a
            # rekey was due -- it restarted (or, over TCP, lost its connection).
            log.info("peer %s started a new session %016x (was %016x): it restarted", self.describe(source),
                     session, self._session[0])
        self._session = (session, now)

    def refused(self, error, source, now):
        """A refusal that diagnosed(error) accepts."""
        if not self._from_peer(source):
            return          # noise from elsewhere (scanners, an old peer address): counters only
        if isinstance(error, PasswordMismatch):
            self._throttled("auth", now, "handshake with %s failed: the passwords do not match (-pp here must be "
                                         "-lp there, and the other way round)", self.describe(source))
        elif isinstance(error, HandshakeTimestampRefused):
            self._throttled("clock", now, "handshake from %s refused: %s", self.describe(source),
                            clock_skew_message(error.skew_ms, self.pvt_seconds))
        elif isinstance(error, VersionMismatch):
            self._throttled("version", now, "%s speaks tomato-vpn v%d, this end speaks %s: run the same version on "
                                            "both ends", self.describe(source), error.version, PROTOCOL)

    def learned(self, address, now):
        held = self.address_throttle.admit("address", now)
        if held is None:
            log.debug("peer address is now %s", self.describe(address))
            return
        was = "" if self._told_address is None else " (was %s)" % self.describe(self._told_address)
        more = "" if not held else " (%d more changes in the last %s)" % (
            held, format_duration(self.address_throttle.interval))
        log.info("peer address is now %s%s%s", self.describe(address), was, more)
        self._told_address = address

    def forgot(self, address, now):
        log.info("forgot peer address %s: nothing authentic for %g s", self.describe(address),
                 self.endpoint.forget_after)

    def tick(self, now):
        if self.watch.check(now) == PeerWatch.SILENT:
            self._silent_from = self.watch.silent_since
            if self.watch.last_received is None:
                log.warning("peer silent since the start (%s): no authenticated datagram yet",
                            format_duration(now - self._silent_from))
            else:
                log.warning("peer silent since %s (%s): no authenticated datagram",
                            time.strftime("%H:%M:%S", time.localtime(self._silent_from + self._mono_to_wall)),
                            format_duration(now - self._silent_from))

    # -- helpers ------------------------------------------------------------------------
    def _from_peer(self, source):
        """Fixed peer: from its host (any port: NAT may change it). Dynamic: from the
        learned host, or from anyone while none is known (a peer with a wrong password
        is never learned)."""
        known = self.endpoint.address
        if known is None:
            return self.endpoint.dynamic
        source, known = getattr(source, "peer", source), getattr(known, "peer", known)   # TCP: its sockaddr
        return source[0] == known[0]

    def _throttled(self, cause, now, msg, *args):
        self.throttle(cause, msg, *args, now=now)


__all__ = ["LinkReport", "diagnosed"]

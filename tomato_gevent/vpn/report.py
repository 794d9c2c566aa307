"""What a running link says at the default log level (glue over peerwatch.py and status.py).

The data path calls it with what it saw; it decides, with PeerWatch and throttle.LogThrottle,
whether that is worth a line:
  received(source, session_id, now)   once per drain that accepted something:
                                      "tunnel IFACE up" on the first authenticated
                                      datagram, "peer ... back" after a silence, a
                                      new peer session (the peer restarted) every time
  refused(error, source, now, datagram)
                                      an authentication failure or a refused clock
                                      from the peer's address: a throttled warning
                                      naming the likely mistake -- the peer's older
                                      protocol version when versions.VersionProbe
                                      recognises the datagram (other refusals stay
                                      DEBUG lines and counters)
  learned(address, now) / forgot(address, now)   dynamic mode's address changes: each
                                      one (a peer flapping between addresses is cut
                                      at ADDRESS_LINES_PER_INTERVAL lines a minute)
  tick(now)                           once a second: "peer silent since ..."
Each diagnostic cause is throttled to one line per THROTTLE_SECONDS; the lines held
back are counted in the next one. `now` is monotonic seconds; wall() converts for the log.
"""
import logging
import time

from .packet import PROTOCOL
from .peerwatch import PeerWatch
from .session import AUTHENTICATION_FAILED, SHORT_DATAGRAM, TimestampRefused
from .status import clock_skew_message, format_duration
from .throttle import LogThrottle

log = logging.getLogger(__name__)
_DIAGNOSED = (AUTHENTICATION_FAILED, SHORT_DATAGRAM)

THROTTLE_SECONDS = 60.0                 # at most one diagnostic line per cause per minute
ADDRESS_LINES_PER_INTERVAL = 10         # address changes told per THROTTLE_SECONDS; more are counted


def diagnosed(error):
    """True for the refusals LinkReport.refused explains: failed authentication, a refused clock,
    and a datagram too short for this version (a v2 keepalive is: 36 bytes)."""
    return error.reason in _DIAGNOSED or isinstance(error, TimestampRefused)


class LinkReport:
    def __init__(self, interface, endpoint, pvt_seconds, silent_after, describe, now, wall=time.time,
                 throttle_seconds=THROTTLE_SECONDS, versions=None):
        self.interface = interface
        self.endpoint = endpoint            # PeerEndpoint: whose address counts as "the peer's"
        self.versions = versions            # versions.VersionProbe or None
        self.pvt_seconds = pvt_seconds
        self.describe = describe            # sockaddr -> text
        self.watch = PeerWatch(silent_after, now)
        self.throttle = LogThrottle(log, throttle_seconds)      # diagnostics, as warnings
        self.address_throttle = LogThrottle(log, throttle_seconds, burst=ADDRESS_LINES_PER_INTERVAL)
        self._mono_to_wall = wall() - now
        self._session = None                # the peer session of the last received() call
        self._told_address = None           # the learned address in the last "peer address" line

    # -- events from the data path -------------------------------------------------
    def received(self, source, session_id, now):
        event = self.watch.received(now)
        if event == PeerWatch.UP:
            log.info("tunnel %s up: first authenticated datagram from %s (peer session %016x)",
                     self.interface, self.describe(source), session_id)
        elif event == PeerWatch.BACK:
            log.info("peer %s back after %s of silence", self.describe(source),
                     format_duration(now - self._silent_from))
        if self._session is not None and session_id != self._session:
            # Only the peer's password makes a session that opens: this is the peer, restarted
            # (or renewing its session when its counter ran out).
            log.info("peer %s started a new session %016x (was %016x): it restarted", self.describe(source),
                     session_id, self._session)
        self._session = session_id

    def refused(self, error, source, now, datagram=None):
        """A refusal that diagnosed(error) accepts; datagram: the refused one, if at hand."""
        if not self._from_peer(source):
            return          # noise from elsewhere (scanners, an old peer address): counters only
        older = None
        if error.reason in _DIAGNOSED and self.versions is not None and datagram is not None:
            older = self.versions.older_version(datagram, now)
        if older is not None:
            self._throttled("version", now, "datagrams from %s are protocol %s, this end speaks %s: run the same "
                                            "version on both ends", self.describe(source), older, PROTOCOL)
        elif error.reason == AUTHENTICATION_FAILED:
            self._throttled("auth", now, "datagrams from %s fail authentication: check the passwords, that -pp "
                                         "here matches -lp there, and that both ends run the same protocol version "
                                         "(%s)", self.describe(source), PROTOCOL)
        elif isinstance(error, TimestampRefused):
            self._throttled("clock", now, "datagrams from %s refused: %s", self.describe(source),
                            clock_skew_message(error.skew_ms, self.pvt_seconds))

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

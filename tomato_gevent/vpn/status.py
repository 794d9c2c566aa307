"""What the running vpn reports and when it speaks up (pure: clocks are passed in).

  build_status(...)      the status as a dict: the JSON contract of `vpn show --json`
                         (keys below), also the source of every human-readable view
  format_status(status)  the multi-line view of `vpn show` (like `wg show`)
  format_status_line(status)  the same in one line: SIGUSR1, SIGHUP and the stop line
  LogThrottle            at most one log line (or a small burst) per cause per interval
                         (default 60 s), counting what it held back
  PeerWatch              tunnel up (first authenticated datagram), peer silent (nothing
                         authenticated for silence_threshold(keepalive)), peer back
  clock_skew_message     the wording of the timestamp diagnostic

JSON keys (all present; null where unknown):
  interface, listen_address, peer_address, peer_host (the -pa host as given),
  dynamic (true: the peer's address is learned), peer_learned (a learned address is known),
  peer_session (16 hex digits), peer_session_age_seconds (by the session id's start time),
  last_received_seconds_ago, rx_packets, rx_bytes, tx_packets, tx_bytes (datagram bytes on
  the wire, overhead included), drops (reason -> count), uptime_seconds, pid (the vpn's
  process id: which process answered, e.g. in which network namespace).
"""
import collections

from .packet import session_start_ms

THROTTLE_SECONDS = 60.0                 # at most one diagnostic line per cause per minute
SILENT_MIN_SECONDS = 60.0               # silence_threshold's floor
SILENT_KEEPALIVES = 3                   # ... or this many keepalive intervals, whichever is longer


def silence_threshold(keepalive_seconds):
    """Seconds without an authenticated datagram after which the peer counts as silent."""
    return max(SILENT_KEEPALIVES * keepalive_seconds, SILENT_MIN_SECONDS)


def _round(seconds):
    return None if seconds is None else round(max(0.0, seconds), 1)


def build_status(*, interface, listen_address, peer_address, peer_host, dynamic, session_id,
                 last_received, started, now, now_ms, rx_packets, rx_bytes, tx_packets, tx_bytes, drops, pid=None):
    """The status dict. last_received/started/now are monotonic seconds, now_ms wall-clock ms;
    addresses are already formatted strings (or None)."""
    session_age = None
    if session_id is not None:
        session_age = (now_ms - session_start_ms(session_id)) / 1000.0
    return {
        "interface": interface,
        "listen_address": listen_address,
        "peer_address": peer_address,
        "peer_host": peer_host,
        "dynamic": dynamic,
        "peer_learned": dynamic and peer_address is not None,
        "peer_session": None if session_id is None else "%016x" % session_id,
        "peer_session_age_seconds": _round(session_age),
        "last_received_seconds_ago": None if last_received is None else _round(now - last_received),
        "rx_packets": rx_packets,
        "rx_bytes": rx_bytes,
        "tx_packets": tx_packets,
        "tx_bytes": tx_bytes,
        "drops": dict(sorted(drops.items())),
        "uptime_seconds": _round(now - started),
        "pid": pid,
    }


def format_duration(seconds):
    """12 s, 5 min 3 s, 2 h 5 min, 3 d 4 h: the two largest units."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append("%d %s" % (seconds // size, unit))
            seconds %= size
    return " ".join(parts[:2])


def format_bytes(count):
    """1023 B, 1.50 KiB, 12.34 MiB ... (binary units, as wg show)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "%d B" % count if unit == "B" else "%.2f %s" % (value, unit)
        value /= 1024


def _peer_text(status):
    address = status["peer_address"]
    if status["dynamic"]:
        return "%s (learned)" % address if address else "none known (dynamic mode: learned from its datagrams)"
    if address is None:
        return "%s (not resolved yet)" % status["peer_host"]
    if status["peer_host"] and status["peer_host"] not in address:
        return "%s (%s)" % (address, status["peer_host"])
    return address


def _drops_text(drops):
    return ", ".join("%s: %d" % item for item in drops.items()) or "none"


def format_status(status):
    """The human view of `vpn show`, one fact per line."""
    lines = ["interface: %s" % status["interface"],
             "  listening on: %s" % status["listen_address"],
             "  peer: %s" % _peer_text(status)]
    if status["peer_session"] is not None:
        lines.append("  peer session: %s, started %s ago" % (
            status["peer_session"], format_duration(status["peer_session_age_seconds"])))
    else:
        lines.append("  peer session: none yet")
    ago = status["last_received_seconds_ago"]
    lines.append("  latest authenticated datagram: %s" % ("never" if ago is None else format_duration(ago) + " ago"))
    lines.append("  transfer: %s received (%d packets), %s sent (%d packets)" % (
        format_bytes(status["rx_bytes"]), status["rx_packets"], format_bytes(status["tx_bytes"]),
        status["tx_packets"]))
    lines.append("  drops: %s" % _drops_text(status["drops"]))
    lines.append("  uptime: %s" % format_duration(status["uptime_seconds"]))
    if status.get("pid") is not None:           # absent in the answer of an older vpn
        lines.append("  process id: %d" % status["pid"])
    return "\n".join(lines)


def format_status_line(status):
    """The same facts in one log line (counters exact, no units rounded away)."""
    ago = status["last_received_seconds_ago"]
    return ("%s: peer %s, last datagram %s, received %d packets (%d bytes), sent %d packets (%d bytes), "
            "dropped %s, up %s" % (
                status["interface"], _peer_text(status), "never" if ago is None else "%s ago" % format_duration(ago),
                status["rx_packets"], status["rx_bytes"], status["tx_packets"], status["tx_bytes"],
                _drops_text(status["drops"]), format_duration(status["uptime_seconds"])))


class LogThrottle:
    """At most `burst` lines per cause within any `interval`; admit() says whether to log now.

    burst 1 for diagnostics that repeat (one line a minute); a small burst for events that
    come in sequences (a connection lost and made again is told in full, not cut after
    "lost").
    """

    def __init__(self, interval=THROTTLE_SECONDS, burst=1):
        self.interval = interval
        self.burst = burst
        self._recent = {}       # cause -> deque of the monotonic seconds of its last `burst` lines
        self._held = {}         # cause -> lines held back since

    def admit(self, cause, now):
        """None: hold this one back. Otherwise the number held back since the last line."""
        recent = self._recent.get(cause)
        if recent is None:
            recent = self._recent[cause] = collections.deque(maxlen=self.burst)
        if len(recent) == self.burst and now - recent[0] < self.interval:
            self._held[cause] = self._held.get(cause, 0) + 1
            return None
        recent.append(now)
        return self._held.pop(cause, 0)


class PeerWatch:
    """Is the peer talking? Fed with authenticated receptions and the clock.

    received(now) -> "up" on the very first authenticated datagram, "back" on the
    first after a silence, else None. check(now) -> "silent" once when nothing
    authenticated came for `silent_after` seconds (counted from the start before
    the first), else None.
    """

    UP, SILENT, BACK = "up", "silent", "back"

    def __init__(self, silent_after, now):
        self.silent_after = silent_after
        self.started = now
        self.last_received = None
        self.silent_since = None        # last_received (or start) when the silence was noticed

    @property
    def silent(self):
        return self.silent_since is not None

    def received(self, now):
        first = self.last_received is None
        self.last_received = now
        if first:
            self.silent_since = None
            return self.UP
        if self.silent_since is not None:
            self.silent_since = None
            return self.BACK
        return None

    def check(self, now):
        since = self.started if self.last_received is None else self.last_received
        if self.silent_since is None and now - since >= self.silent_after:
            self.silent_since = since
            return self.SILENT
        return None


def clock_skew_message(skew_ms, pvt_seconds):
    """skew_ms = the datagram's timestamp minus our clock."""
    return "peer clock differs by %+.0f s; -pvt is %g s (datagrams outside it are refused: sync the clocks, " \
           "e.g. with NTP)" % (skew_ms / 1000.0, pvt_seconds)


__all__ = ["build_status", "format_status", "format_status_line", "format_duration", "format_bytes",
           "LogThrottle", "PeerWatch", "silence_threshold", "clock_skew_message"]

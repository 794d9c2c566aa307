"""Is the peer talking? (pure: the clock is passed in).

  silence_threshold(keepalive)  seconds without an authenticated datagram after which the
                                peer counts as silent: 3 keepalive intervals, at least 60 s
  PeerWatch                     tunnel up (first authenticated datagram), peer silent
                                (nothing authenticated for the threshold), peer back
report.py turns its events into log lines; link.py answers `vpn show` from last_received.
"""
SILENT_MIN_SECONDS = 60.0               # silence_threshold's floor
SILENT_KEEPALIVES = 3                   # ... or this many keepalive intervals, whichever is longer


def silence_threshold(keepalive_seconds):
    """Seconds without an authenticated datagram after which the peer counts as silent."""
    return max(SILENT_KEEPALIVES * keepalive_seconds, SILENT_MIN_SECONDS)


class PeerWatch:
    """Fed with authenticated receptions and the clock.

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


__all__ = ["PeerWatch", "silence_threshold"]

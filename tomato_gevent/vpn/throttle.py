"""How often a repeating cause may speak up in the log (glue: it logs; the decision is pure).

LogThrottle(logger, interval, burst, level) is called like a logging method with a cause
first: throttle(cause, msg, *args). It lets through at most `burst` lines per cause within
any `interval` seconds at `level`; the lines beyond go to DEBUG, and the next line let
through says how many were held back ("(12 more like this in the last 10 s)").

burst 1 for diagnostics and errors that repeat per packet (a failed send, a tun write
error, a peer with the wrong password: one line per interval); a small burst for events
that come in sequences (a TCP connection lost and made again is told in full, not cut
after "lost"). admit(cause, now) is the decision alone (no logging), for callers that
word the count themselves; `now` is monotonic seconds, read from `monotonic` when a call
does not pass it.
"""
import collections
import logging
import time

from .status import format_duration

INTERVAL_SECONDS = 10.0         # the data path's errors: at most one line per cause in 10 s


class LogThrottle:
    def __init__(self, logger, interval=INTERVAL_SECONDS, burst=1, level=logging.WARNING, monotonic=time.monotonic):
        self.interval = interval
        self.burst = burst
        self._log = logger
        self._level = level
        self._monotonic = monotonic
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

    def __call__(self, cause, msg, *args, now=None):
        held = self.admit(cause, self._monotonic() if now is None else now)
        if held is None:
            self._log.debug(msg, *args)
            return
        if held:
            msg += " (%d more like this in the last %s)"
            args += (held, format_duration(self.interval))
        self._log.log(self._level, msg, *args)


__all__ = ["LogThrottle", "INTERVAL_SECONDS"]

"""When the data path waits cheaply and when it stays warm (pure: the clock is passed in).

The scheduler waits for packets in one of two places. In the gevent hub it costs nothing
while idle, but a packet then wakes the process through the hub and finds the caches cold.
In its own epoll (which also holds the hub's fd, so other greenlets' sockets and signals
still wake it, and which it leaves for a hub iteration at least every HUB_INTERVAL_SECONDS)
a packet wakes straight into the loop. Warm waiting also seals and opens a throwaway packet
every WARM_INTERVAL_SECONDS: 500 wakeups a second, so it is spent only where it pays:

  dense traffic   DENSE_EVENTS packet wakeups within DENSE_WINDOW_SECONDS (a bulk transfer, a
                  busy interactive session): warm until keep_warm seconds after the last one
  linger          after each packet, LINGER_SECONDS in the epoll without warming: the answer
                  to what was just sent (a ping reply, an ACK) wakes straight into the loop
  rhythm          traffic at a steady interval (ping -i, keepalives, a polling client): Rhythm
                  predicts the next arrival from the last three, and the path is warmed once,
                  LEAD_SECONDS before it, then waited for in the epoll until LEAD_SECONDS
                  after it -- one extra wakeup per interval instead of one per 2 ms
"""
import collections

from .keypair import OVERHEAD, Keypair, Keypairs

WARM_INTERVAL_SECONDS = 0.002           # a throwaway seal/open this often while warm
HUB_INTERVAL_SECONDS = 0.002            # outside the hub at most this long at a time
WARM_AFTER_TRAFFIC_SECONDS = 2.0        # the default of --keep-warm
DENSE_WINDOW_SECONDS = 0.1
DENSE_EVENTS = 20                       # ... i.e. 200 packet wakeups a second
LINGER_SECONDS = 0.002
LEAD_SECONDS = 0.003
MIN_PERIOD_SECONDS = 0.02               # denser than this is dense traffic's business
MAX_PERIOD_SECONDS = 30.0               # beyond the keepalive interval: not a rhythm


class Density:
    """dense(now): one packet wakeup; True when they come DENSE_EVENTS per DENSE_WINDOW_SECONDS."""

    def __init__(self, window=DENSE_WINDOW_SECONDS, events=DENSE_EVENTS):
        self._window, self._events = window, events
        self._start, self._count = float("-inf"), 0

    def dense(self, now):
        if now - self._start > self._window:
            self._start, self._count = now, 0
        self._count += 1
        return self._count >= self._events


class Rhythm:
    """Arrivals of the first packet after a wait; window(): (start, end) around the next one
    when the last two intervals agree within `lead`, else None."""

    def __init__(self, lead=LEAD_SECONDS, min_period=MIN_PERIOD_SECONDS, max_period=MAX_PERIOD_SECONDS):
        self._lead, self._min, self._max = lead, min_period, max_period
        self._arrivals = collections.deque(maxlen=3)

    def arrived(self, now):
        self._arrivals.append(now)

    def window(self):
        if len(self._arrivals) < 3:
            return None
        first, second, last = self._arrivals
        period = last - second
        if not self._min <= period <= self._max or abs(period - (second - first)) > self._lead:
            return None
        expected = last + period
        return expected - self._lead, expected + self._lead


def warmer(mono):
    """warm(): seal and open a throwaway packet (own key, own counters: the real sessions
    are untouched); mono: the monotonic clock. Why: a packet arriving after a millisecond
    or more of idleness finds the interpreter's and OpenSSL's code and data evicted from
    the caches, and the ~25 Python and C steps of seal/open then cost several times their
    warm price."""
    key = bytes(32)
    plain = bytearray(64)
    sealed = memoryview(bytearray(len(plain) + OVERHEAD))
    opened = bytearray(len(plain))
    keypairs = None

    def warm():
        nonlocal keypairs
        now = mono()
        if keypairs is None or keypairs.sending(now) is None:
            # A keypair that seals to itself: local and remote index alike, one key.
            keypairs = Keypairs()
            keypairs.install(Keypair(0, 0, key, key, True, now))
        size = keypairs.current.seal_into(sealed, plain)
        keypairs.open_into(sealed[:size], opened, now)

    return warm

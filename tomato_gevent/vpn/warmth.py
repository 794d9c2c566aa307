"""When the data path waits cheaply and when it stays warm (pure: the clock is passed in).

The scheduler waits for packets in one of two places. In the gevent hub it costs nothing
while idle, but a packet then wakes the process through the hub (libev callback, greenlet
switch: ~20-40 us more here) and finds the caches cold. In its own epoll a packet wakes
straight into the loop. Warm waiting also seals and opens a throwaway packet (warmer) and
runs both drains every WARM_INTERVAL_SECONDS: 500 wakeups a second, so it is spent only
where it pays:

  dense traffic   DENSE_EVENTS packet wakeups within DENSE_WINDOW_SECONDS (a bulk transfer, a
                  busy interactive session): warm until keep_warm seconds after the last one
  linger          after a packet the tun handed over (a ping, a request), LINGER_SECONDS in the
                  epoll without warming: the answer from the peer wakes straight into the loop.
                  Not after a datagram from the peer: what the tun answers at once (an echo
                  reply, an ACK) is sent in the same wakeup, and the peer's next packet is
                  the rhythm's business
  rhythm          traffic at a steady interval (ping -i, keepalives, a polling client): Rhythm
                  predicts the next arrival from the last RHYTHM_INTERVALS intervals, and the
                  path is warmed once, at the start of the window they span (shortest to
                  longest, widened by LEAD_SECONDS), then waited for in the epoll until its end
                  -- a few extra wakeups per interval instead of one per 2 ms. The window is
                  that wide because a sender's timer ticks move each packet by a few ms (ping
                  -i 0.2 sends 200-208 ms apart on a 250 Hz kernel) while the rhythm stays:
                  matching only the last two intervals within 3 ms missed about half of them

The hub. The native epoll also holds the hub's fd: its I/O (another greenlet's socket, a
signal, a thread's wake-up) gets a turn at once. Its timers get one every HUB_INTERVAL_SECONDS
while the loop keeps busy (full batches, the warm loop), else when a linger or a rhythm window
(at most MAX_NATIVE_WAIT_SECONDS) ends in the hub. libev keeps the tun's and the socket's fds
in its epoll after their watchers stop, so a packet makes the hub's fd readable too: reported
with a packet, that is no reason for a turn (what the hub still has wakes the next poll).
A turn is one hub iteration run by a zero timer, not sleep(0): gevent runs sleep(0)'s
callbacks back to back without polling, and a loop yielding by sleep(0) kept the hub from
its epoll for up to 50 of them.
A turn that falls due just as the loop would wait first lets one poll(0) take an answer that
is already there. The yield: after a light-traffic wakeup that took a datagram from the peer,
one sched_yield() after the drains, so whom it woke (ping; the peer's process reading the
answer) runs before this process's way back to sleep when they share a core.
"""
import collections

from .keypair import OVERHEAD, Keypair, Keypairs

WARM_INTERVAL_SECONDS = 0.002           # a throwaway seal/open this often while warm
HUB_INTERVAL_SECONDS = 0.002            # outside the hub at most this long at a time
WARM_AFTER_TRAFFIC_SECONDS = 2.0        # the default of --keep-warm
DENSE_WINDOW_SECONDS = 0.1
DENSE_EVENTS = 20                       # ... i.e. 200 packet wakeups a second
LINGER_SECONDS = 0.002
LEAD_SECONDS = 0.001                    # epoll_wait's resolution: whole milliseconds
RHYTHM_INTERVALS = 4
MAX_SPREAD_SECONDS = 0.010              # longest minus shortest of those intervals
# The longest wait in the epoll around single packets (a rhythm window; a linger is shorter):
# the hub's timers wait at most this long (its I/O wakes the epoll at once).
MAX_NATIVE_WAIT_SECONDS = MAX_SPREAD_SECONDS + 2 * LEAD_SECONDS
MIN_PERIOD_SECONDS = 0.02               # denser than this is dense traffic's business
MAX_PERIOD_SECONDS = 30.0               # beyond the keepalive interval: not a rhythm


def linger_until(now, from_tun):
    """Until when to wait in the epoll after a wakeup's packets: LINGER_SECONDS for the peer's
    answer when the tun handed over a packet; not at all after the peer's own packets (the
    tun's immediate answer went out in the same wakeup, and a reply needs no answer)."""
    return now + LINGER_SECONDS if from_tun else now


def after_packets(now, dense, keep_warm, warm_until, from_tun, from_peer):
    """What a wakeup that brought packets decides: (warm_until, native_until, yield_cpu).
    Dense traffic keeps the path warm keep_warm seconds more (0: never); the linger follows a
    packet from the tun (linger_until); in light traffic a packet from the peer is followed by
    one sched_yield (the docstring's yield)."""
    if dense and keep_warm:
        warm_until = now + keep_warm
    return warm_until, linger_until(now, from_tun), from_peer and not dense and now >= warm_until


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
    """Arrivals of the first packet after a wait; window(): (start, end) in which the next one
    is expected when the last `intervals` intervals differ by at most `spread`, else None.
    An arrival less than min_period after the last one (a late reply, a burst) is no beat of
    a rhythm and is left out."""

    def __init__(self, lead=LEAD_SECONDS, min_period=MIN_PERIOD_SECONDS, max_period=MAX_PERIOD_SECONDS,
                 intervals=RHYTHM_INTERVALS, spread=MAX_SPREAD_SECONDS):
        self._lead, self._min, self._max, self._spread = lead, min_period, max_period, spread
        self._arrivals = collections.deque(maxlen=intervals + 1)

    def arrived(self, now):
        arrivals = self._arrivals
        if not arrivals or now - arrivals[-1] >= self._min:
            arrivals.append(now)

    def window(self):
        arrivals = self._arrivals
        if len(arrivals) < arrivals.maxlen:
            return None
        times = list(arrivals)
        intervals = [later - earlier for earlier, later in zip(times, times[1:])]
        shortest, longest = min(intervals), max(intervals)
        if longest > self._max or longest - shortest > self._spread:
            return None
        return times[-1] + shortest - self._lead, times[-1] + longest + self._lead


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

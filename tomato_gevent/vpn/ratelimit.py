"""What an initiation may cost the responder (pure; the clock is passed in).

A handshake initiation is the only message that makes the responder do public-key work
(~0.2 ms: a hash to the group and two scalar multiplications) before anything is
authenticated. HandshakeGate bounds that work:
  - under load: more than LOAD_THRESHOLD initiations were computed in the current or the
    previous second. Then an initiation is computed only if its mac2 carries the cookie
    of its source address (return routability: a spoofed source never receives the
    cookie reply), and then only within its source's token bucket (PER_SOURCE_RATE per
    second, burst PER_SOURCE_BURST). Without a valid mac2 it gets a cookie reply and is
    dropped -- it used nothing of its source's bucket, so a flood forged from the real
    peer's own address and port does not use up the real peer's allowance.
  - in total, at most MAX_PER_SECOND computations in any second, whatever the cookies say.
"""

LOAD_THRESHOLD = 8                  # computed initiations per second before cookies are required
MAX_PER_SECOND = 64                 # computed initiations per second, hard cap (~13 ms of CPU)
PER_SOURCE_RATE = 2.0               # per second, under load, with a valid cookie
PER_SOURCE_BURST = 4.0
MAX_SOURCES = 4096                  # token buckets kept; beyond that the fullest/oldest go


class HandshakeGate:
    def __init__(self, load_threshold=LOAD_THRESHOLD, max_per_second=MAX_PER_SECOND, per_source_rate=PER_SOURCE_RATE,
                 per_source_burst=PER_SOURCE_BURST, max_sources=MAX_SOURCES):
        self.load_threshold = load_threshold
        self.max_per_second = max_per_second
        self.rate, self.burst = per_source_rate, per_source_burst
        self.max_sources = max_sources
        self._second = None             # the current whole second (int)
        self._count = 0                 # computations in it
        self._previous_count = 0        # in the second before it
        self._buckets = {}              # source bytes -> (tokens, last update)

    def _roll(self, now):
        second = int(now)
        if second != self._second:
            self._previous_count = self._count if self._second is not None and second == self._second + 1 else 0
            self._second, self._count = second, 0

    def under_load(self, now):
        self._roll(now)
        return max(self._count, self._previous_count) >= self.load_threshold

    def admit(self, source, now, cookie_valid):
        """May this initiation be computed now? Records it if so. Call under_load() first:
        under load only cookie_valid initiations are admitted, each from its source's bucket."""
        self._roll(now)
        if self._count >= self.max_per_second:
            return False
        if max(self._count, self._previous_count) >= self.load_threshold:
            if not cookie_valid or not self._take(source, now):
                return False
        self._count += 1
        return True

    def _take(self, source, now):
        tokens, last = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            return False
        if source not in self._buckets and len(self._buckets) >= self.max_sources:
            self._forget(now)
        self._buckets[source] = (tokens - 1.0, now)
        return True

    def _forget(self, now):
        """Drop the buckets that are full again (as good as new), else the oldest half."""
        full = [s for s, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        if not full:
            by_age = sorted(self._buckets, key=lambda s: self._buckets[s][1])
            full = by_age[:len(by_age) // 2 or 1]
        for source in full:
            del self._buckets[source]

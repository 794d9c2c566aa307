"""Session rules of the tomato VPN (pure: clocks and randomness are passed in).

Sending (new_sealer): each start picks a session id = start time in ms << 16 |
16 random bits and derives that session's key; counters start at 0.

Receiving (Receiver.open_into), in this order -- authenticate before you remember:
  1. framing: 40 .. 65535 bytes, else BadPacket.
  2. the current session: open (AEAD), check the timestamp is within -pvt of our
     clock, then the replay window (each counter once, reordering allowed).
  3. another session id: refused before any crypto if it starts in the future
     (more than -pvt ahead of our clock) or is not newer than the current one;
     otherwise opened, timestamp-checked, and only then it replaces the current
     session with a fresh window. "Newer" compares the start times embedded in
     the (authenticated) session ids, which all come from the peer's own clock,
     so it does not depend on the two clocks agreeing.
  4. escape hatch: a current session with nothing accepted for 2 * -pvt seconds
     no longer blocks older-looking sessions (a peer whose clock stepped back
     recovers). Safe: any packet of a superseded session was sent before the
     current session's last accepted packet, > 2*pvt ago, so its timestamp fails
     the -pvt check whenever the clocks agree within -pvt.
  5. cost bound: deriving a candidate session's key (HKDF) is the one step an
     unauthenticated datagram can trigger that is not cheap, so at most
     NEW_SESSION_KEYS_PER_SECOND derivations per second are made (token bucket,
     that many in a burst); beyond it, candidates are refused until the bucket
     refills. A flood of forged "newer" session ids then costs a header check
     each, and a real restart still gets through once the flood pauses or the
     peer's next packet finds a token.
Every refusal is BadPacket(reason) and leaves the state unchanged.

PeerEndpoint: where to send. Fixed (-pa) or learned (-d) from packets that
passed all of the above; forgotten after -avt seconds without one.
"""
import struct

from ..errors import BadPacket
from .packet import (DEFAULT_BACKEND, HEADER_SIZE, MAX_DATAGRAM_SIZE, MIN_DATAGRAM_SIZE, OVERHEAD,
                     SESSION_RANDOM_BITS, TAG_SIZE, Opener, Sealer, derive_session_key, make_session_id)
from .replay import ReplayWindow

_HEADER = struct.Struct(">QQ")
_U64 = struct.Struct(">Q")
_NONCE = struct.Struct(">4xQ")

FORGET_SESSION_PVT_FACTOR = 2   # escape hatch after 2 * pvt of silence (see docstring)
NEW_SESSION_KEYS_PER_SECOND = 50.0  # HKDF derivations for candidate sessions (see docstring)


class TimestampRefused(BadPacket):
    """Refused for the peer's clock: an authentic datagram whose timestamp is outside
    -pvt, or (unauthenticated, checked before any crypto) a session id that starts in
    the future. skew_ms = that time minus our clock, for the diagnostic."""

    def __init__(self, skew_ms, reason="timestamp outside -pvt"):
        super().__init__(reason)
        self.skew_ms = skew_ms


def new_sealer(password_key, now_ms, random16, backend=DEFAULT_BACKEND, after=None, limit=None):
    """Sealer of a new session started at now_ms; strictly newer than session id `after`."""
    start_ms = now_ms
    if after is not None:
        start_ms = max(start_ms, (after >> SESSION_RANDOM_BITS) + 1)
    session_id = make_session_id(start_ms, random16)
    return Sealer(derive_session_key(password_key, session_id), session_id, backend, limit=limit)


class Receiver:
    """The peer's current session as we see it; opens and filters incoming datagrams."""

    def __init__(self, password_key, pvt_seconds, backend=DEFAULT_BACKEND):
        self._password_key = password_key
        self._backend = backend
        self.pvt_seconds = pvt_seconds
        self._pvt_ms = int(pvt_seconds * 1000)
        self._forget_after = FORGET_SESSION_PVT_FACTOR * pvt_seconds
        self.session_id = None          # current session of the peer, None before the first
        self._decrypt_into = self._authentication_failed = None   # of the current session's Opener
        self._window = None
        self._last_accept = None        # monotonic seconds of the last accepted packet
        self._candidate = None          # (session_id, Opener): saves the HKDF for repeats
        self._key_tokens = NEW_SESSION_KEYS_PER_SECOND   # token bucket for candidate derivations
        self._key_tokens_at = None      # monotonic seconds of the last refill

    def open_into(self, datagram, out, now_ms, now_mono):
        """Open one datagram into out (timestamp + payload); returns the payload length.

        The payload is out[TIMESTAMP_SIZE:TIMESTAMP_SIZE + length]; 0 = keepalive.
        Raises BadPacket (reason) and changes nothing if the datagram is refused.
        """
        size = len(datagram)
        if size < MIN_DATAGRAM_SIZE:
            raise BadPacket("short datagram")
        if size > MAX_DATAGRAM_SIZE:
            raise BadPacket("oversized datagram")
        if type(out) is not memoryview:
            out = memoryview(out)
        session_id, counter = _HEADER.unpack_from(datagram)
        if session_id != self.session_id:
            return self._open_other_session(datagram, out, session_id, counter, now_ms, now_mono)
        # The current session: Opener.open_into written out, this runs for every packet.
        try:
            self._decrypt_into(_NONCE.pack(counter), datagram[HEADER_SIZE:], datagram[:HEADER_SIZE],
                               out[:size - HEADER_SIZE - TAG_SIZE])
        except self._authentication_failed:
            raise BadPacket("authentication failed") from None
        timestamp_ms = _U64.unpack_from(out)[0]
        if not -self._pvt_ms <= now_ms - timestamp_ms <= self._pvt_ms:
            raise TimestampRefused(timestamp_ms - now_ms)
        if not self._window.accept(counter):
            raise BadPacket("replayed or too old counter")
        self._last_accept = now_mono
        return size - OVERHEAD

    def _open_other_session(self, datagram, out, session_id, counter, now_ms, now_mono):
        start_ms = session_id >> SESSION_RANDOM_BITS
        if start_ms > now_ms + self._pvt_ms:
            raise TimestampRefused(start_ms - now_ms, "session starts in the future")
        if (self.session_id is not None and start_ms <= self.session_id >> SESSION_RANDOM_BITS
                and now_mono - self._last_accept <= self._forget_after):
            raise BadPacket("not a newer session")
        candidate = self._candidate
        if candidate is None or candidate[0] != session_id:
            self._take_key_token(now_mono)
            opener = Opener(derive_session_key(self._password_key, session_id), session_id, self._backend)
            self._candidate = candidate = (session_id, opener)
        timestamp_ms = candidate[1].open_into(datagram, out, counter)
        if not -self._pvt_ms <= now_ms - timestamp_ms <= self._pvt_ms:
            raise TimestampRefused(timestamp_ms - now_ms)
        window = ReplayWindow()
        if not window.accept(counter):
            raise BadPacket("replayed or too old counter")
        # Commit: this authenticated, fresh, newer session replaces the current one.
        self.session_id, opener = candidate
        self._decrypt_into, self._authentication_failed = opener.decrypt_into, opener.AuthenticationFailed
        self._window = window
        self._candidate = None
        self._last_accept = now_mono
        return len(datagram) - OVERHEAD


    def _take_key_token(self, now_mono):
        if self._key_tokens_at is not None:
            elapsed = max(0.0, now_mono - self._key_tokens_at)
            self._key_tokens = min(NEW_SESSION_KEYS_PER_SECOND,
                                   self._key_tokens + elapsed * NEW_SESSION_KEYS_PER_SECOND)
        self._key_tokens_at = now_mono
        if self._key_tokens < 1.0:
            raise BadPacket("too many new sessions")
        self._key_tokens -= 1.0


class PeerEndpoint:
    """The peer's UDP address: fixed, or learned from accepted packets and forgotten after avt."""

    def __init__(self, fixed=None, forget_after=60.0):
        self.dynamic = fixed is None
        self.address = fixed
        self.forget_after = forget_after
        self.last_seen = None

    def learn(self, address, now_mono):
        """Record an accepted packet's source; True if the address is new or changed."""
        if not self.dynamic:
            return False
        self.last_seen = now_mono
        if address != self.address:
            self.address = address
            return True
        return False

    def expire(self, now_mono):
        """Forget a learned address after forget_after seconds; True if it was just forgotten."""
        if self.dynamic and self.address is not None and now_mono - self.last_seen > self.forget_after:
            self.address = None
            return True
        return False


__all__ = ["new_sealer", "Receiver", "PeerEndpoint", "TimestampRefused"]

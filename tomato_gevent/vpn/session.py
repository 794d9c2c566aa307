"""Session rules of the tomato VPN (pure: clocks and randomness are passed in).

Sending (new_sealer, SendSession): each start picks a session id = start time in
ms << 16 | 16 random bits; counters start at 0. A session that used up its counters
is followed by a strictly newer one.

Receiving (Receiver.open_into, the one decoder of packet.py's layout: the tunnel, the
tests and bench/crypto_bench.py all open datagrams with it), in this order --
authenticate before you remember:
  1. framing: 37 .. 65535 bytes, else BadPacket.
  2. a session id other than the current one is refused before any crypto if it
     is our own send session id (a datagram of ours reflected back: refused even
     if it would authenticate), if it starts in the future (more than -pvt ahead
     of our clock) or if it is not newer than the current one. "Newer" compares
     the start times embedded in the (authenticated) session ids, which all come
     from the peer's own clock, so it does not depend on the two clocks agreeing.
  3. authentication: one AEAD call under the peer password's key (the nonce is
     the header). It costs the same for every datagram, whatever session it
     claims, so a flood of forged "newer session" datagrams buys nothing a flood
     of forged current-session datagrams does not: there is no budget to use up,
     and the real peer's first packet after a restart is accepted on arrival.
  4. the timestamp is within -pvt of our clock.
  5. the replay window of the current session (each counter once, reordering
     allowed); a newer session that passed 1-4 replaces the current one with a
     fresh window.
  6. escape hatch: a current session with nothing accepted for 2 * -pvt seconds
     no longer blocks older-looking sessions (a peer whose clock stepped back
     recovers). Safe: any packet of a superseded session was sent before the
     current session's last accepted packet, > 2*pvt ago, so its timestamp fails
     the -pvt check whenever the clocks agree within -pvt.
Every refusal is BadPacket(reason) and leaves the state unchanged.

Crossed connections (connections.py, the TCP transport): when both sides dialled,
the side whose sending session is newer than the peer's keeps the connection it
dialled, the other the one it accepted -- the same connection, since both sides
know both session ids once a datagram has opened (Receiver.keeps_outgoing).

PeerEndpoint: where to send. Fixed (-pa) or learned (-d) from packets that
passed all of the above; forgotten after -avt seconds without one.
"""
from ..errors import BadPacket
from .packet import (DEFAULT_BACKEND, HEADER, HEADER_SIZE, MAX_DATAGRAM_SIZE, MIN_DATAGRAM_SIZE, OVERHEAD,
                     REJECT_AFTER_MESSAGES, SESSION_RANDOM_BITS, TAG_SIZE, TIMESTAMP, CounterExhausted, Sealer,
                     make_session_id, session_start_ms)
from .replay import ReplayWindow

FORGET_SESSION_PVT_FACTOR = 2   # escape hatch after 2 * pvt of silence (see docstring)

# BadPacket reasons of Receiver.open_into (the drop counters' keys)
SHORT_DATAGRAM = "short datagram"
OVERSIZED_DATAGRAM = "oversized datagram"
OWN_SESSION = "own session id (reflected datagram)"
NOT_NEWER_SESSION = "not a newer session"
AUTHENTICATION_FAILED = "authentication failed"     # wrong password or protocol
REPLAYED = "replayed or too old counter"


class TimestampRefused(BadPacket):
    """Refused for the peer's clock: an authentic datagram whose timestamp is outside
    -pvt, or (unauthenticated, checked before any crypto) a session id that starts in
    the future. skew_ms = that time minus our clock, for the diagnostic."""

    def __init__(self, skew_ms, reason="timestamp outside -pvt"):
        super().__init__(reason)
        self.skew_ms = skew_ms


def new_sealer(password_key, now_ms, random16, backend=DEFAULT_BACKEND, after=None, limit=REJECT_AFTER_MESSAGES):
    """Sealer of a new session started at now_ms; strictly newer than session id `after`."""
    start_ms = now_ms
    if after is not None:
        start_ms = max(start_ms, session_start_ms(after) + 1)
    return Sealer(password_key, make_session_id(start_ms, random16), backend, limit=limit)


class SendSession:
    """Our current sending session: new_sealer(after) -> Sealer makes the first one and,
    when a session's counter is exhausted, a strictly newer one (after = the old id)."""

    def __init__(self, new_sealer):
        self._new_sealer = new_sealer
        self.sealer = new_sealer(None)

    def seal_into(self, out, plain, timestamp_ms=None):
        try:
            return self.sealer.seal_into(out, plain, timestamp_ms)
        except CounterExhausted:
            self.sealer = self._new_sealer(self.sealer.session_id)
            return self.sealer.seal_into(out, plain, timestamp_ms)


class Receiver:
    """The peer's current session as we see it; opens and filters incoming datagrams.

    sending: this host's SendSession; a datagram carrying its current session id is a
    reflection of ours (refused). None for a receiver that opens what its own host
    seals (the scheduler's warmer).
    """

    def __init__(self, password_key, pvt_seconds, sending, backend=DEFAULT_BACKEND):
        aead = backend(password_key)
        self._decrypt_into, self._authentication_failed = aead.decrypt_into, aead.AuthenticationFailed
        self.pvt_seconds = pvt_seconds
        self._pvt_ms = int(pvt_seconds * 1000)
        self._forget_after = FORGET_SESSION_PVT_FACTOR * pvt_seconds
        self._sending = sending
        self.session_id = None          # current session of the peer, None before the first
        self._window = None
        self._last_accept = None        # monotonic seconds of the last accepted packet

    def open_into(self, datagram, out, now_ms, now_mono):
        """Open one datagram into out (timestamp + payload); returns the payload length.

        The payload is out[PAYLOAD_OFFSET:PAYLOAD_OFFSET + length], its flags
        out[FLAGS_OFFSET]; length 0 = keepalive.
        Raises BadPacket (reason) and changes nothing if the datagram is refused.
        """
        size = len(datagram)
        if size < MIN_DATAGRAM_SIZE:
            raise BadPacket(SHORT_DATAGRAM)
        if size > MAX_DATAGRAM_SIZE:
            raise BadPacket(OVERSIZED_DATAGRAM)
        if type(datagram) is not memoryview:
            datagram = memoryview(datagram)
        if type(out) is not memoryview:
            out = memoryview(out)
        session_id, counter = HEADER.unpack_from(datagram)
        current = session_id == self.session_id
        if not current:
            self._check_other_session(session_id, now_ms, now_mono)
        header = datagram[:HEADER_SIZE]
        try:
            self._decrypt_into(header, datagram[HEADER_SIZE:], header, out[:size - HEADER_SIZE - TAG_SIZE])
        except self._authentication_failed:
            raise BadPacket(AUTHENTICATION_FAILED) from None
        timestamp_ms = TIMESTAMP.unpack_from(out)[0]
        if not -self._pvt_ms <= now_ms - timestamp_ms <= self._pvt_ms:
            raise TimestampRefused(timestamp_ms - now_ms)
        window = self._window if current else ReplayWindow(REJECT_AFTER_MESSAGES)
        if not window.accept(counter):
            raise BadPacket(REPLAYED)
        if not current:
            # Commit: this authenticated, fresh, newer session replaces the current one.
            self.session_id = session_id
            self._window = window
        self._last_accept = now_mono
        return size - OVERHEAD

    def _check_other_session(self, session_id, now_ms, now_mono):
        """The checks before any crypto for a datagram that is not of the current session."""
        if self._sending is not None and session_id == self._sending.sealer.session_id:
            raise BadPacket(OWN_SESSION)
        start_ms = session_id >> SESSION_RANDOM_BITS
        if start_ms > now_ms + self._pvt_ms:
            raise TimestampRefused(start_ms - now_ms, "session starts in the future")
        if (self.session_id is not None and start_ms <= self.session_id >> SESSION_RANDOM_BITS
                and now_mono - self._last_accept <= self._forget_after):
            raise BadPacket(NOT_NEWER_SESSION)


    def keeps_outgoing(self):
        """The crossed-connection tie-break (see the module docstring): True when our
        sending session is newer than the peer's, or no datagram of the peer opened yet."""
        return self._sending.sealer.session_id > (self.session_id or 0)


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


__all__ = ["new_sealer", "SendSession", "Receiver", "PeerEndpoint", "TimestampRefused"]

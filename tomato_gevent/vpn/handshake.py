"""The v3 handshake of one link as a pure state machine (clock and randomness passed in).

    initiator                                   responder
    initiation(index_i, timestamp, sid, Ya) --> checks (below), computes Yb, ISK, keys
                                            <-- response(index_r, index_i, Yb, Tb)
    checks Tb; keys; session up
    confirmation(index_r, Ta)               --> checks Ta; session up
    data(index_r, ...)                      --> (a valid datagram on the new keys also confirms)

CPace (cpace.py) with PRS = lv_cat(initiator's -lp key, responder's -lp key)
(keyschedule.py); Ta and Tb are the draft's key confirmation. Each side sends its tag
without waiting for the other's, so with wrong passwords both sides see a tag fail and
say so (PasswordMismatch), and neither gets keys. The initiator is up after one round
trip; the responder after the confirmation.

Checks on an initiation, cheapest first, each refusal raising BadPacket and changing nothing
(a refusal that answers carries the answer: CookieRequired, CrossedInitiation):
  layout and mac1; not one of our own recent initiations reflected back (its sid);
  timestamp within -pvt of our clock; newer than the last confirmed initiation from the
  peer (per-peer monotonic: a replay within -pvt costs nothing); a duplicate of one we
  answered gets the same response again (no new work); crossed initiations (both sides
  initiated): checked after the gate (ratelimit.py: under load only with a valid cookie,
  else a cookie reply), the one with the larger sid proceeds -- a side whose own is larger
  drops the peer's and sends its own again (the peer may not have it), and only a
  confirmation ends an initiation of ours, never an initiation.
Answering an initiation adds an "answered" entry (bounded, expiring): it cannot be
authenticated before the work, but it changes nothing else until its confirmation.
Timers (tick(), about once a second): a side with the peer's address initiates when it
has no usable keypair, when its current keypair is REKEY_AFTER old (the responder of
that keypair waits RESPONDER_REKEY_DELAY longer, so the two rarely cross) or has sent
REKEY_AFTER_MESSAGES, when data it sent got no answer for NEW_HANDSHAKE_AFTER, or when the
peer has been silent for silence_rehandshake seconds; an initiation without response is
replaced by a new one after REKEY_TIMEOUT (+ up to 1/3 s jitter). Keypairs go after
REJECT_AFTER (keypair.py); the previous keypair opens datagrams until then.
"""
import collections
import hmac
import struct

from ..errors import BadPacket
from . import cpace, keyschedule, messages
from .keypair import REJECT_AFTER_SECONDS, REKEY_AFTER_MESSAGES, REKEY_AFTER_SECONDS, Keypair, Keypairs
from .packet import DEFAULT_BACKEND
from .ratelimit import HandshakeGate
from .versions import VersionMismatch, foreign_version

REKEY_TIMEOUT_SECONDS = 5.0
REKEY_JITTER_SECONDS = 1 / 3
RESPONDER_REKEY_DELAY_SECONDS = 2 * REKEY_TIMEOUT_SECONDS
KEEPALIVE_TIMEOUT_SECONDS = 10.0                 # answer data with a keepalive after this long
NEW_HANDSHAKE_AFTER_SECONDS = KEEPALIVE_TIMEOUT_SECONDS + REKEY_TIMEOUT_SECONDS
RESPONSE_LIFETIME_SECONDS = 2 * REKEY_TIMEOUT_SECONDS   # an answered initiation waits this long for its confirmation
MAX_PENDING_RESPONSES = 64
MAX_COOKIES_KEPT = 4096
OWN_SIDS_KEPT = 16                                      # our last initiations, recognised when reflected
COOKIE_SECRET_SECONDS = 120.0
COOKIE_VALID_SECONDS = COOKIE_SECRET_SECONDS - 10.0     # an initiator stops using a cookie before it can go stale

_INDEX = struct.Struct(">I")
CROSSED = "crossed initiation: ours proceeds"


class PasswordMismatch(BadPacket):
    """A confirmation tag did not verify: the two ends do not share both passwords (or a
    forgery). reply, destination: the confirmation the initiator still sends (or None)."""

    def __init__(self, reason, reply=None, destination=None):
        super().__init__(reason)
        self.reply, self.destination = reply, destination


class CookieRequired(BadPacket):
    """Under load, an initiation without a valid mac2 is dropped and answered by a cookie
    reply (reply, destination) that the caller sends."""

    def __init__(self, reply, destination):
        super().__init__("cookie required")
        self.reply, self.destination = reply, destination


class CrossedInitiation(BadPacket):
    """The peer's initiation crossed ours, and ours has the larger sid: it is dropped, and
    ours is sent again (reply, destination) in case the peer never got it."""

    def __init__(self, reply, destination):
        super().__init__(CROSSED)
        self.reply, self.destination = reply, destination


class HandshakeTimestampRefused(BadPacket):
    """An initiation whose timestamp is more than -pvt from our clock; skew_ms = its time - ours."""

    def __init__(self, skew_ms):
        super().__init__("initiation timestamp outside -pvt")
        self.skew_ms = skew_ms


# reply: destination is the source of the message answered (a TCP connection, say), else the
# peer's address as the link knows it (an initiation).
Send = collections.namedtuple("Send", "message destination reply")
Established = collections.namedtuple("Established", "keypair source initiator")
SendKeepalive = collections.namedtuple("SendKeepalive", "")

_Pending = collections.namedtuple("_Pending", "index sid scalar share ad mac1 message destination retry_at "
                                              "cookie_resent")
_Answered = collections.namedtuple("_Answered", "key response keypair expected_tag timestamp_ms created")


def default_source_bytes(source):
    """What a cookie is bound to: the source's text (a UDP sockaddr, or a TCP connection)."""
    return repr(source).encode()


class _Address:
    def __init__(self, address):
        self.address = address


class Handshake:
    """Handshake and timers of one link; keypairs (keypair.Keypairs) is shared with the data path."""

    def __init__(self, local_key, peer_key, pvt_seconds, random_bytes, keypairs=None, *, gate=None,
                 backend=DEFAULT_BACKEND, rekey_after=REKEY_AFTER_SECONDS, rekey_after_messages=REKEY_AFTER_MESSAGES,
                 reject_after=REJECT_AFTER_SECONDS, rekey_timeout=REKEY_TIMEOUT_SECONDS, silence_rehandshake=None,
                 source_bytes=default_source_bytes, peer_address=None, endpoint=None):
        if local_key == peer_key:
            raise ValueError("the two password keys must differ")
        self._prs_initiator = keyschedule.password_related_string(local_key, peer_key)
        self._prs_responder = keyschedule.password_related_string(peer_key, local_key)
        self.pvt_ms = int(pvt_seconds * 1000)
        self._random = random_bytes
        self.keypairs = Keypairs(reject_after) if keypairs is None else keypairs
        self.gate = HandshakeGate() if gate is None else gate
        self._backend = backend
        self.rekey_after, self.rekey_after_messages = rekey_after, rekey_after_messages
        self.rekey_timeout = rekey_timeout
        self.silence_rehandshake = silence_rehandshake
        self._source_bytes = source_bytes
        # Where initiations go: endpoint.address (session.PeerEndpoint: fixed -pa, or learned in
        # dynamic mode, None until then), or peer_address without an endpoint.
        self.endpoint = _Address(peer_address) if endpoint is None else endpoint
        self._pending = None                    # our initiation in flight
        self._answered = {}                     # our index -> _Answered (responses waiting for confirmation)
        self._answered_by_key = {}              # initiation ADa + Ya -> our index: duplicates
        self._last_peer_timestamp = None        # newest confirmed initiation from the peer (ms, its clock)
        self._last_own_timestamp = 0
        self._own_sids = collections.deque(maxlen=OWN_SIDS_KEPT)     # our recent initiations: reflections
        self._cookie = None                     # (cookie, received at): the peer wants mac2
        self._secret, self._secret_at = None, None
        self._cookies = {}                      # source bytes -> cookie under the current secret
        self._keepalive_at = self._new_handshake_at = None
        self._last_received = None

    # -- initiating ---------------------------------------------------------------------
    def initiate(self, now, wall_ms):
        """A new initiation to peer_address (replacing one in flight); [] without an address."""
        if self.peer_address is None:
            return []
        index = self._new_index()
        sid = self._random(messages.SID_SIZE)
        self._own_sids.append(sid)
        timestamp_ms = self._last_own_timestamp = max(wall_ms, self._last_own_timestamp + 1)
        scalar = cpace.sample_scalar(self._random)
        share = cpace.scalar_mult(scalar, cpace.calculate_generator(self._prs_initiator, keyschedule.CHANNEL_ID, sid))
        ad = messages.initiation_ad(index, timestamp_ms, sid)
        cookie = self._cookie[0] if self._cookie and now - self._cookie[1] < COOKIE_VALID_SECONDS else None
        message = messages.encode_initiation(ad, share, cookie)
        jitter = int.from_bytes(self._random(2), "big") / 65536 * REKEY_JITTER_SECONDS
        mac1 = message[messages.INITIATION_MAC1_OFFSET:messages.INITIATION_MAC2_OFFSET]
        self._pending = _Pending(index, sid, scalar, share, ad, mac1, message, self.peer_address,
                                 now + self.rekey_timeout + jitter, False)
        return [Send(message, self.peer_address, False)]

    def _new_index(self):
        taken = self.keypairs.local_indices() | set(self._answered)
        if self._pending is not None:
            taken.add(self._pending.index)
        while True:
            index = _INDEX.unpack(self._random(4))[0]
            if index not in taken:
                return index

    # -- receiving ------------------------------------------------------------------------
    def receive(self, datagram, source, now, wall_ms):
        """A non-data datagram: returns actions (Send, Established); raises BadPacket on refusal."""
        if len(datagram) < messages.SMALLEST_MESSAGE:
            raise BadPacket("short datagram")
        kind = datagram[0]
        if kind == messages.INITIATION:
            return self._on_initiation(datagram, source, now, wall_ms)
        if kind == messages.RESPONSE:
            return self._on_response(datagram, source, now)
        if kind == messages.CONFIRMATION:
            return self._on_confirmation(datagram, source, now)
        if kind == messages.COOKIE_REPLY:
            return self._on_cookie_reply(datagram, now)
        version = foreign_version(datagram, wall_ms)
        if version is not None:
            raise VersionMismatch(version)
        raise BadPacket("unknown message type")

    def _on_initiation(self, datagram, source, now, wall_ms):
        init = messages.parse_initiation(datagram)
        pending = self._pending
        if init.sid in self._own_sids:
            raise BadPacket("own initiation (reflected)")
        if abs(init.timestamp_ms - wall_ms) > self.pvt_ms:
            raise HandshakeTimestampRefused(init.timestamp_ms - wall_ms)
        if self._last_peer_timestamp is not None and init.timestamp_ms <= self._last_peer_timestamp:
            raise BadPacket("initiation not newer than the last handshake")
        key = init.raw[:messages.INITIATION_MAC1_OFFSET]          # ADa and Ya
        index = self._answered_by_key.get(key)
        if index is not None:
            return [Send(self._answered[index].response, source, True)]   # a duplicate, or our response was lost
        source_bytes = self._source_bytes(source)
        cookie_valid = False
        if self.gate.under_load(now):
            cookie = self._cookie_for(source_bytes, now)
            cookie_valid = messages.initiation_mac2_valid(init.raw, cookie)
            if not cookie_valid:
                raise CookieRequired(messages.encode_cookie_reply(init.sender, init.mac1, cookie), source)
        if not self.gate.admit(source_bytes, now, cookie_valid):
            raise BadPacket("handshake rate limit")
        if pending is not None and init.sid < pending.sid:
            # Crossed, and ours proceeds. The peer may never have seen ours (lost, or sent
            # before it restarted): send it again, to where theirs came from. After the gate,
            # as if it were work: a flood of forged crossing initiations gets cookie replies,
            # it cannot use up this answer nor make us send more than the gate admits.
            raise CrossedInitiation(pending.message, source)
        return self._answer(init, key, source, now)

    def _answer(self, init, key, source, now):
        index = self._new_index()
        ad = messages.response_ad(index, init.sender)
        scalar = cpace.sample_scalar(self._random)
        share = cpace.scalar_mult(scalar, cpace.calculate_generator(self._prs_responder, keyschedule.CHANNEL_ID,
                                                                    init.sid))
        try:
            isk = cpace.derive_isk(scalar, init.share, init.sid, init.share, init.ad, share, ad)
        except cpace.CPaceError:
            raise BadPacket("invalid initiation share") from None
        ta, tb = cpace.confirmation_tags(init.sid, isk, init.share, init.ad, share, ad)
        i2r, r2i = keyschedule.data_keys(isk)
        keypair = Keypair(index, init.sender, r2i, i2r, False, now, self._backend, sid=init.sid)
        response = messages.encode_response(ad, share, tb)
        if len(self._answered) >= MAX_PENDING_RESPONSES:
            self._drop_answered(min(self._answered, key=lambda i: self._answered[i].created))
        self._answered[index] = _Answered(key, response, keypair, ta, init.timestamp_ms, now)
        self._answered_by_key[key] = index
        self.keypairs.unconfirmed[index] = keypair
        return [Send(response, source, True)]

    def _on_response(self, datagram, source, now):
        response = messages.parse_response(datagram)
        pending = self._pending
        if pending is None or response.receiver != pending.index:
            raise BadPacket("response to no initiation of ours")
        try:
            isk = cpace.derive_isk(pending.scalar, response.share, pending.sid, pending.share, pending.ad,
                                   response.share, response.ad)
        except cpace.CPaceError:
            raise BadPacket("invalid response share") from None
        ta, tb = cpace.confirmation_tags(pending.sid, isk, pending.share, pending.ad, response.share, response.ad)
        confirmation = messages.encode_confirmation(response.sender, ta)
        if not hmac.compare_digest(tb, response.tag):
            raise PasswordMismatch("handshake response does not authenticate", confirmation, source)
        i2r, r2i = keyschedule.data_keys(isk)
        keypair = Keypair(pending.index, response.sender, i2r, r2i, True, now, self._backend, sid=pending.sid)
        self._pending = None
        self.keypairs.install(keypair)
        self._established(now)
        return [Send(confirmation, source, True), Established(keypair, source, True)]

    def _on_confirmation(self, datagram, source, now):
        confirmation = messages.parse_confirmation(datagram)
        answered = self._answered.get(confirmation.receiver)
        if answered is None:
            raise BadPacket("confirmation of no response of ours")
        if not hmac.compare_digest(answered.expected_tag, confirmation.tag):
            raise PasswordMismatch("handshake confirmation does not authenticate")
        self.keypairs.install(answered.keypair)
        return self._confirmed(answered, source, now)

    def confirmed_by_data(self, keypair, source, now):
        """The data path opened the first datagram of an unconfirmed keypair (Keypairs.open_into
        said confirmed): that is the confirmation. Returns the actions."""
        answered = self._answered.get(keypair.local_index)
        return self._confirmed(answered, source, now) if answered is not None else []

    def _confirmed(self, answered, source, now):
        self._forget_answered(answered.keypair.local_index)
        # An initiation of ours still in flight crossed this one (theirs had the larger sid) or
        # came after it: this session makes it redundant. Only now, on an authenticated message:
        # an initiation alone never cancels ours (else a forged one with a large sid would).
        self._pending = None
        if self._last_peer_timestamp is None or answered.timestamp_ms > self._last_peer_timestamp:
            self._last_peer_timestamp = answered.timestamp_ms
        self._established(now)
        return [Established(answered.keypair, source, False)]

    def _on_cookie_reply(self, datagram, now):
        reply = messages.parse_cookie_reply(datagram)
        pending = self._pending
        if pending is None or reply.receiver != pending.index or not hmac.compare_digest(reply.mac1, pending.mac1):
            raise BadPacket("cookie reply to no initiation of ours")
        self._cookie = (reply.cookie, now)
        if pending.cookie_resent:
            return []               # once per initiation: a replayed reply triggers nothing more
        self._pending = pending._replace(cookie_resent=True)
        return [Send(messages.encode_initiation(pending.ad, pending.share, reply.cookie), pending.destination, False)]

    def _cookie_for(self, source_bytes, now):
        """The cookie of a source under the current secret (a new secret every
        COOKIE_SECRET_SECONDS); remembered, as a flood repeats one source."""
        if self._secret is None or now - self._secret_at >= COOKIE_SECRET_SECONDS:
            self._secret, self._secret_at = self._random(32), now
            self._cookies.clear()
        cookie = self._cookies.get(source_bytes)
        if cookie is None:
            if len(self._cookies) >= MAX_COOKIES_KEPT:
                self._cookies.clear()
            cookie = self._cookies[source_bytes] = keyschedule.make_cookie(self._secret, source_bytes)
        return cookie

    # -- timers -------------------------------------------------------------------------------
    def _established(self, now):
        self._new_handshake_at = None
        self._last_received = now

    def data_sent(self, now, payload):
        """The data path sent a datagram (payload: it carried a packet, not a keepalive)."""
        self._keepalive_at = None
        if payload and self._new_handshake_at is None:
            self._new_handshake_at = now + NEW_HANDSHAKE_AFTER_SECONDS

    def data_received(self, now, payload):
        """The data path opened an authentic datagram."""
        self._new_handshake_at = None
        self._last_received = now
        if payload and self._keepalive_at is None:
            self._keepalive_at = now + KEEPALIVE_TIMEOUT_SECONDS

    def tick(self, now, wall_ms):
        """Once a second or so: expire, keepalive, (re)initiate. Returns actions."""
        self.keypairs.expire(now)
        for index in [i for i, a in self._answered.items() if now - a.created >= RESPONSE_LIFETIME_SECONDS]:
            self._drop_answered(index)
        actions = []
        if self._keepalive_at is not None and now >= self._keepalive_at and self.keypairs.sending(now) is not None:
            self._keepalive_at = None
            actions.append(SendKeepalive())
        if self.peer_address is None:
            return actions
        pending = self._pending
        if pending is not None:
            if now >= pending.retry_at:
                actions += self.initiate(now, wall_ms)
        elif self._handshake_due(now):
            actions += self.initiate(now, wall_ms)
        return actions

    def _handshake_due(self, now):
        current = self.keypairs.sending(now)
        if current is None:
            return True
        age = now - current.created
        if age >= self.rekey_after + (0 if current.initiator else RESPONDER_REKEY_DELAY_SECONDS):
            return True
        if current.counter >= self.rekey_after_messages:
            return True
        if self._new_handshake_at is not None and now >= self._new_handshake_at:
            self._new_handshake_at = None
            return True
        return (self.silence_rehandshake is not None and self._last_received is not None
                and now - self._last_received >= self.silence_rehandshake)

    def _forget_answered(self, index):
        del self._answered_by_key[self._answered.pop(index).key]

    def _drop_answered(self, index):
        self._forget_answered(index)
        self.keypairs.unconfirmed.pop(index, None)

    @property
    def peer_address(self):
        return self.endpoint.address

    @peer_address.setter
    def peer_address(self, address):
        self.endpoint.address = address

    def keeps_outgoing(self):
        """The crossed-connection tie-break of the TCP transport (connections.py), a rule both
        sides evaluate alike: the initiator of the deciding keypair keeps the connection it
        dialled, the responder the one it accepted -- the same connection.

        The deciding keypair is the current one, except after crossed handshakes that both
        completed (each side answered the other's initiation after its own was up): then each
        side's current keypair is the one the other initiated, and the current ones alone would
        make both sides follow, each retiring the connection the other sends on. Both sides hold
        the same two keypairs then, made within a handshake's time of each other: the one with
        the larger sid decides."""
        current, previous = self.keypairs.current, self.keypairs.previous
        if current is None:
            return True
        if (previous is not None and current.created - previous.created < REKEY_TIMEOUT_SECONDS
                and previous.sid > current.sid):
            return previous.initiator
        return current.initiator

    @property
    def pending(self):
        """True while an initiation of ours waits for its response."""
        return self._pending is not None


__all__ = ["Handshake", "Send", "Established", "SendKeepalive", "PasswordMismatch", "HandshakeTimestampRefused",
           "CookieRequired"]

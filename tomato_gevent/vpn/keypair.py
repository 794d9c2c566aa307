r"""Data datagrams of protocol v3 and the keypairs that seal and open them (pure, no I/O).

    0      1       2        4                8              16                    n-16       n
    +------+-------+--------+----------------+--------------+---------------------+----------+
    | 0x30 | flags |  0  0  | receiver index | counter (8)  | AES-256-GCM(payload) | tag (16) |
    +------+-------+--------+----------------+--------------+---------------------+----------+
    \______________ header (16): associated data ___________/
                             \____ GCM nonce (12) _________/

  receiver index  chosen by the receiver in the handshake (handshake.py): one dict lookup
                  finds the keypair, so any datagram costs at most one AEAD call
  counter         per keypair and direction, from 0, only up; with the index it is the nonce,
                  unique under the keypair's key for that direction
  flags           authenticated, sent as chosen by the sender; bit 0 (FLAG_CHECKSUM_PARTIAL):
                  the payload is a segment the sender cut from a super-packet its own kernel
                  built (partial checksum): the receiver may merge it without verifying.
                  Other bits: sent as 0, ignored on receipt.
  payload         one IP packet, or empty (a keepalive). Overhead: 32 bytes.

A Keypair holds one handshake's two keys (one per direction), its indices, its send
counter and its receive window (replay.py: each counter once, reordering allowed).
Keypairs holds the current keypair (sending), the previous one (still opens datagrams
until REJECT_AFTER_TIME: no loss across a rekey) and the responder's keypairs that wait
for the initiator's confirmation (a valid datagram on one is that confirmation).
"""
import struct

from ..errors import BadPacket
from .packet import DEFAULT_BACKEND
from .replay import ReplayWindow

DATA_TYPE = 0x30
HEADER_SIZE = 16
TAG_SIZE = 16
OVERHEAD = HEADER_SIZE + TAG_SIZE               # 32 <= the seed's 44
NONCE_OFFSET = 4                                # receiver index + counter
FLAGS_OFFSET = 1
FLAG_CHECKSUM_PARTIAL = 0x01                    # owned by the fast path (issue 19)
MAX_DATAGRAM_SIZE = 65535

# WireGuard's limits (device/constants.go): the counter never wraps; keys live at most 3 minutes.
REKEY_AFTER_MESSAGES = 1 << 60
REJECT_AFTER_MESSAGES = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_SECONDS = 120.0
REJECT_AFTER_SECONDS = 180.0

HEADER = struct.Struct(">BB2xIQ")               # type, flags, receiver index, counter
AUTHENTICATION_FAILED = "authentication failed"
UNKNOWN_INDEX = "unknown receiver index"


class Keypair:
    """One handshake's keys. local_index: what the peer puts in datagrams to us."""

    __slots__ = ("local_index", "remote_index", "initiator", "sid", "created", "counter", "limit", "window",
                 "_encrypt_into", "_decrypt_into", "_failed")

    def __init__(self, local_index, remote_index, send_key, receive_key, initiator, created,
                 backend=DEFAULT_BACKEND, limit=REJECT_AFTER_MESSAGES, sid=b""):
        self.local_index, self.remote_index = local_index, remote_index
        self.initiator = initiator
        self.sid = sid                  # the handshake's session id: both ends know it
        self.created = created          # monotonic seconds
        self.counter = 0
        self.limit = limit
        self.window = ReplayWindow(limit)
        self._encrypt_into = backend(send_key).encrypt_into
        opener = backend(receive_key)
        self._decrypt_into, self._failed = opener.decrypt_into, opener.AuthenticationFailed

    def seal_into(self, out, payload, flags=0):
        """Seal payload into out (len(payload) + OVERHEAD bytes, not overlapping); returns the length.
        The caller checks usable() first: a used-up counter raises ValueError."""
        counter = self.counter
        if counter >= self.limit:
            raise ValueError("keypair counter exhausted")
        self.counter = counter + 1
        if type(out) is not memoryview:
            out = memoryview(out)
        if type(payload) is not memoryview:
            payload = memoryview(payload)
        HEADER.pack_into(out, 0, DATA_TYPE, flags, self.remote_index, counter)
        end = HEADER_SIZE + payload.nbytes + TAG_SIZE       # (an attribute: no len() call per packet)
        self._encrypt_into(out[NONCE_OFFSET:HEADER_SIZE], payload, out[:HEADER_SIZE], out[HEADER_SIZE:end])
        return end

    def seal(self, payload, flags=0):
        out = bytearray(len(payload) + OVERHEAD)
        self.seal_into(out, payload, flags)
        return bytes(out)

    def usable(self, now, reject_after=REJECT_AFTER_SECONDS):
        return self.counter < self.limit and now - self.created < reject_after


class Keypairs:
    """The keypairs of one link, by receiver index."""

    def __init__(self, reject_after=REJECT_AFTER_SECONDS):
        self.reject_after = reject_after
        self.current = None
        self.previous = None
        self.unconfirmed = {}           # local index -> Keypair: responder side, waiting for confirmation
        self._by_index = {}

    def local_indices(self):
        return set(self._by_index) | set(self.unconfirmed)

    def install(self, keypair):
        """keypair becomes current (confirmed); the current one becomes previous; older ones go."""
        self.unconfirmed.pop(keypair.local_index, None)
        if self.previous is not None:
            self._by_index.pop(self.previous.local_index, None)
        self.previous, self.current = self.current, keypair
        self._by_index[keypair.local_index] = keypair

    def sending(self, now):
        """The keypair to seal with, or None (no usable session: a handshake is needed).
        Keypair.usable, written out: the data path asks once per drain, before its send."""
        current = self.current
        if current is not None and current.counter < current.limit and now - current.created < self.reject_after:
            return current
        return None

    def expire(self, now):
        """Forget keypairs older than reject_after; returns True if the current one went."""
        went = False
        for keypair in (self.previous, self.current):
            if keypair is not None and now - keypair.created >= self.reject_after:
                self._by_index.pop(keypair.local_index, None)
                if keypair is self.current:
                    self.current, went = None, True
                else:
                    self.previous = None
        return went

    def open_into(self, datagram, out, now):
        """Open a data datagram into out; returns (payload length, flags, keypair, confirmed).

        confirmed: the datagram was the first on an unconfirmed keypair, which is now
        current. BadPacket, with no state changed, for anything that does not open.
        """
        # Per datagram, Python calls are what costs: the size is an attribute of the view,
        # and the index is looked up with `in` and [], not len() and dict.get().
        if type(datagram) is not memoryview:
            datagram = memoryview(datagram)
        size = datagram.nbytes
        if size < OVERHEAD:
            raise BadPacket("short datagram")
        if size > MAX_DATAGRAM_SIZE:
            raise BadPacket("oversized datagram")
        kind, flags, index, counter = HEADER.unpack_from(datagram)
        if kind != DATA_TYPE:
            raise BadPacket("not a data datagram")
        by_index = self._by_index
        keypair = by_index[index] if index in by_index else None
        confirming = False
        if keypair is None:
            keypair = self.unconfirmed.get(index)
            if keypair is None:
                raise BadPacket(UNKNOWN_INDEX)
            confirming = True
        if now - keypair.created >= self.reject_after:
            raise BadPacket("expired keypair")
        if type(out) is not memoryview:
            out = memoryview(out)
        try:
            keypair._decrypt_into(datagram[NONCE_OFFSET:HEADER_SIZE], datagram[HEADER_SIZE:], datagram[:HEADER_SIZE],
                                  out[:size - OVERHEAD])
        except keypair._failed:
            raise BadPacket(AUTHENTICATION_FAILED) from None
        if not keypair.window.accept(counter):
            raise BadPacket("replayed or too old counter")
        if confirming:
            self.install(keypair)
        return size - OVERHEAD, flags, keypair, confirming

    def open(self, datagram, now):
        """Convenience (tests): (payload bytes, flags, keypair, confirmed)."""
        out = bytearray(max(len(datagram) - OVERHEAD, 0))
        n, flags, keypair, confirmed = self.open_into(datagram, out, now)
        return bytes(out[:n]), flags, keypair, confirmed


__all__ = ["Keypair", "Keypairs", "OVERHEAD", "FLAG_CHECKSUM_PARTIAL", "DATA_TYPE"]

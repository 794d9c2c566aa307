r"""One datagram of the tomato VPN: key derivation, seal and open (pure, no I/O).

Wire layout (protocol v3), integers big-endian, 37 bytes of overhead per packet:

    offset 0          8        12                                           n-16       n
           +----------+--------+--------------------------------------------+----------+
           |session id|counter | AES-256-GCM ciphertext of                  |  GCM tag |
           |   (8)    |  (4)   | timestamp_ms (8) + flags (1) + IP packet   |   (16)   |
           +----------+--------+--------------------------------------------+----------+
           \_ header = nonce = associated data _/

  session id    48-bit start time of the sending process (ms since the epoch)
                followed by 16 random bits; picked once per session.
  key           scrypt(password, SCRYPT_SALT, n=2**15, r=8, p=1), once at start;
                the same key for every session of that password.
  nonce         the 12-byte header itself: session id + counter. A session sends
                at most REJECT_AFTER_MESSAGES packets, then the sender starts a
                newer session, so (key, nonce) repeats only if a session id
                repeats -- the same condition under which v1's per-session key
                (HKDF salted with the session id) repeated.
  flags         bit 0 FLAG_CHECKSUM_PARTIAL: the packet's TCP/UDP checksum field holds
                only the pseudo-header sum; the sender's kernel built the packet (it
                never crossed a wire unprotected), the receiver completes the checksum
                or has its kernel do it, and may merge it without a check (offload.py,
                coalesce.py). Bits 1-7 reserved: sent as 0, ignored.
  payload       empty = keepalive (authenticates the session and the address).

Why one key and no per-session derivation: a datagram of a session the
receiver has not seen yet is checked with one AEAD call, exactly what any
datagram costs, so a flood of forged "new session" datagrams has nothing
expensive to trigger (v1 spent an HKDF on each, under a budget a flood could
use up). Sealer.seal* does exactly one AEAD call. The one decoder is
session.Receiver.open_into (framing, session rules, this layout's AEAD call,
timestamp, replay), used by the tunnel, the tests and bench/crypto_bench.py alike:
it reads the header with HEADER and the timestamp with TIMESTAMP below. Two AEAD
backends share one interface: `cryptography` (fast, the data path) and pycryptodome
(reference, tests).
"""
import struct

# -- wire constants -----------------------------------------------------------
NONCE_SIZE = 12                                 # AES-GCM's standard nonce
SESSION_ID_SIZE = 8
COUNTER_SIZE = NONCE_SIZE - SESSION_ID_SIZE     # 4: session id + counter are the nonce
COUNTER_OFFSET = SESSION_ID_SIZE
HEADER_SIZE = SESSION_ID_SIZE + COUNTER_SIZE    # nonce and associated data at once
TIMESTAMP_SIZE = 8
FLAGS_OFFSET = TIMESTAMP_SIZE                   # in the plaintext
FLAGS_SIZE = 1
PAYLOAD_OFFSET = FLAGS_OFFSET + FLAGS_SIZE      # the IP packet, in the plaintext
FLAG_CHECKSUM_PARTIAL = 0x01
TAG_SIZE = 16
KEY_SIZE = 32                                   # AES-256
OVERHEAD = HEADER_SIZE + PAYLOAD_OFFSET + TAG_SIZE   # 37 <= the seed's 44
MIN_DATAGRAM_SIZE = OVERHEAD                    # a keepalive: empty payload
MAX_DATAGRAM_SIZE = 65535
SESSION_RANDOM_BITS = 16
SESSION_START_BITS = SESSION_ID_SIZE * 8 - SESSION_RANDOM_BITS   # ms fit until year 10889
# A session stops short of counter wrap-around by about the replay window (WireGuard's
# margin, replay.WINDOW_SIZE), and the sender then starts a newer session.
REJECT_AFTER_MESSAGES = (1 << 8 * COUNTER_SIZE) - (1 << 13) - 1

PROTOCOL = "tomato-vpn v3"                      # the label: v2 and v3 keys differ, so they refuse each other
SCRYPT_SALT = PROTOCOL.encode() + b" password"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1    # ~32 MiB and ~0.1 s: deliberately slow

HEADER = struct.Struct(">QI")                  # session id, counter
TIMESTAMP = struct.Struct(">Q")                 # the first TIMESTAMP_SIZE bytes of the plaintext


# -- keys -------------------------------------------------------------------------
def derive_password_key(password):
    """scrypt of a password (str or bytes): the slow step, done once per start."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if isinstance(password, str):
        password = password.encode("utf-8")
    return Scrypt(salt=SCRYPT_SALT, length=KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password)


def make_session_id(start_ms, random16):
    """Session id = start time (ms) << 16 | 16 random bits; larger start = newer session."""
    if not 0 <= start_ms < 1 << SESSION_START_BITS or not 0 <= random16 < 1 << SESSION_RANDOM_BITS:
        raise ValueError("session id parts out of range")
    return start_ms << SESSION_RANDOM_BITS | random16


def session_start_ms(session_id):
    """The start time (ms) a session id carries: what "newer session" compares."""
    return session_id >> SESSION_RANDOM_BITS


# -- AEAD backends: same interface, byte-identical output -------------------------
# A backend is built from a 32-byte key and has
#   encrypt_into(nonce, plaintext, aad, out)   out: len(plaintext) + TAG_SIZE bytes
#   decrypt_into(nonce, data, aad, out)        out: len(data) - TAG_SIZE bytes;
#                                              raises backend.AuthenticationFailed
# Both may be the library's own bound methods, so the hot path pays no wrapper call.
class AuthenticationFailedPycryptodome(Exception):
    """pycryptodome backend: the tag did not verify."""


class CryptographyAead:
    """AES-256-GCM from `cryptography`: one key object reused, ~1-2 us per packet."""

    name = "cryptography"

    def __init__(self, key):
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aead = AESGCM(key)
        self.AuthenticationFailed = InvalidTag
        self.encrypt_into = aead.encrypt_into
        self.decrypt_into = aead.decrypt_into


class PycryptodomeAead:
    """AES-256-GCM from pycryptodome: a new cipher per packet (slow); the reference."""

    name = "pycryptodome"
    AuthenticationFailed = AuthenticationFailedPycryptodome

    def __init__(self, key):
        from Crypto.Cipher import AES

        self._aes = AES
        self._key = bytes(key)

    def _cipher(self, nonce, aad):
        cipher = self._aes.new(self._key, self._aes.MODE_GCM, nonce=bytes(nonce), mac_len=TAG_SIZE)
        cipher.update(bytes(aad))
        return cipher

    def encrypt_into(self, nonce, data, aad, out):
        cipher = self._cipher(nonce, aad)
        n = len(data)
        out = memoryview(out)
        cipher.encrypt(bytes(data), output=out[:n])
        out[n:n + TAG_SIZE] = cipher.digest()

    def decrypt_into(self, nonce, data, aad, out):
        cipher = self._cipher(nonce, aad)
        data = memoryview(data)
        n = len(data) - TAG_SIZE
        cipher.decrypt(bytes(data[:n]), output=memoryview(out)[:n])
        try:
            cipher.verify(bytes(data[n:]))
        except ValueError:
            raise AuthenticationFailedPycryptodome() from None


DEFAULT_BACKEND = CryptographyAead
BACKENDS = {b.name: b for b in (CryptographyAead, PycryptodomeAead)}


class CounterExhausted(Exception):
    """The session sent REJECT_AFTER_MESSAGES packets: start a new session."""


# -- seal / open -----------------------------------------------------------------------
class Sealer:
    """Seals outgoing payloads for one session; the counter only goes up."""

    def __init__(self, password_key, session_id, backend=DEFAULT_BACKEND, counter=0, limit=REJECT_AFTER_MESSAGES):
        self.session_id = session_id
        self.counter = counter
        self.limit = limit
        self._encrypt_into = backend(password_key).encrypt_into

    def seal_into(self, out, plain, timestamp_ms=None):
        """Seal plain = [8 bytes for the timestamp][flags][payload] into out; returns the
        datagram length.

        plain's first TIMESTAMP_SIZE bytes are overwritten with timestamp_ms, so a
        packet read from the tun at offset PAYLOAD_OFFSET is sealed without a copy;
        None: they already hold it (the scheduler writes it once per batch).
        out must hold len(plain) + HEADER_SIZE + TAG_SIZE bytes and not overlap plain.
        """
        counter = self.counter
        if counter >= self.limit:
            raise CounterExhausted()
        self.counter = counter + 1
        if timestamp_ms is not None:
            TIMESTAMP.pack_into(plain, 0, timestamp_ms)
        HEADER.pack_into(out, 0, self.session_id, counter)
        end = HEADER_SIZE + len(plain) + TAG_SIZE
        if type(out) is not memoryview:
            out = memoryview(out)
        header = out[:HEADER_SIZE]
        self._encrypt_into(header, plain, header, out[HEADER_SIZE:end])
        return end

    def seal(self, payload, timestamp_ms, flags=0):
        """Convenience: the sealed datagram for payload, as bytes."""
        plain = bytearray(PAYLOAD_OFFSET + len(payload))
        plain[FLAGS_OFFSET] = flags
        plain[PAYLOAD_OFFSET:] = payload
        out = bytearray(len(plain) + HEADER_SIZE + TAG_SIZE)
        self.seal_into(out, plain, timestamp_ms)
        return bytes(out)


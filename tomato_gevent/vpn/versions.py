"""Which protocol version a datagram that failed authentication speaks (pure).

Versions derive different keys from the same password, so a datagram of another
version fails authentication like one sealed with a wrong password. To say which it
is in the log, a datagram that failed is tried once more under the key the older
version derives from the peer's password -- at most once per interval (one more AEAD
call: a flood gains nothing), and only for datagrams from the peer's address (the
caller decides). The older key (scrypt: ~0.1 s) comes from old_key(), which returns
None while it is not ready: the CLI derives it in a thread, off the data path.

    probe = VersionProbe(old_key)
    probe.older_version(datagram, now_mono)  ->  "tomato-vpn v2" or None

The older layouts differ after the header only, so one AEAD call over the datagram
as it came decides: header (12) = nonce = associated data, then ciphertext and tag.
"""
from .packet import DEFAULT_BACKEND, HEADER_SIZE, KEY_SIZE, SCRYPT_N, SCRYPT_P, SCRYPT_R, TAG_SIZE

OLD_PROTOCOL = "tomato-vpn v2"
OLD_SCRYPT_SALT = OLD_PROTOCOL.encode() + b" password"
PROBE_INTERVAL_SECONDS = 10.0


def derive_old_key(password):
    """The key the older version derives from a password (str or bytes)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if isinstance(password, str):
        password = password.encode("utf-8")
    return Scrypt(salt=OLD_SCRYPT_SALT, length=KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password)


class VersionProbe:
    def __init__(self, old_key, interval=PROBE_INTERVAL_SECONDS, backend=DEFAULT_BACKEND):
        self._old_key = old_key
        self.interval = interval
        self._backend = backend
        self._aead = None
        self._next_try = None       # monotonic seconds

    def older_version(self, datagram, now_mono):
        """The older protocol's name if datagram authenticates under its key, else None
        (also when the last try was less than interval ago, or the old key is not ready)."""
        if self._next_try is not None and now_mono < self._next_try:
            return None
        if self._aead is None:
            key = self._old_key()
            if key is None:
                return None             # not ready: the next datagram asks again (no AEAD call yet)
            self._aead = self._backend(key)
        self._next_try = now_mono + self.interval
        if len(datagram) < HEADER_SIZE + TAG_SIZE:
            return None
        datagram = memoryview(datagram)
        header = datagram[:HEADER_SIZE]
        out = bytearray(len(datagram) - HEADER_SIZE - TAG_SIZE)
        try:
            self._aead.decrypt_into(header, datagram[HEADER_SIZE:], header, out)
        except self._aead.AuthenticationFailed:
            return None
        return OLD_PROTOCOL

"""The AEAD backends of the data path (pure, no I/O): AES-256-GCM behind one interface.

A backend is built from a 32-byte key and has
  encrypt_into(nonce, plaintext, aad, out)   out: len(plaintext) + TAG_SIZE bytes
  decrypt_into(nonce, data, aad, out)        out: len(data) - TAG_SIZE bytes;
                                             raises backend.AuthenticationFailed
Both may be the library's own bound methods, so the hot path pays no wrapper call.
`cryptography` is the data path's (one key object reused, ~1-2 us per packet);
pycryptodome is the reference the tests check it against (a new cipher per packet,
byte-identical output). What is sealed and how is keypair.py's (protocol v3).
"""
TAG_SIZE = 16
KEY_SIZE = 32                                   # AES-256


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

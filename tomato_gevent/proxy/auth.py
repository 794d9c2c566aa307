"""Proxy credentials (--auth-file): one check for SOCKS5 username/password and HTTP Basic.

File format: UTF-8 text, one ``user:password`` per line (the password is
everything after the first ``:``, so it may contain colons); blank lines and
lines starting with ``#`` are ignored. Both parts 1 to 255 bytes (RFC 1929's
limits, so every entry is usable from SOCKS5 too). Errors name the file and
line but never echo the line: it holds a password.

    load_auth_file(path) -> Authenticator      ConfigError on a bad file
    Authenticator.check(username, password)    bytes, constant-time comparison
    Authenticator.check_basic(header_value)    b"Basic base64(user:password)" or None

Pure except load_auth_file's read (whose warning about a file others may read is
the only line logged from here).
"""
import base64
import binascii
import hashlib
import hmac
from typing import Dict, Iterable, Optional

from ..cli_common import read_private_file
from ..errors import ConfigError

MAX_PART_BYTES = 255
MAX_AUTH_FILE_BYTES = 1 << 20
REALM = b"tomato proxy"


def _digest(password: bytes) -> bytes:
    # Compare digests so that timing says nothing about a password's length either.
    return hashlib.sha256(password).digest()


class Authenticator:
    __slots__ = ("_users",)

    def __init__(self, users: Dict[bytes, bytes]):
        self._users = {user: _digest(password) for user, password in users.items()}

    def __len__(self):
        return len(self._users)

    def check(self, username: bytes, password: bytes) -> bool:
        expected = self._users.get(username)
        given = _digest(password)
        if expected is None:
            hmac.compare_digest(given, given)       # same work for unknown users
            return False
        return hmac.compare_digest(given, expected)

    def check_basic(self, header_value: Optional[bytes]) -> bool:
        """A Proxy-Authorization value: scheme Basic (any case), base64 of user:password."""
        if not header_value:
            return False
        scheme, _, token = header_value.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        username, colon, password = decoded.partition(b":")
        return bool(colon) and self.check(username, password)


def parse_auth_lines(lines: Iterable[str], source: str) -> Authenticator:
    users: Dict[bytes, bytes] = {}
    for lineno, line in enumerate(lines, 1):
        text = line.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        username, colon, password = text.partition(":")
        where = "%s:%d" % (source, lineno)
        if not colon:
            raise ConfigError("%s: expected user:password (line not shown: it may hold a password)" % where)
        user_bytes, password_bytes = username.encode("utf-8"), password.encode("utf-8")
        if not 0 < len(user_bytes) <= MAX_PART_BYTES or not 0 < len(password_bytes) <= MAX_PART_BYTES:
            raise ConfigError("%s: user and password must each be 1 to %d bytes" % (where, MAX_PART_BYTES))
        if user_bytes in users:
            raise ConfigError("%s: user %r appears twice" % (where, username))
        users[user_bytes] = password_bytes
    if not users:
        raise ConfigError("%s: no user:password line" % source)
    return Authenticator(users)


def load_auth_file(path: str) -> Authenticator:
    """The file's users (cli_common.read_private_file's rules: a regular file of at most
    MAX_AUTH_FILE_BYTES, UTF-8, a warning when others may read it)."""
    text = read_private_file(path, "auth", MAX_AUTH_FILE_BYTES)
    return parse_auth_lines(text.removeprefix("\ufeff").split("\n"), path)


def proxy_authenticate_header():
    return (b"Proxy-Authenticate", b'Basic realm="%s"' % REALM)

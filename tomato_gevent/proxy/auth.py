"""Proxy credentials (--auth-file): one check for SOCKS5 username/password and HTTP Basic.

File format: UTF-8 text, one ``user:password`` per line (the password is
everything after the first ``:``, so it may contain colons); blank lines and
lines starting with ``#`` are ignored. Both parts 1 to 255 bytes (RFC 1929's
limits, so every entry is usable from SOCKS5 too). Errors name the file and
line but never echo the line: it holds a password.

    load_auth_file(path) -> Authenticator      ConfigError on a bad file
    Authenticator.check(username, password)    bytes, constant-time comparison
    Authenticator.check_basic(header_value)    b"Basic base64(user:password)" or None
    Authenticator.basic_user(header_value)     the user's display name if the credentials
                                               hold, else None
    Authenticator.replace(other)               take other's users in place (SIGHUP: every
                                               holder, open connections too, sees them)
    claimed_user(header_value)                 the user a Proxy-Authorization names (for the
                                               line of a refusal), never its password
    display_name(raw)                          a user name as a log line may show it

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


def display_name(raw: bytes, limit: int = 64) -> str:
    """A user name as a log line may show it: UTF-8 (bad bytes replaced), at most `limit`
    characters, control characters and white space escaped: a name a client tried is
    anything it chose, and a line must stay one line."""
    text = raw.decode("utf-8", "replace")[:limit]
    if text.isprintable() and " " not in text:
        return text
    return "".join(c if c.isprintable() and c != " " else
                   ("\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c)) for c in text)


def _split_basic(header_value: Optional[bytes]):
    """(user, password) of a Basic Proxy-Authorization value, None if it is none."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(b":")
    return (username, password) if colon else None


def claimed_user(header_value: Optional[bytes]) -> Optional[str]:
    """The display name of the user a Proxy-Authorization value tries, None if it names none."""
    split = _split_basic(header_value)
    return None if split is None else display_name(split[0])


class Authenticator:
    __slots__ = ("_users", "_names")

    def __init__(self, users: Dict[bytes, bytes]):
        self._users = {user: _digest(password) for user, password in users.items()}
        self._names = {user: display_name(user) for user in users}

    def __len__(self):
        return len(self._users)

    def replace(self, other: "Authenticator") -> None:
        self._users, self._names = other._users, other._names

    def check(self, username: bytes, password: bytes) -> bool:
        expected = self._users.get(username)
        given = _digest(password)
        if expected is None:
            hmac.compare_digest(given, given)       # same work for unknown users
            return False
        return hmac.compare_digest(given, expected)

    def check_basic(self, header_value: Optional[bytes]) -> bool:
        """A Proxy-Authorization value: scheme Basic (any case), base64 of user:password."""
        return self.basic_user(header_value) is not None

    def basic_user(self, header_value: Optional[bytes]) -> Optional[str]:
        """The display name of the user whose Basic credentials header_value holds, if they
        are right; None otherwise."""
        split = _split_basic(header_value)
        if split is None or not self.check(*split):
            return None
        return self._names[split[0]]

    def name_of(self, username: bytes) -> str:
        """The display name of a user (one of ours: after check() said yes)."""
        return self._names[username]


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

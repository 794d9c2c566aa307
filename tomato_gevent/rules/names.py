"""Host names: the one normalisation every name goes through, at the edge and in rule files.

Contract
--------
``normalize_name(text) -> str | None`` turns a DNS name as a client or a rule
file writes it into the one spelling the proxy works with, or None if it is
not a usable name:

* lower case;
* ALL trailing dots removed (``example.com..`` is ``example.com``: an absolute
  name is the same name, and one stripped dot less must not mean "no rule");
* Unicode labels converted to IDNA 2008 A-labels by the UTS #46 mapping,
  non-transitional, as browsers do (``faß.de`` -> ``xn--fa-hia.de``; the
  stdlib codec is IDNA 2003 and would say ``fass.de``, another site);
* labels of letters, digits, ``-`` and ``_`` (real names such as
  ``_dmarc.x.com`` exist and DNS resolves them), 1-63 characters, 253 in all;
  the last label must not be all digits (``127.1`` is no name).

``canonical_host(host) -> str`` is the edge's form of it: both front ends
(HTTP and SOCKS5) call it on every requested host, so one host has one spelling
whichever way it came. An IP literal comes back as the ``ipaddress`` text
(brackets removed, ``0:0::1`` -> ``::1``; a plain dotted quad is recognised by
one regexp instead of ``ip_address``'s ~17 Python calls), a name as
``normalize_name`` gives it; anything else raises ``BadHost`` (a 400 for HTTP,
reply 0x04 for SOCKS5). The string it returns is the one the rules decide on
AND the one that is resolved and connected to.

``normalize_host(host) -> str | None`` is the rules' helper for a host that
may carry ``:port`` (a CONNECT authority): the name, or None for IP literals
and invalid names.

Pure: no I/O.
"""
import functools
import ipaddress
import re
from typing import Optional

import idna

from ..errors import RemoteProtocolError

MAX_NAME_LENGTH = 253           # RFC 1035, textual form without the trailing dot

# Labels: letters, digits, "-" and "_". The last label must contain a
# non-digit: an all-digit "TLD" is an IPv4 literal in disguise or nonsense.
_NAME_RE = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*(?=[a-z0-9_-]*[a-z_-])[a-z0-9_-]{1,63}")
name_is_valid = _NAME_RE.fullmatch


class BadHost(RemoteProtocolError):
    """A request names a host that is neither a valid name nor an IP literal."""

    def __init__(self, msg):
        super().__init__(msg, status_hint=400)


@functools.lru_cache(maxsize=1024)
def _unicode_to_ascii(name: str) -> Optional[str]:
    """Unicode name -> A-labels (IDNA 2008, UTS #46 non-transitional), None if not encodable.

    ASCII labels are kept as they are (lower-cased by the mapping) so that a
    name such as ``_dmarc.bücher.de`` keeps its underscore label, which IDNA
    itself would refuse. Costs tens of microseconds, hence the cache; clients
    normally send A-labels already, so this path is rare.
    """
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii")
                        for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def normalize_name(text: str) -> Optional[str]:
    """A DNS name (no port) -> lower case, no trailing dots, A-labels; None if invalid or an IP."""
    if text.isascii():
        name = text.lower()
    else:
        name = _unicode_to_ascii(text)
        if name is None:
            return None
    name = name.rstrip(".")
    if len(name) > MAX_NAME_LENGTH or not name_is_valid(name):
        return None
    return name


def normalize_host(host: str) -> Optional[str]:
    """``name``, ``name:port`` -> normalised name; None for IP literals and invalid names."""
    if not host or host[0] == "[":      # "[v6]" or "[v6]:port": an IP literal
        return None
    colon = host.find(":")
    if colon >= 0:
        if host.find(":", colon + 1) >= 0:     # bare IPv6 literal
            return None
        port = host[colon + 1:]
        if not port.isdigit() or not port.isascii():
            return None
        host = host[:colon]
    return normalize_name(host)


# A dotted-quad IPv4 literal exactly as ipaddress.ip_address accepts it (ASCII digits,
# octets 0-255 without leading zeros), which is also its canonical text.
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
is_plain_ipv4 = _IPV4.fullmatch


def canonical_host(host: str) -> str:
    """A request's host (no port; IPv6 with or without brackets) -> the string to decide on,
    resolve and connect to. Raises BadHost."""
    if is_plain_ipv4(host) is not None:
        return host
    literal = host[1:-1] if host[:1] == "[" and host[-1:] == "]" else host
    if ":" in literal or (literal[-1:].isdigit() and literal.isascii()):
        try:
            return str(ipaddress.ip_address(literal))
        except ValueError:
            pass
    name = normalize_name(host)
    if name is None:
        raise BadHost("bad host name %r" % host[:80])
    return name

"""A peer's host as given on a command line (vpn -pa, ping -a): resolved at start, and again
while running when the peer may have moved (dynamic DNS, a peer that changed address).

  getaddrinfo(host, port, ...)  socket.getaddrinfo for datagram sockets; a failure is
                                Unresolved("cannot resolve HOST: reason"), one line
  PeerName(host, resolve)       the host and how the tool resolves it (host -> the
                                address it sends to); moved(current) resolves again and
                                says whether the answer differs. An IP literal
                                (netutil.ip_literal: brackets and a zone allowed) is
                                never resolved again.
I/O: DNS through getaddrinfo (gevent's resolver once monkey-patched). Nothing here logs:
each tool says in its own words what changed.
"""
import socket

from .errors import ConfigError
from .netutil import ip_literal


class Unresolved(ConfigError):
    """A host name does not resolve (at start the vpn retries; while running the old address is kept)."""


def getaddrinfo(host, port, family=socket.AF_UNSPEC, flags=0):
    """socket.getaddrinfo(host, port, family, SOCK_DGRAM, 0, flags), or Unresolved."""
    try:
        return socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, flags)
    except socket.gaierror as e:
        raise Unresolved("cannot resolve %s: %s" % (host, e.strerror)) from None
    except UnicodeError:
        raise Unresolved("cannot resolve %s: not a valid host name" % host) from None


class PeerName:
    """A peer's host and the tool's way to resolve it: resolve(host) -> what the tool sends
    to, raising ConfigError when it cannot."""

    def __init__(self, host, resolve):
        self.host = host
        self.numeric = ip_literal(host) is not None     # a literal is never resolved again
        self._resolve = resolve

    def moved(self, current):
        """Resolve again: the fresh answer if it differs from current, else None (always None
        for a literal). ConfigError (Unresolved) if the name does not resolve now."""
        if self.numeric:
            return None
        fresh = self._resolve(self.host)
        return None if fresh == current else fresh

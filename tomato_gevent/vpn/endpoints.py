"""Where the vpn listens and where it sends: -la and -pa resolved at start, the -pa name
followed while the link runs (gevent glue around peername.py).

  resolve_endpoints(local, peer)    (bind sockaddr, peer sockaddr or None), families matched
  resolve_endpoints_patiently(...)  the same, retrying while the peer's name does not
                                    resolve (no network yet at boot)
  PeerResolver(hostport, bind)      the -pa name of a running link, resolved again on
                                    SIGHUP (refresh) and while the peer is silent
                                    (refresh_while_silent): the link follows a moved peer
"""
import logging
import time

import gevent

from ..errors import ConfigError
from ..netutil import format_address
from ..peername import PeerName, Unresolved, getaddrinfo

log = logging.getLogger(__name__)

RESOLVE_RETRY_SECONDS = 5.0                     # a -pa name that does not resolve at start
RERESOLVE_SILENT_SECONDS = 30.0                 # how often a silent peer's -pa name is resolved again


def sockaddr(host, port):
    """The first sockaddr host:port resolves to; Unresolved if none."""
    return getaddrinfo(host, port)[0][4]


def peer_for_socket(peer_addr, bind):
    """The peer's sockaddr as a socket bound to `bind` sends to it: IPv4 peers of a
    dual-stack IPv6 socket as ::ffff:a.b.c.d."""
    if len(bind) == len(peer_addr):
        return peer_addr
    if len(bind) == 4:
        return ("::ffff:" + peer_addr[0], peer_addr[1], 0, 0)
    raise ConfigError("local address %s is IPv4 but the peer %s is IPv6" % (bind[0], peer_addr[0]))


def resolve_endpoints(local, peer):
    """(bind sockaddr, peer sockaddr or None) with matching families.

    An empty local host binds IPv4 unless the peer is IPv6; `[::]:PORT` binds a
    dual-stack socket that also reaches IPv4 peers (as ::ffff:a.b.c.d).
    Raises Unresolved if the peer's name does not resolve; a local name that does not
    resolve is a plain ConfigError (retrying would not help).
    """
    peer_addr = sockaddr(*peer) if peer is not None else None
    local_host, local_port = local
    if local_host:
        try:
            bind = sockaddr(local_host, local_port)
        except Unresolved as e:
            raise ConfigError(str(e)) from None
    elif peer_addr is not None and len(peer_addr) == 4:
        bind = ("::", local_port, 0, 0)
    else:
        bind = ("0.0.0.0", local_port)
    return bind, peer_for_socket(peer_addr, bind) if peer_addr is not None else None


def resolve_endpoints_patiently(local, peer, stop_event):
    """resolve_endpoints, retrying every RESOLVE_RETRY_SECONDS while the peer's name does
    not resolve (no network yet at boot); None if a stop came first."""
    waiting_since = None
    while True:
        try:
            endpoints = resolve_endpoints(local, peer)
        except Unresolved as e:
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("%s; retrying every %g s", e, RESOLVE_RETRY_SECONDS)
            if stop_event.wait(RESOLVE_RETRY_SECONDS):
                return None
            continue
        if waiting_since is not None:
            log.info("%s resolved after %.0f s", peer[0], time.monotonic() - waiting_since)
        return endpoints


class PeerResolver:
    """The -pa host of a running link, re-resolved on SIGHUP and while the peer is silent (dynamic DNS)."""

    def __init__(self, hostport, bind):
        host, self.port = hostport
        self.bind = bind            # the local sockaddr: decides how an IPv4 peer is written
        self.name = PeerName(host, self._resolve)

    def _resolve(self, host):
        return peer_for_socket(sockaddr(host, self.port), self.bind)

    def refresh(self, link):
        """Resolve again; point the link at the new address if it moved."""
        current = link.endpoint.address
        try:
            fresh = self.name.moved(current)
        except ConfigError as e:
            log.warning("%s; keeping %s", e, _format_peer(current))
            return
        if fresh is not None:
            log.info("peer %s now resolves to %s (was %s)", self.name.host, _format_peer(fresh), _format_peer(current))
            link.move_peer(fresh)

    def refresh_while_silent(self, link):
        if self.name.numeric:
            return
        while True:
            gevent.sleep(min(RERESOLVE_SILENT_SECONDS, link.watch.silent_after))
            if link.watch.silent:
                self.refresh(link)


def _format_peer(address):
    return format_address(address) if address is not None else "none"

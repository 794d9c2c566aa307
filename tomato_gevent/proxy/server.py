"""The proxy's front door: a gevent StreamServer, one greenlet per client connection.

    make_listener        the listening socket (dual-stack for "")
    ClientContext        what a front end gets for one client: peer, outbound, relay, finish
    ProxyServer.handle   --max-clients (503 beyond it), first bytes; 0x05 -> the SOCKS5
                         front end (socks_session.py), else HTTP (http_session.py)
    ProxyServer.do_read  the accept loop survives EMFILE & co. (pause, one warning)

The front ends own their protocols; connecting and relaying is outbound.py's. A broken
connection ends that connection only.
"""
import errno
import logging
import time

import gevent
from gevent import socket
from gevent.server import StreamServer

from ..errors import ConfigError, TomatoError
from ..netutil import format_address
from ..rules import Action
from . import exchange, http, http_session, socks5
from .outbound import (CONNECT_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS, RECV_BYTES,
                       TUNNEL_IDLE_TIMEOUT_SECONDS, Outbound, relay)
from .stats import Stats

log = logging.getLogger(__name__)

# -- implementation constants ----------------------------------------------------
DEFAULT_MAX_CLIENTS = 2048          # open client connections (tunnels included)
LISTEN_BACKLOG = 1024
ACCEPT_BACKOFF_SECONDS = 0.5        # pause accepting after EMFILE & co.
ACCEPT_WARN_INTERVAL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 2.0          # running connections get this long on SIGTERM

_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_TRANSIENT_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR)


def make_listener(host, port, reuse_port=False, getaddrinfo=None):
    """A listening TCP socket. host "" = all interfaces (dual-stack when IPv6 is there).
    reuse_port: SO_REUSEPORT, one of several sockets on the address (--workers);
    getaddrinfo: instead of gevent's (whose threadpool runs the hub: not in a parent that forks)."""
    candidates = []
    if host == "":
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    else:
        try:
            infos = (getaddrinfo or socket.getaddrinfo)(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise ConfigError("cannot listen on %s: %s" % (format_address((host, port)), e.strerror)) from None
        candidates = [(info[0], info[4][0]) for info in infos]
    error = None
    for family, address in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and host == "":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((address, port))
            sock.listen(LISTEN_BACKLOG)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise ConfigError("cannot listen on %s: %s" % (format_address((host or "*", port)), error.strerror or error))


class ClientContext:
    """What a front end (HTTP here, SOCKS5 in its own module) gets for one client:

    peer (text for logs), client (ip_address), outbound (decide, connect_direct,
    tunnel_via_upstream, open_tunnel), idle_timeout, relay(a, b) -> (up, down) with the
    tunnel idle timeout, finish(...) = the one log line + the counters of a request.
    """

    def __init__(self, server, address):
        self.address = address
        self.client = exchange.client_ip(address)
        self.authenticator = server.authenticator
        self.outbound = server.outbound
        self.stats = server.stats
        self.idle_timeout = server.outbound.idle_timeout

    @property
    def peer(self):
        """The client's address as text, made when a log line needs it."""
        return format_address(self.address)

    def relay(self, a, b):
        return relay(a, b, self.outbound.tunnel_idle_timeout)

    def finish(self, method, host, port, direction, status, up, down, started, reason=None):
        """Count a finished request and log it: errors the proxy answered itself are
        visible without -v (INFO), the rest is -v detail."""
        self.stats.record(direction, status, up, down)
        level = logging.INFO if reason is not None else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "%s %s %s:%s %s %d up=%d down=%d %.1fms%s", self.peer, method, host, port,
                    direction, status, up, down, (time.monotonic() - started) * 1000.0,
                    (" (%s)" % reason) if reason else "")


class ProxyServer(StreamServer):
    """StreamServer whose handler is the rule-based proxy.

    rules: lookup(host) -> Action | None (rules.RuleSet), replaceable with set_rules()
    (SIGHUP); default_action when no rule matches; upstream: (host, port) of -f or None
    (forward then acts as direct). socks5_handler(sock, first_bytes, context): the SOCKS5
    front end for connections whose first byte is 0x05 (None: such connections are closed).
    authenticator (auth.Authenticator, --auth-file) or None: HTTP requests then need
    Proxy-Authorization: Basic (407 otherwise); the SOCKS5 front end checks it itself.
    """

    def __init__(self, listener, rules, default_action=Action.DIRECT, upstream=None,
                 resolver=None, idle_timeout=IDLE_TIMEOUT_SECONDS,
                 connect_timeout=CONNECT_TIMEOUT_SECONDS,
                 tunnel_idle_timeout=TUNNEL_IDLE_TIMEOUT_SECONDS, allow_private=False,
                 max_clients=DEFAULT_MAX_CLIENTS, socks5_handler=None, authenticator=None):
        super().__init__(listener)
        self.authenticator = authenticator
        self.outbound = Outbound(rules, default_action, upstream, resolver, idle_timeout,
                                 connect_timeout, tunnel_idle_timeout, allow_private)
        self.max_clients = max_clients
        self.socks5_handler = socks5_handler
        self.stats = Stats()
        self.stop_timeout = STOP_TIMEOUT_SECONDS
        self._last_accept_warning = None
        self._full_logged = False

    def set_rules(self, rules):
        self.outbound.set_rules(rules)

    def log_summary(self):
        log.info("summary: %s", self.stats.summary())

    # -- the front door ----------------------------------------------------------------
    def handle(self, sock, address):
        self.stats.opened()
        try:
            if self.stats.open_connections > self.max_clients:
                self._refuse_full(sock)
                return
            context = ClientContext(self, address)
            first = self._first_bytes(sock)
            if not first:
                return
            try:
                if first[0] == socks5.VERSION:       # a SOCKS5 greeting (RFC 1928 3)
                    if self.socks5_handler is None:
                        log.debug("%s: SOCKS5 greeting, but SOCKS5 is not enabled: closing", context.peer)
                        return
                    self.socks5_handler(sock, first, context)
                else:
                    http_session.handle(sock, first, context)
            except TomatoError as e:        # a front end's typed error that reached us: one line
                log.info("%s: %s", context.peer, e)
        finally:
            self.stats.closed()
            if self.stats.open_connections < self.max_clients:
                self._full_logged = False

    def _first_bytes(self, sock):
        """The first bytes the client sends (waiting up to idle_timeout), b"" if none."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock.settimeout(self.outbound.idle_timeout)
        try:
            return sock.recv(RECV_BYTES)
        except OSError:                     # timeout, reset
            return b""

    def _refuse_full(self, sock):
        if not self._full_logged:
            self._full_logged = True
            log.warning("%d client connections open (--max-clients): answering new ones 503",
                        self.max_clients)
        answer = http.render_simple_response(503, "too many clients, try again later")
        try:
            sock.sendall(answer)
        except OSError:
            return
        self.stats.record("-", 503, 0, len(answer))

    # -- accept errors: survive EMFILE instead of gevent's traceback --------------------
    def do_read(self):
        try:
            return super().do_read()
        except OSError as e:
            if e.errno in _ACCEPT_TRANSIENT_ERRORS:
                return None
            if e.errno not in _ACCEPT_RESOURCE_ERRORS:
                raise
            now = time.monotonic()
            if (self._last_accept_warning is None
                    or now - self._last_accept_warning > ACCEPT_WARN_INTERVAL_SECONDS):
                self._last_accept_warning = now
                log.warning("accept failed: %s; pausing new connections for %.1fs",
                            e.strerror, ACCEPT_BACKOFF_SECONDS)
            self.stop_accepting()
            gevent.spawn_later(ACCEPT_BACKOFF_SECONDS, self._resume_accepting)
            return None

    def _resume_accepting(self):
        if self.started and not self.closed:
            self.start_accepting()

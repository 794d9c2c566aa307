"""The proxy's front door: a gevent StreamServer, one greenlet per client connection.

    make_listener        the listening socket (dual-stack for "")
    tune_gevent          process-wide gevent settings for a serving process
    ClientContext        what a front end gets for one client: peer, outbound, relay, finish
    ProxyServer.handle   --max-clients (503 beyond it; with --auth-file, a connection not
                         logged in yet is reclaimed first: client_policy.Admission), --allow,
                         first bytes;
                         0x05 -> the SOCKS5 front end (socks_session.py), else HTTP
                         (http_session.py)
    ProxyServer._housekeeping   with --auth-file, once a second: cuts connections that did
                         not log in within login_deadline; logs the guess_throttle's counts
    _Handlers            each connection's greenlet: a plain one, kept for the next connection
    ProxyServer.do_read  an accepted connection is a lean_socket.LeanSocket (not gevent's
                         socket); the accept loop survives EMFILE & co. (pause, one warning)

The front ends own their protocols; connecting and relaying is outbound.py's. A broken
connection ends that connection only.
"""
import errno
import logging
import sys
import time

import gevent
from gevent import socket
from gevent.server import StreamServer
from greenlet import getcurrent, greenlet

from ..errors import ConfigError, TomatoError
from ..http1 import http
from ..netutil import format_address
from ..rules import Action
from . import exchange, http_session, lean_socket, socket_io, socks5
from .outbound import (CONNECT_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS, RECV_BYTES,
                       TUNNEL_IDLE_TIMEOUT_SECONDS, Outbound, relay)
from .access_log import access_line
from .client_policy import Admission
from .guess_throttle import GuessThrottle
from .loop_guard import new_via_token
from .stats import Stats

log = logging.getLogger(__name__)

# -- implementation constants ----------------------------------------------------
DEFAULT_MAX_CLIENTS = 2048          # open client connections (tunnels included)
LISTEN_BACKLOG = 1024
ACCEPT_BACKOFF_SECONDS = 0.5        # pause accepting after EMFILE & co.
ACCEPT_WARN_INTERVAL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 2.0          # running connections get this long on SIGTERM
LOGIN_DEADLINE_SECONDS = 10.0       # --auth-file: a connection not logged in by then is cut
HOUSEKEEPING_SECONDS = 1.0
IDLE_HANDLERS = 64                  # connection greenlets kept for the next connections

_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_TRANSIENT_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR)


def tune_gevent():
    """Process-wide gevent settings for a process that serves (bin/proxy, each worker): new
    greenlets do not record who spawned them and from where (gevent's track_greenlet_tree, on
    by default, walks the spawning stack and its line numbers for every greenlet: ~19k
    instructions each, and a SOCKS5 session or new connection spawns one or two; nothing in
    the proxy reads spawning_stack or spawn_tree_locals)."""
    gevent.config.track_greenlet_tree = False


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
    tunnel idle timeout, user (the front end sets it once a login succeeded),
    opened(...) = the access line of a tunnel that opens, finish(...) = the one line
    (the access log's, else a log line) + the counters of a request or closed tunnel.
    """

    def __init__(self, server, address, sock=None):
        self.address = address
        self.throttle = server.throttle
        self.pending = server.authenticator is not None     # not logged in yet (reclaimable)
        self._admission = server.admission
        self._sock = sock
        self.client = exchange.client_ip(address)
        self.authenticator = server.authenticator
        self.outbound = server.outbound
        self.stats = server.stats
        self.idle_timeout = server.outbound.idle_timeout
        self.access_log = server.access_log
        self.user = None
        self._tunnel_open = False
        self._peer = None

    @property
    def peer(self):
        """The client's address as text, made when a log line first needs it."""
        if self._peer is None:
            self._peer = format_address(self.address)
        return self._peer

    def relay(self, a, b, b_asked=True):
        return relay(a, b, self.outbound.tunnel_idle_timeout, b_asked)

    def admit(self):
        """Logged in: the connection is no longer reclaimable."""
        self.pending = False
        self._admission.admitted(self._sock)

    def opened(self, method, host, port, direction, started):
        """A tunnel is open (CONNECT answered 200, SOCKS5 succeeded): its first access line."""
        if self.access_log is not None:
            self._tunnel_open = True
            self._access(method, host, port, None, direction, 200, 0, 0, started, "open", None)

    def finish(self, method, host, port, direction, status, up, down, started, reason=None, path=None):
        """Count a finished request and log it: the access log's line, or without one, errors
        the proxy answered itself visible without -v (INFO), the rest as -v detail."""
        self.stats.record(direction, status, up, down)
        access_log = self.access_log
        if access_log is not None:          # _access inlined: this runs on every request
            event = None
            if self._tunnel_open:
                self._tunnel_open = False
                event = "closed"
            outbound = self.outbound
            access_log.write(access_line(
                self._peer or self.peer, self.user, method, host, port, path, direction,
                "-" if direction == "-" else outbound.origins.get(host) or outbound.rule_origin(host),
                outbound.upstream_text if direction == "forward" else "-", status, up, down,
                time.monotonic() - started, event, reason))
            return
        level = logging.INFO if reason is not None else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "%s %s %s:%s %s %d up=%d down=%d %.1fms%s", self.peer, method, host, port,
                    direction, status, up, down, (time.monotonic() - started) * 1000.0,
                    (" (%s)" % reason) if reason else "")

    def _access(self, method, host, port, path, direction, status, up, down, started, event, reason):
        outbound = self.outbound
        if direction == "-":
            rule = "-"
        else:
            rule = outbound.origins.get(host) or outbound.rule_origin(host)
        self.access_log.write(access_line(
            self.peer, self.user, method, host, port, path, direction, rule,
            outbound.upstream_text if direction == "forward" else "-", status, up, down,
            time.monotonic() - started, event, reason))


class ProxyServer(StreamServer):
    """StreamServer whose handler is the rule-based proxy.

    rules: lookup(host) -> Action | None (rules.RuleSet), replaceable with set_rules()
    (SIGHUP); default_action when no rule matches; upstream: (host, port) of -f or None
    (forward then acts as direct). socks5_handler(sock, first_bytes, context): the SOCKS5
    front end for connections whose first byte is 0x05 (None: such connections are closed).
    authenticator (auth.Authenticator, --auth-file) or None: HTTP requests then need
    Proxy-Authorization: Basic (407 otherwise); the SOCKS5 front end checks it itself.
    allowed_clients (client_policy.ClientNetworks, --allow) or None for everyone: others
    get 403 (HTTP) or "no acceptable method" (SOCKS5). access_log (access_log.AccessLog)
    or None: then requests are log lines (INFO for errors, DEBUG for the rest).
    """

    def __init__(self, listener, rules, default_action=Action.DIRECT, upstream=None,
                 resolver=None, idle_timeout=IDLE_TIMEOUT_SECONDS,
                 connect_timeout=CONNECT_TIMEOUT_SECONDS,
                 tunnel_idle_timeout=TUNNEL_IDLE_TIMEOUT_SECONDS, allow_private=False,
                 max_clients=DEFAULT_MAX_CLIENTS, socks5_handler=None, authenticator=None,
                 via_token=None, upstream_authorization=None, access_log=None, allowed_clients=None,
                 throttle=None, login_deadline=LOGIN_DEADLINE_SECONDS):
        self.handlers = _Handlers()
        super().__init__(listener, spawn=self.handlers.spawn)
        self.authenticator = authenticator
        self.throttle = throttle if throttle is not None else GuessThrottle()
        self.admission = Admission()
        self.login_deadline = min(login_deadline, idle_timeout)
        self.reclaimed = 0                  # connections cut to make room (Admission.oldest)
        self._housekeeper = None
        self.access_log = access_log
        self.allowed_clients = allowed_clients
        self.outbound = Outbound(rules, default_action, upstream, resolver, idle_timeout,
                                 connect_timeout, tunnel_idle_timeout, allow_private,
                                 via_token or new_via_token(), upstream_authorization)
        self.max_clients = max_clients
        self.socks5_handler = socks5_handler
        self.stats = Stats()
        self.stop_timeout = STOP_TIMEOUT_SECONDS
        self._last_accept_warning = None
        self._full_logged = False

    def set_rules(self, rules):
        self.outbound.set_rules(rules)

    def init_socket(self):
        super().init_socket()
        # Set once here, Linux copies TCP_NODELAY from the listening socket into every socket it
        # accepts: a system call less per connection. Heads and answers go out as soon as written.
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_summary(self):
        log.info("summary: %s", self.stats.summary())

    def start(self):
        super().start()
        if self.authenticator is not None and self._housekeeper is None:
            self._housekeeper = gevent.spawn(self._housekeeping)

    def stop(self, timeout=None):
        if self._housekeeper is not None:
            self._housekeeper.kill()
            self._housekeeper = None
        super().stop(timeout)

    def _housekeeping(self):
        throttle = self.throttle
        while True:
            gevent.sleep(HOUSEKEEPING_SECONDS)
            now = time.monotonic()
            for sock in self.admission.overdue(now, self.login_deadline):
                log.debug("closing a connection that did not log in within %gs", self.login_deadline)
                _cut(sock)
            for client, count, users in throttle.report(now):
                log.warning("%s: %d more failed logins in the last %.0fs%s", client, count, throttle.report_every,
                            " (users tried: %s)" % ", ".join(repr(user) for user in users) if users else "")

    def _reclaim(self):
        """Every slot is taken: cut the oldest connection not admitted yet; False if none."""
        victim = self.admission.oldest()
        if victim is None:
            return False
        self.reclaimed += 1
        log.debug("all %d client slots taken: closing the oldest connection not logged in yet", self.max_clients)
        _cut(victim)
        return True

    # -- the front door ----------------------------------------------------------------
    def handle(self, sock, address):
        self.stats.opened()
        admission = self.admission
        try:
            if self.stats.open_connections > self.max_clients and not self._reclaim():
                self._refuse_full(sock)
                return
            if self.authenticator is not None:
                admission.arrived(sock, time.monotonic())
            context = ClientContext(self, address, sock)
            first = self._first_bytes(sock)
            if not first:
                return
            if self.allowed_clients is not None and not self.allowed_clients.allows(context.client):
                self._refuse_client(sock, first, context)
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
            if self.authenticator is not None:
                admission.left(sock)
            self.stats.closed()
            if self.stats.open_connections < self.max_clients:
                self._full_logged = False

    def _first_bytes(self, sock):
        """The first bytes the client sends (waiting up to idle_timeout), b"" if none."""
        sock.settimeout(self.outbound.idle_timeout)     # for the front ends' own waits
        try:
            return socket_io.recv(sock, RECV_BYTES, self.outbound.idle_timeout)
        except OSError:                     # timeout, reset
            return b""

    def _refuse_client(self, sock, first, context):
        """A client outside --allow: the refusal its protocol has, then close."""
        started = time.monotonic()
        socks = first[0] == socks5.VERSION
        answer = (socks5.render_method_choice(socks5.METHOD_NONE_ACCEPTABLE) if socks else
                  http.render_simple_response(403, "your address may not use this proxy"))
        try:
            sock.sendall(answer)
        except OSError:
            pass
        context.finish("SOCKS5" if socks else "HTTP", "-", "-", "-", 403, 0, len(answer), started,
                       "client address not allowed (--allow)")

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

    # -- accept: a lean socket; survive EMFILE instead of gevent's traceback ----------------
    # One accept per wake-up of the listener (nginx's default, multi_accept off), not gevent's
    # loop of up to 100 that runs until accept() fails with EAGAIN: with clients arriving one at
    # a time that failed accept (a system call and a BlockingIOError, ~6k instructions) came with
    # every connection. A backlog of several is still taken one per loop turn (the listener's
    # watcher is level-triggered), between the other ready sockets.
    max_accept = 1

    def do_read(self):
        listener = self.socket              # the real socket (StreamServer unwraps gevent's)
        try:
            fd, address = listener._accept()
            return lean_socket.accepted(fd, listener.family, listener.type, listener.proto), address
        except BlockingIOError:
            return None
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


class _Handlers:
    """BaseServer's spawn: each connection in a plain greenlet (a child of the hub), not
    gevent's Greenlet, and a greenlet whose connection ended waits for the next one (at most
    IDLE_HANDLERS wait). A new greenlet costs a Greenlet object and its bookkeeping (~8k
    instructions) and CPython a 16 KiB frame stack for it (an mmap, a munmap and the page
    faults between); a parked one costs nothing. Nothing joins, kills or links to these; an
    error escaping the front ends (a bug) gets gevent's report (hub.handle_error: a
    traceback), and the greenlet serves the next connection. A parked greenlet is switched to
    by spawn() only: every wait of a finished session has ended (socket_io and gevent clear
    their timers and waiters when a wait ends, and the session's sockets are closed)."""

    def __init__(self):
        self.idle = []

    def spawn(self, function, *args):
        hub = gevent.get_hub()
        idle = self.idle
        handler = idle.pop() if idle else greenlet(self._serve, hub)
        hub.loop.run_callback(handler.switch, function, args)

    def _serve(self, function, args):
        hub = gevent.get_hub()
        idle = self.idle
        while True:
            try:
                function(*args)
            except:                             # noqa: E722 - what gevent's Greenlet reports too
                hub.handle_error(function, *sys.exc_info())
            function = args = None              # nothing of the last connection stays alive
            if len(idle) >= IDLE_HANDLERS:
                return
            idle.append(getcurrent())
            function, args = hub.switch()       # parked until spawn() hands the next connection


def _cut(sock):
    """End a connection another greenlet serves: its blocked recv returns b"" at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

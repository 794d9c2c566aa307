"""The proxy's I/O: a gevent StreamServer, one greenlet per client connection.

Per connection (flow order below):

    ProxyServer.handle   the front door: --max-clients (503 beyond it), first bytes;
                         0x05 -> the SOCKS5 front end (socks5_handler), else HTTP
    _HttpClient          requests on one connection (keep-alive), each:
      _read_request_head recv, feed the RequestReader, retry (400 / 431 on bad input;
                         a stalled or idle client is closed after idle_timeout)
      _exchange          edge_host -> rule -> block (403) | direct (origin) | forward (-f)
        _relay_request   plain HTTP: head + body to the next hop, response head back,
                         body re-framed to the client
        _tunnel          CONNECT: 200, then outbound.relay until both sides are done or idle

Every decision about the exchange (framing, keep-alive, 100-continue, retries, reuse,
which error gets which answer) is exchange.py's; connecting and relaying is outbound.py's;
this file receives, feeds, sends and keeps time. A broken connection ends that
connection only.

Who owns the upstream connection: the exchange that uses it (a local in
_relay_request). When that exchange ends, its `finally` hands the socket back to
_HttpClient._kept (exchange.keep_upstream said so) or closes it; _kept is taken by the
next exchange to the same next hop, and closed when the client connection ends.
"""
import dataclasses
import errno
import logging
import time

import gevent
from gevent import socket
from gevent.server import StreamServer

from ..errors import ConfigError, NextHopError, RemoteProtocolError, TomatoError
from ..netutil import format_address, send_all
from ..rules import Action
from . import exchange, http, socks5
from .auth import proxy_authenticate_header
from .http import Framing
from .outbound import (CONNECT_TIMEOUT_SECONDS, IDLE_TIMEOUT_SECONDS, RECV_BYTES, RELAY_RECV_BYTES,
                       TUNNEL_IDLE_TIMEOUT_SECONDS, Outbound, UpstreamRefused, reason_of,
                       read_response_head, relay)
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


class _SendFailed(Exception):
    """A relay could not write to its destination (which went away); __cause__ says why."""


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
        self.peer = format_address(address)
        self.client = exchange.client_ip(address)
        self.authenticator = server.authenticator
        self.outbound = server.outbound
        self.stats = server.stats
        self.idle_timeout = server.outbound.idle_timeout

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
                    _HttpClient(context, sock, first).serve()
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


class _HttpClient:
    """One HTTP client connection: a sequence of requests (keep-alive) or one tunnel."""

    def __init__(self, context, sock, first_bytes):
        self.context = context
        self.outbound = context.outbound
        self.idle_timeout = context.idle_timeout
        self.client = sock
        self.reader = http.RequestReader()
        self.reader.feed(first_bytes)
        self._kept = None                   # (next hop, socket) kept alive between exchanges
        self.up = 0                         # bytes of the current exchange, for its log line
        self.down = 0

    def serve(self):
        try:
            while True:
                head = self._read_request_head()
                if head is None or not self._exchange(head):
                    return
        finally:
            if self._kept is not None:
                self._kept[1].close()

    # -- reading the request ---------------------------------------------------------
    def _read_request_head(self):
        """The next request head, or None when the connection is to be closed.

        idle_timeout bounds both the wait for a request and, from its first byte, the
        time to receive all of its head, so a client trickling bytes is dropped too.
        """
        deadline = None
        client = self.client
        try:
            while True:
                try:
                    head = self.reader.next_head()
                except TomatoError as e:
                    self.up = self.down = 0
                    self._answer_error("-", "-", "-", "-", e, time.monotonic())
                    return None
                if head is not None:
                    return head
                if self.reader.started:
                    if deadline is None:
                        deadline = time.monotonic() + self.idle_timeout
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout()
                    client.settimeout(remaining)
                data = client.recv(RECV_BYTES)
                if not data:
                    return None
                self.reader.feed(data)
        except socket.timeout:
            if self.reader.started:
                log.debug("%s: closing, request head incomplete after %.0fs",
                          self.context.peer, self.idle_timeout)
            return None
        except OSError:
            return None
        finally:
            if deadline is not None:
                client.settimeout(self.idle_timeout)

    # -- one request / response ----------------------------------------------------
    def _exchange(self, head):
        """Serve one request; True if the client connection stays open for another."""
        started = time.monotonic()
        self.up = self.down = 0
        host, direction = head.host, "-"
        if self.context.authenticator is not None and not self.context.authenticator.check_basic(
                head.proxy_authorization):
            keep = exchange.keep_client_after_block(head)
            self._send_client(http.render_simple_response(
                407, "proxy authentication required", keep_alive=keep,
                extra_headers=(proxy_authenticate_header(),)))
            self._finish(head.method, host, head.port, direction, 407, started,
                         "no or wrong Proxy-Authorization")
            return keep
        try:
            host = exchange.edge_host(head.host)
            action = self.outbound.decide(host)
            direction = action.value
            if action is Action.BLOCK:
                keep = exchange.keep_client_after_block(head)
                self._send_client(http.render_simple_response(
                    403, "blocked by proxy rule: %s" % host, keep_alive=keep))
                self._finish(head.method, host, head.port, direction, 403, started)
                return keep
            authority = exchange.authority_for(host, head.port, head.authority)
            request = head
            if host != head.host or authority != head.authority:
                request = dataclasses.replace(head, host=host, authority=authority)
            if head.is_connect:
                status, keep = self._tunnel(request, action), False
            else:
                status, keep = self._relay_request(request, action)
        except TomatoError as e:
            self._answer_error(head.method, host, head.port, direction, e, started)
            return False
        self._finish(head.method, host, head.port, direction, status, started)
        return keep

    def _answer_error(self, method, host, port, direction, error, started):
        status, text = exchange.rejection(error)
        self._send_client(http.render_simple_response(status, text))
        self._finish(method, host, port, direction, status, started, text)

    def _finish(self, method, host, port, direction, status, started, reason=None):
        self.context.finish(method, host, port, direction, status, self.up, self.down, started, reason)

    def _send_client(self, data):
        try:
            send_all(self.client, data)
            self.down += len(data)
            return True
        except OSError:
            return False

    def _client_gone(self):
        """True if the client has closed its side; never blocks."""
        return _peek(self.client, self.idle_timeout) == b""

    # -- next hop --------------------------------------------------------------------
    def _take_upstream(self, next_hop, forward):
        """(socket, reused): the kept connection if it goes to next_hop, else a new one.
        The caller owns the socket from here on."""
        kept, self._kept = self._kept, None
        if kept is not None:
            # A kept connection the far end closed meanwhile (or that has bytes nobody
            # asked for) is not worth a request: most stale connections never meet one.
            if kept[0] == next_hop and _peek(kept[1], self.idle_timeout) is None:
                return kept[1], True
            kept[1].close()
        if forward:
            return self.outbound.connect_upstream(), False
        return self.outbound.connect_direct(next_hop[0], next_hop[1], self.context.client), False

    # -- plain HTTP ------------------------------------------------------------------
    def _relay_request(self, head, action):
        """Send head + body to the next hop, relay the answer; returns (status, keep client)."""
        forward = action is Action.FORWARD
        next_hop = self.outbound.upstream if forward else (head.host, head.port)
        out_head = http.render_request_head(head, absolute_form=forward)
        continue_sent = False
        while True:
            upstream, reused = self._take_upstream(next_hop, forward)
            keep_upstream = False
            try:
                if exchange.answer_continue(head) and not continue_sent:
                    continue_sent = True
                    self._send_client(http.CONTINUE)
                try:
                    body_left = self._send_request_head(head, out_head, upstream)
                except OSError as e:
                    if exchange.may_retry(head, reused):
                        continue
                    raise _upstream_failed(e) from None
                if head.framing is not Framing.NONE:
                    self._relay_request_body(head, upstream, body_left)
                buf = bytearray()
                deadline = time.monotonic() + self.idle_timeout     # one for the whole answer head
                response = read_response_head(upstream, head.method, buf, deadline, stale_ok=reused)
                if response is None:
                    if exchange.may_retry(head, reused):
                        continue
                    raise _upstream_failed(None)
                while response.status < 200:
                    informational = exchange.informational(head, response)
                    if informational is not None:
                        if not self._send_client(informational):
                            return response.status, False
                    elif self._client_gone():
                        return response.status, False
                    response = read_response_head(upstream, head.method, buf, deadline)
                upstream.settimeout(self.idle_timeout)
                status, keep_client, keep_upstream = self._relay_response(head, response, upstream, buf)
                return status, keep_client
            finally:
                if keep_upstream:
                    self._kept = (next_hop, upstream)
                else:
                    upstream.close()

    def _send_request_head(self, head, out_head, upstream):
        """The head, with as much of a Content-Length body as already arrived; returns
        how many body bytes are still to come."""
        pending = self.reader.buffer
        if head.framing is Framing.LENGTH and pending:
            first = min(len(pending), head.content_length)
            send_all(upstream, out_head + pending[:first])
            del pending[:first]
            self.up += len(out_head) + first
            return head.content_length - first
        send_all(upstream, out_head)
        self.up += len(out_head)
        return head.content_length

    def _relay_request_body(self, head, upstream, body_left):
        try:
            if head.framing is Framing.LENGTH:
                self.up += _relay_length(self.client, None, body_left, upstream)
            else:
                self.up += _relay_chunked(self.client, self.reader.buffer, upstream, encode=True,
                                          status_hint=400)
        except _SendFailed as e:
            raise NextHopError("upstream connection failed while sending the request body: %s"
                               % reason_of(e.__cause__), 502) from None
        except socket.timeout:
            raise RemoteProtocolError("request body incomplete after %.0fs" % self.idle_timeout,
                                      408) from None
        except (OSError, EOFError) as e:
            raise RemoteProtocolError("request body incomplete: %s" % reason_of(e), 400) from None

    def _relay_response(self, head, response, upstream, buf):
        """(status, keep client, keep upstream)."""
        out = exchange.client_framing(head, response)
        keep = exchange.keep_client(head, out)
        response_head = http.render_response_head(response, out, keep, head.version)
        if out is Framing.NONE or (out is Framing.LENGTH and len(buf) >= response.content_length):
            # The whole answer is here already (small bodies): one send.
            body = bytes(buf[:response.content_length]) if out is Framing.LENGTH else b""
            del buf[:len(body)]
            if not self._send_client(response_head + body):
                return response.status, False, False
        else:
            if not self._send_client(response_head):
                return response.status, False, False
            try:
                self.down += _relay_response_body(response, out, upstream, buf, self.client)
            except _SendFailed as e:
                log.debug("%s: client went away during the answer: %s", self.context.peer,
                          reason_of(e.__cause__))
                return response.status, False, False
            except (OSError, EOFError, RemoteProtocolError) as e:
                # The head is out: all we can do is cut the connection so the client sees
                # an incomplete body rather than a wrong one.
                log.info("%s: %s %s answer cut short by upstream: %s", self.context.peer,
                         head.method, format_address((head.host, head.port)), reason_of(e))
                return response.status, False, False
        return response.status, keep, exchange.keep_upstream(response, True, bool(buf))

    # -- CONNECT -----------------------------------------------------------------------
    def _tunnel(self, head, action):
        if action is Action.FORWARD:
            request = http.render_request_head(head, absolute_form=True)
            try:
                upstream, early = self.outbound.tunnel_via_upstream(head.host, head.port, request)
            except UpstreamRefused as refusal:
                try:
                    return self._relay_refusal(head, refusal)
                finally:
                    refusal.sock.close()
            self.up += len(request)
        else:
            upstream = self.outbound.connect_direct(head.host, head.port, self.context.client)
            early = b""
        try:
            if not self._send_client(http.render_connect_established() + early):
                return 200
            pending = self.reader.buffer
            if pending:                     # e.g. a TLS ClientHello sent right behind CONNECT
                send_all(upstream, pending)
                self.up += len(pending)
                pending.clear()
            up, down = self.context.relay(self.client, upstream)
            self.up += up
            self.down += down
            return 200
        except OSError:
            return 200
        finally:
            upstream.close()

    def _relay_refusal(self, head, refusal):
        """The -f proxy's non-2xx answer to CONNECT goes to the client as it is."""
        response = refusal.response
        out = exchange.client_framing(head, response)
        self._send_client(http.render_response_head(response, out, False, head.version))
        try:
            self.down += _relay_response_body(response, out, refusal.sock, refusal.buffer, self.client)
        except (_SendFailed, OSError, EOFError, RemoteProtocolError):
            pass
        return response.status


def _peek(sock, timeout):
    """Without blocking: None if nothing is waiting in sock, b"" if its peer closed (or
    the connection failed), else the first byte waiting. Leaves sock at `timeout`."""
    sock.settimeout(0.0)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(timeout)


def _upstream_failed(error):
    if error is None:
        return NextHopError("upstream closed the connection without answering", 502)
    return NextHopError("upstream connection failed: %s" % reason_of(error), 502)


# -- body relays: src socket (+ bytes already read) -> dst socket ----------------------
# Errors reading src propagate as OSError / EOFError; errors writing dst as _SendFailed,
# so the caller knows which side went away. Every recv is at most RELAY_RECV_BYTES,
# allocated per call: a slow body holds no buffer while it waits.
def _send(dst, data):
    try:
        send_all(dst, data)
    except OSError as e:
        raise _SendFailed() from e


def _relay_response_body(response, out, upstream, buf, client):
    if response.framing is Framing.LENGTH:
        return _relay_length(upstream, buf, response.content_length, client)
    if response.framing is Framing.CHUNKED:
        return _relay_chunked(upstream, buf, client, encode=out is Framing.CHUNKED, status_hint=502)
    if response.framing is Framing.UNTIL_CLOSE:
        return _relay_until_close(upstream, buf, client, encode=out is Framing.CHUNKED)
    return 0


def _relay_length(src, pending, length, dst):
    """Copy exactly `length` body bytes; pending (bytearray or None) is consumed first and
    keeps whatever lies beyond the body. Raises EOFError if src closes early."""
    sent = 0
    if pending:
        take = min(len(pending), length)
        _send(dst, pending[:take])
        del pending[:take]
        sent = take
    left = length - sent
    recv = src.recv
    while left:
        data = recv(min(left, RELAY_RECV_BYTES))
        if not data:
            raise EOFError("connection closed %d bytes before the end of the body" % left)
        _send(dst, data)
        left -= len(data)
    return length


def _relay_chunked(src, pending, dst, encode, status_hint):
    """Copy a chunked body, re-encoded as chunks (encode) or as raw payload; bytes
    beyond its end are left in pending. Returns bytes sent."""
    decoder = http.ChunkedDecoder(status_hint)
    data = bytes(pending)
    pending.clear()
    sent = 0
    while True:
        if data:
            pieces = decoder.feed(data)
            if pieces:
                out = b"".join(http.encode_chunk(p) for p in pieces) if encode else b"".join(pieces)
            else:
                out = b""
            del pieces
            if decoder.done:
                if encode:
                    out += http.LAST_CHUNK
                pending += decoder.unused
            if out:
                _send(dst, out)
                sent += len(out)
            if decoder.done:
                return sent
        data = src.recv(RELAY_RECV_BYTES)
        if not data:
            raise EOFError("connection closed inside a chunked body")


def _relay_until_close(src, pending, dst, encode):
    """Copy until src closes (a response without length); chunk-encode it if asked."""
    sent = 0
    if pending:
        data = bytes(pending)
        pending.clear()
        out = http.encode_chunk(data) if encode else data
        _send(dst, out)
        sent += len(out)
    while True:
        data = src.recv(RELAY_RECV_BYTES)
        if not data:
            break
        out = http.encode_chunk(data) if encode else data
        _send(dst, out)
        sent += len(out)
    if encode:
        _send(dst, http.LAST_CHUNK)
        sent += len(http.LAST_CHUNK)
    return sent

"""The proxy's I/O: a gevent StreamServer, one greenlet per client connection.

Per connection (flow order of the methods below):

    _read_request_head   recv, feed parse_request_head, retry (400 / 431 on bad input;
                         an idle or stalled client is closed after idle_timeout)
    _exchange            rule lookup -> block (403) | direct (origin) | forward (-f proxy)
      _relay_request     plain HTTP: head (origin- or absolute-form) + body to the next hop,
                         response head back, body re-framed to the client; keep-alive both
                         ways (the upstream connection is kept while the client asks for
                         the same next hop)
      _tunnel            CONNECT: 200, then _pipe both ways until both sides are done

Every failure has an answer: unknown name / refused -> 502 with the reason, connect
timeout / silent upstream -> 504, bad upstream response -> 502. A broken connection
ends that connection only. HTTP parsing and rendering live in http.py (pure).
"""
import errno
import logging
import socket
import time

import gevent
from gevent.server import StreamServer

from ..errors import ConfigError, RemoteProtocolError
from ..netutil import format_address
from ..rules import Action
from . import http
from .http import Framing
from .resolver import ResolveError, Resolver

log = logging.getLogger(__name__)

# -- implementation constants ----------------------------------------------------
RECV_BYTES = 64 * 1024              # one recv while reading heads
RELAY_BUFFER_BYTES = 256 * 1024     # one recv_into while relaying bodies and tunnels
IDLE_TIMEOUT_SECONDS = 60.0         # client between/inside requests; upstream silence
CONNECT_TIMEOUT_SECONDS = 10.0      # per address tried
LISTEN_BACKLOG = 1024
ACCEPT_BACKOFF_SECONDS = 0.5        # pause accepting after EMFILE & co.
ACCEPT_WARN_INTERVAL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 2.0          # running connections get this long on SIGTERM

_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_TRANSIENT_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR)


class _Reply(Exception):
    """Answer the client with this status and text, then close its connection."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _reason(error):
    """Short text for an OSError (its strerror) or anything else."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class _SendFailed(Exception):
    """A relay could not write to its destination (which went away); __cause__ says why."""


def make_listener(host, port):
    """A listening TCP socket. host "" = all interfaces (dual-stack when IPv6 is there)."""
    candidates = []
    if host == "":
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    else:
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise ConfigError("cannot listen on %s: %s" % (format_address((host, port)), e.strerror)) from None
        candidates = [(info[0], info[4][0]) for info in infos]
    error = None
    for family, address in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((address, port))
            sock.listen(LISTEN_BACKLOG)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise ConfigError("cannot listen on %s: %s" % (format_address((host or "*", port)), error.strerror or error))


def _pipe(src, dst, counter, index):
    """Copy src -> dst until EOF (then half-close dst) or an error (then shut both)."""
    buf = bytearray(RELAY_BUFFER_BYTES)
    view = memoryview(buf)
    recv_into, sendall = src.recv_into, dst.sendall
    total = 0
    try:
        while True:
            n = recv_into(buf)
            if not n:
                break
            sendall(view[:n])
            total += n
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    except OSError:
        # Reset or closed: the whole tunnel is over; wake the other direction.
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        counter[index] = total


class ProxyServer(StreamServer):
    """StreamServer whose handler is the rule-based proxy.

    rules: an object with lookup(host) -> Action | None (rules.RuleSet); replace it with
    set_rules() at any time (SIGHUP). default_action applies when no rule matches.
    upstream: (host, port) of the -f proxy, or None (forward then acts as direct).
    """

    def __init__(self, listener, rules, default_action=Action.DIRECT, upstream=None,
                 resolver=None, idle_timeout=IDLE_TIMEOUT_SECONDS,
                 connect_timeout=CONNECT_TIMEOUT_SECONDS):
        super().__init__(listener)
        self.rules = rules
        self.default_action = default_action
        self.upstream = upstream
        self.resolver = resolver or Resolver()
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.stop_timeout = STOP_TIMEOUT_SECONDS
        self._last_accept_warning = None

    def set_rules(self, rules):
        self.rules = rules

    def decide(self, host):
        """The Action for host: the rule's, else the default; forward without -f is direct."""
        try:
            action = self.rules.lookup(host)
        except ValueError:
            action = None
        if action is None:
            action = self.default_action
        if action is Action.FORWARD and self.upstream is None:
            action = Action.DIRECT
        return action

    def handle(self, sock, address):
        _ClientConnection(self, sock, address).serve()

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


class _ClientConnection:
    """One client connection: a sequence of requests (keep-alive) or one tunnel."""

    def __init__(self, server, sock, address):
        self.server = server
        self.client = sock
        self.peer = format_address(address)
        self.pending = bytearray()          # bytes from the client not yet used
        self.upstream = None                # kept-alive connection to the last next hop
        self.upstream_key = None            # (host, port) of that next hop
        self.sent_up = 0                    # per exchange, for the log line
        self.sent_down = 0

    def serve(self):
        try:
            self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.client.settimeout(self.server.idle_timeout)
        try:
            while True:
                head = self._read_request_head()
                if head is None or not self._exchange(head):
                    return
        finally:
            self._drop_upstream()

    # -- reading the request ---------------------------------------------------------
    def _read_request_head(self):
        """The next request head, or None when the connection is to be closed.

        idle_timeout bounds both the wait for a request and the time to receive all of its
        head once it started, so a client trickling a byte now and then is dropped too.
        """
        searched = 0
        started = time.monotonic()
        deadline = None
        try:
            while True:
                if self.pending:
                    try:
                        head = http.parse_request_head(self.pending, searched)
                    except RemoteProtocolError as e:
                        self.sent_up = self.sent_down = 0
                        self._send_client(http.render_simple_response(e.status_hint, str(e)))
                        self._log_exchange("-", "-", "-", "-", e.status_hint, started, str(e))
                        return None
                    if head is not None:
                        del self.pending[:head.length]
                        return head
                    searched = len(self.pending)
                    if deadline is None:
                        deadline = time.monotonic() + self.server.idle_timeout
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout()
                    self.client.settimeout(remaining)
                try:
                    data = self.client.recv(RECV_BYTES)
                except socket.timeout:
                    if self.pending:
                        log.debug("%s: closing, request head incomplete after %.0fs",
                                  self.peer, self.server.idle_timeout)
                    return None
                except OSError:
                    return None
                if not data:
                    return None
                self.pending += data
        except socket.timeout:
            log.debug("%s: closing, request head incomplete after %.0fs", self.peer, self.server.idle_timeout)
            return None
        finally:
            if deadline is not None:
                self.client.settimeout(self.server.idle_timeout)

    # -- one request / response ----------------------------------------------------
    def _exchange(self, head):
        """Serve one request; True if the client connection stays open for another."""
        started = time.monotonic()
        self.sent_up = self.sent_down = 0
        action = self.server.decide(head.host)
        if action is Action.BLOCK:
            # A body we will not read makes the connection unusable afterwards.
            keep = head.keep_alive and head.framing is Framing.NONE
            self._send_client(http.render_simple_response(
                403, "blocked by proxy rule: %s" % head.host, keep_alive=keep))
            self._log_exchange(head.method, head.host, head.port, "block", 403, started)
            return keep
        if action is Action.FORWARD:
            next_hop, direction = self.server.upstream, "forward"
        else:
            next_hop, direction = (head.host, head.port), "direct"
        try:
            if head.is_connect:
                status = self._tunnel(head, next_hop, direction == "forward")
                keep = False
            else:
                status, keep = self._relay_request(head, next_hop, direction == "forward")
        except _Reply as reply:
            self._send_client(http.render_simple_response(reply.status, reply.detail))
            self._drop_upstream()
            self._log_exchange(head.method, head.host, head.port, direction, reply.status,
                               started, reply.detail)
            return False
        self._log_exchange(head.method, head.host, head.port, direction, status, started)
        return keep

    def _log_exchange(self, method, host, port, direction, status, started, reason=None):
        # Errors the proxy answered itself are visible without -v; the rest is -v detail.
        level = logging.INFO if reason is not None else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        log.log(level, "%s %s %s:%s %s %d up=%d down=%d %.1fms%s", self.peer, method, host, port,
                direction, status, self.sent_up, self.sent_down,
                (time.monotonic() - started) * 1000.0, (" (%s)" % reason) if reason else "")

    def _send_client(self, data):
        try:
            self.client.sendall(data)
            self.sent_down += len(data)
            return True
        except OSError:
            return False

    # -- next hop --------------------------------------------------------------------
    def _connect(self, host, port, is_upstream_proxy):
        """A connected socket to host:port, trying every address; _Reply(502/504) if none."""
        what = ("upstream proxy " if is_upstream_proxy else "") + format_address((host, port))
        try:
            addresses = self.server.resolver.resolve(host)
        except ResolveError as e:
            raise _Reply(502, str(e)) from None
        last_error = None
        for address in addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as e:            # EMFILE: answer this client, keep serving
                last_error = e
                continue
            sock.settimeout(self.server.connect_timeout)
            try:
                sock.connect((str(address), port))
            except socket.timeout:
                sock.close()
                continue
            except OSError as e:
                sock.close()
                last_error = e
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.server.idle_timeout)
            return sock
        if last_error is not None:
            raise _Reply(502, "cannot connect to %s: %s" % (what, last_error.strerror or last_error))
        raise _Reply(504, "timed out connecting to %s" % what)

    def _drop_upstream(self):
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = self.upstream_key = None

    def _read_response_head(self, upstream, method, buf):
        """Next response head from upstream into buf; _Reply(502/504) on failure.

        Returns None if the connection closed before sending a single byte (a stale
        kept-alive connection: the caller may retry on a fresh one).
        """
        searched = 0
        while True:
            try:
                data = upstream.recv(RECV_BYTES)
            except socket.timeout:
                raise _Reply(504, "no answer from upstream within %.0fs" % self.server.idle_timeout) from None
            except OSError as e:
                if not buf:
                    return None
                raise _Reply(502, "upstream connection failed: %s" % (e.strerror or e)) from None
            if not data:
                if not buf:
                    return None
                raise _Reply(502, "upstream closed the connection in the middle of its answer")
            buf += data
            try:
                resp = http.parse_response_head(buf, method, searched)
            except RemoteProtocolError as e:
                raise _Reply(502, "bad answer from upstream: %s" % e) from None
            if resp is not None:
                del buf[:resp.length]
                return resp
            searched = len(buf)

    # -- plain HTTP ------------------------------------------------------------------
    def _relay_request(self, head, next_hop, absolute_form):
        """Send head + body to next_hop, relay the answer; returns (status, keep client)."""
        out_head = http.render_request_head(head, absolute_form)
        has_body = head.framing is not Framing.NONE
        answered_continue = False
        for attempt in (0, 1):
            reused = self.upstream is not None and self.upstream_key == next_hop
            if not reused:
                self._drop_upstream()
                self.upstream = self._connect(next_hop[0], next_hop[1], absolute_form)
                self.upstream_key = next_hop
            upstream = self.upstream
            if head.expect_continue and has_body and not answered_continue and head.version >= (1, 1):
                # We take the expectation on ourselves (RFC 9110 10.1.1 lets a proxy answer
                # 100 itself), so the client's body follows without an upstream round trip.
                answered_continue = True
                self._send_client(http.CONTINUE)
            try:
                if head.framing is Framing.LENGTH and self.pending:
                    first = min(len(self.pending), head.content_length)
                    upstream.sendall(out_head + self.pending[:first])
                    del self.pending[:first]
                    self.sent_up += len(out_head) + first
                    body_left = head.content_length - first
                else:
                    upstream.sendall(out_head)
                    self.sent_up += len(out_head)
                    body_left = head.content_length
            except OSError as e:
                if reused and attempt == 0:
                    self._drop_upstream()
                    continue
                raise _Reply(502, "upstream connection failed: %s" % (e.strerror or e)) from None
            if has_body:
                self._relay_request_body(head, upstream, body_left)
            buf = bytearray()
            resp = self._read_response_head(upstream, head.method, buf)
            if resp is None:
                if reused and attempt == 0 and not has_body:
                    self._drop_upstream()
                    continue
                raise _Reply(502, "upstream closed the connection without answering")
            break
        while resp.status < 200:
            if resp.status == 101:
                raise _Reply(502, "upstream switched protocols, which the proxy never asks for")
            # 100 is ours to send (see above); other 1xx go to HTTP/1.1 clients only.
            if resp.status != 100 and head.version >= (1, 1):
                self._send_client(http.render_informational(resp))
            resp = self._read_response_head(upstream, head.method, buf)
            if resp is None:
                raise _Reply(502, "upstream closed the connection without answering")
        return self._relay_response(head, resp, upstream, buf)

    def _relay_request_body(self, head, upstream, body_left):
        try:
            if head.framing is Framing.LENGTH:
                self.sent_up += _relay_length(self.client, None, body_left, upstream)
            else:
                self.sent_up += _relay_chunked(self.client, self.pending, upstream, encode=True,
                                               status_hint=400)
        except _SendFailed as e:
            raise _Reply(502, "upstream connection failed while sending the request body: %s"
                         % _reason(e.__cause__)) from None
        except RemoteProtocolError as e:
            raise _Reply(e.status_hint, str(e)) from None
        except socket.timeout:
            raise _Reply(408, "request body incomplete after %.0fs" % self.server.idle_timeout) from None
        except (OSError, EOFError) as e:
            raise _Reply(400, "request body incomplete: %s" % _reason(e)) from None

    def _relay_response(self, head, resp, upstream, buf):
        if resp.framing is Framing.NONE or resp.framing is Framing.LENGTH:
            out = resp.framing
        elif head.version >= (1, 1):
            out = Framing.CHUNKED           # re-framed so the client connection survives
        else:
            out = Framing.UNTIL_CLOSE       # HTTP/1.0 knows no chunks
        keep = head.keep_alive and out is not Framing.UNTIL_CLOSE
        response_head = http.render_response_head(resp, out, keep, head.version)
        if out is Framing.NONE or (out is Framing.LENGTH and len(buf) >= resp.content_length):
            # The whole answer is here already (small bodies): one send.
            body = bytes(buf[:resp.content_length]) if out is Framing.LENGTH else b""
            del buf[:len(body)]
            if not self._send_client(response_head + body):
                self._drop_upstream()
                return resp.status, False
        else:
            if not self._send_client(response_head):
                self._drop_upstream()
                return resp.status, False
            try:
                self.sent_down += self._relay_response_body(resp, out, upstream, buf)
            except _SendFailed as e:
                log.debug("%s: client went away during the answer: %s", self.peer, _reason(e.__cause__))
                self._drop_upstream()
                return resp.status, False
            except (OSError, EOFError, RemoteProtocolError) as e:
                # The head is out: all we can do is cut the connection so the client sees
                # an incomplete body rather than a wrong one.
                log.info("%s: %s %s answer cut short by upstream: %s", self.peer, head.method,
                         format_address((head.host, head.port)), _reason(e))
                self._drop_upstream()
                return resp.status, False
        if not resp.keep_alive or buf:
            self._drop_upstream()
        return resp.status, keep

    def _relay_response_body(self, resp, out, upstream, buf):
        if resp.framing is Framing.LENGTH:
            return _relay_length(upstream, buf, resp.content_length, self.client)
        if resp.framing is Framing.CHUNKED:
            return _relay_chunked(upstream, buf, self.client, encode=out is Framing.CHUNKED, status_hint=502)
        if resp.framing is Framing.UNTIL_CLOSE:
            return _relay_until_close(upstream, buf, self.client, encode=out is Framing.CHUNKED)
        return 0

    # -- CONNECT -----------------------------------------------------------------------
    def _tunnel(self, head, next_hop, via_upstream):
        self._drop_upstream()
        upstream = self._connect(next_hop[0], next_hop[1], via_upstream)
        try:
            if via_upstream:
                status = self._connect_through_upstream(head, upstream)
                if status != 200:
                    return status
            else:
                status = 200
                if not self._send_client(http.render_connect_established()):
                    return status
            if self.pending:                # e.g. a TLS ClientHello sent right behind CONNECT
                upstream.sendall(self.pending)
                self.sent_up += len(self.pending)
                self.pending.clear()
            self.client.settimeout(None)    # tunnels may idle (websockets); endpoints decide
            upstream.settimeout(None)
            counter = [0, 0]
            gevent.joinall([gevent.spawn(_pipe, self.client, upstream, counter, 0),
                            gevent.spawn(_pipe, upstream, self.client, counter, 1)])
            self.sent_up += counter[0]
            self.sent_down += counter[1]
            return status
        except OSError:
            return 200
        finally:
            upstream.close()

    def _connect_through_upstream(self, head, upstream):
        """CONNECT via the -f proxy; its refusal goes to the client as is. Returns the status."""
        request = http.render_request_head(head, absolute_form=True)
        try:
            upstream.sendall(request)
        except OSError as e:
            raise _Reply(502, "upstream connection failed: %s" % (e.strerror or e)) from None
        self.sent_up += len(request)
        buf = bytearray()
        resp = self._read_response_head(upstream, "CONNECT", buf)
        if resp is None:
            raise _Reply(502, "upstream proxy closed the connection without answering")
        if 200 <= resp.status < 300:
            self._send_client(http.render_connect_established())
            if buf:                         # the far end spoke first
                self._send_client(bytes(buf))
            return 200
        if resp.framing is not Framing.NONE and resp.framing is not Framing.LENGTH:
            out = Framing.CHUNKED if head.version >= (1, 1) else Framing.UNTIL_CLOSE
        else:
            out = resp.framing
        self._send_client(http.render_response_head(resp, out, False, head.version))
        try:
            self.sent_down += self._relay_response_body(resp, out, upstream, buf)
        except (_SendFailed, OSError, EOFError, RemoteProtocolError):
            pass
        return resp.status


# -- body relays: src socket (+ bytes already read) -> dst socket ----------------------
# Errors reading src propagate as OSError / EOFError; errors writing dst as _SendFailed,
# so the caller knows which side went away.
def _send(dst, data):
    try:
        dst.sendall(data)
    except OSError as e:
        raise _SendFailed() from e


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
    if left <= 0:
        return sent
    buf = bytearray(min(left, RELAY_BUFFER_BYTES))
    view = memoryview(buf)
    recv_into, sendall = src.recv_into, dst.sendall
    size = len(buf)
    while left:
        n = recv_into(buf, left if left < size else size)
        if not n:
            raise EOFError("connection closed %d bytes before the end of the body" % left)
        try:
            sendall(view[:n])
        except OSError as e:
            raise _SendFailed() from e
        left -= n
    return length


def _relay_chunked(src, pending, dst, encode, status_hint):
    """Copy a chunked body, re-encoded as chunks (encode) or as raw payload; bytes
    beyond its end are left in pending. Returns bytes sent."""
    decoder = http.ChunkedDecoder(status_hint)
    data = bytes(pending)
    pending.clear()
    buf = view = None
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
        if buf is None:
            buf = bytearray(RELAY_BUFFER_BYTES)
            view = memoryview(buf)
        n = src.recv_into(buf)
        if not n:
            raise EOFError("connection closed inside a chunked body")
        data = view[:n]


def _relay_until_close(src, pending, dst, encode):
    """Copy until src closes (a response without length); chunk-encode it if asked."""
    sent = 0
    if pending:
        data = bytes(pending)
        pending.clear()
        out = http.encode_chunk(data) if encode else data
        _send(dst, out)
        sent += len(out)
    buf = bytearray(RELAY_BUFFER_BYTES)
    view = memoryview(buf)
    while True:
        n = src.recv_into(buf)
        if not n:
            break
        out = http.encode_chunk(view[:n]) if encode else view[:n]
        _send(dst, out)
        sent += len(out)
    if encode:
        _send(dst, http.LAST_CHUNK)
        sent += len(http.LAST_CHUNK)
    return sent

"""The HTTP front end: one client connection whose first byte was not 0x05 (server.py's front
door hands it over), a sequence of requests (keep-alive) or one CONNECT tunnel. gevent glue:

    HttpSession.serve       requests on one connection, each:
      _read_request_head    recv, feed the RequestReader, retry (400 / 431 on bad input;
                            a stalled or idle client is closed after idle_timeout)
      _exchange             auth (407) -> Outbound.route (canonical host, rule, cached) -> block (403) | direct | forward (-f)
        _relay_request      plain HTTP: the order is an ExchangeState's (exchange_state.py:
                            retry, 1xx, 100-continue); this file sends head + body to the next
                            hop, reads answer heads until the final one, relays the body
                            (bodies.py) re-framed to the client
        _tunnel             CONNECT: 200, then outbound.relay until both sides are done or idle

Every decision about the exchange is exchange.py's (or exchange_state.py's, for its order);
connecting and relaying tunnels is outbound.py's; this file receives, feeds, sends and keeps
time. A broken connection ends that connection only.

Who owns the upstream connection: the exchange that uses it (a local in _relay_request). When
that exchange ends, its `finally` hands the socket back to HttpSession._kept (the
ExchangeState said so) or closes it; _kept is taken by the next exchange to the same next
hop, and closed when the client connection ends.
"""
import logging
import time

import gevent
from gevent import socket

from ..errors import NextHopError, RemoteProtocolError, TomatoError
from ..http1 import http
from ..http1.http import Framing
from ..netutil import format_address
from ..rules import Action
from . import exchange, socket_io
from .auth import claimed_user, proxy_authenticate_header
from .bodies import SendFailed, relay_chunked, relay_length, relay_response_body
from .exchange_state import INTERIM, RETRY, ExchangeState
from .loop_guard import carries_token
from .outbound import RECV_BYTES, UpstreamRefused, read_response_head, reason_of
from .socket_io import send_all

log = logging.getLogger(__name__)

_DIRECTION = {action: action.value for action in Action}     # for the log line and the stats
# Python 3.11 looks Enum members up through EnumType.__getattr__ (~900 instructions each):
# the per-request code compares with these.
_BLOCK, _FORWARD = Action.BLOCK, Action.FORWARD


def handle(sock, first_bytes, context):
    """The HTTP front end for ProxyServer: one client (server.ClientContext)."""
    HttpSession(context, sock, first_bytes).serve()


class HttpSession:
    """One HTTP client connection: a sequence of requests (keep-alive) or one tunnel."""

    def __init__(self, context, sock, first_bytes):
        self.context = context
        self.outbound = context.outbound
        self.idle_timeout = context.idle_timeout
        self.client = sock
        self.reader = http.RequestReader()
        self.reader.feed(first_bytes)
        self._kept = None                   # (next hop, socket) kept alive between exchanges
        # The last request's (host, port, authority as written) and the Host it sent: a
        # client's next request usually names the same authority (exchange.authority_for).
        self._authority_of = self._authority = None
        self._answer_lines = {}             # the answers' field lines (fields.scan's table)
        self.started = None                 # time.monotonic() at the current exchange's start
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
        reader = self.reader
        client = self.client
        try:
            # Bytes already here: the first recv, or what a client pipelined. An empty buffer
            # means no blank lines are pending either (a head was just taken), so nothing started.
            if reader.buffer:
                head = reader.next_head()
                if head is not None:
                    return head
                deadline = time.monotonic() + self.idle_timeout
            else:
                deadline = None
            seconds = self.idle_timeout
            while True:
                if deadline is not None:
                    seconds = deadline - time.monotonic()
                    if seconds <= 0:
                        raise socket.timeout()
                # deadline None: a keep-alive wait, the answer just went out (recv_later)
                data = (socket_io.recv_later if deadline is None else socket_io.recv)(
                    client, RECV_BYTES, seconds)
                if not data:
                    return None
                head = reader.receive(data)
                if head is not None:
                    return head
                if deadline is None:
                    deadline = time.monotonic() + self.idle_timeout
        except TomatoError as e:
            self.up = self.down = 0
            self._answer_error("-", "-", "-", "-", e, time.monotonic())
            return None
        except socket.timeout:
            if reader.started:
                log.debug("%s: closing, request head incomplete after %.0fs",
                          self.context.peer, self.idle_timeout)
            return None
        except OSError:
            return None

    # -- one request / response ----------------------------------------------------
    def _exchange(self, head):
        """Serve one request; True if the client connection stays open for another."""
        self.started = started = time.monotonic()
        self.up = self.down = 0
        host, direction = head.host, "-"
        # find, not `in`: bytes.__contains__ first tries its argument as an int (a TypeError
        # made and dropped, ~1.8k instructions per request)
        if head.fields.find(self.outbound.via) >= 0 and carries_token(head.fields, self.outbound.via):
            return self._refuse_loop(head, started)
        context = self.context
        authenticator = context.authenticator
        if authenticator is not None:
            throttle = context.throttle
            penalised = throttle.clients and context.client in throttle.clients   # failed logins before
            if penalised and not self._await_turn(head):
                return False
            user = authenticator.basic_user(head.proxy_authorization)
            if user is None:
                return self._refuse_login(head, started)
            context.user = user
            if penalised:
                throttle.succeeded(context.client, head.proxy_authorization)
            if context.pending:
                context.admit()
        try:
            host, action = self.outbound.route(head.host)
            direction = _DIRECTION[action]
            if action is _BLOCK:
                keep = exchange.keep_client_after_block(head)
                self._send_client(http.render_simple_response(
                    403, "blocked by proxy rule: %s" % host, keep_alive=keep))
                self._finish(head.method, host, head.port, direction, 403, started, None, head.path)
                return keep
            key = (host, head.port, head.authority)
            if key == self._authority_of:
                authority = self._authority
            else:
                authority = self._authority = exchange.authority_for(host, head.port, head.authority)
                self._authority_of = key
            request = head
            if host != head.host or authority != head.authority:
                request = head._replace(host=host, authority=authority)
            if head.method == "CONNECT":
                status, keep = self._tunnel(request, action), False
            else:
                status, keep = self._relay_request(request, action)
        except TomatoError as e:
            self._answer_error(head.method, host, head.port, direction, e, started, head.path)
            return False
        self.context.finish(head.method, host, head.port, direction, status, self.up, self.down, started,
                            None, head.path)
        return keep

    def _await_turn(self, head):
        """A client with failed logins: wait for its turn (guess_throttle.py) before the
        credentials are checked; False if its turn is too far off (the connection closes)."""
        context = self.context
        wait = context.throttle.turn(context.client, head.proxy_authorization, time.monotonic())
        if wait is None:
            context.stats.record("-", 429)
            return False
        if wait:
            gevent.sleep(wait)
        return True

    def _refuse_login(self, head, started):
        """407: no credentials (a client's first try), or wrong ones (named in the line; after
        a few from one address the connection is closed and the lines are counted instead)."""
        keep = exchange.keep_client_after_block(head)
        tried = claimed_user(head.proxy_authorization)
        self.context.user = None            # not the user of an earlier request on this connection
        logged = True
        if head.proxy_authorization is not None:
            context = self.context
            logged = context.throttle.failed(context.client, tried, time.monotonic())
            if context.throttle.penalised(context.client):
                keep = False
        self._send_client(http.render_simple_response(
            407, "proxy authentication required", keep_alive=keep,
            extra_headers=(proxy_authenticate_header(),)))
        if not logged:
            self.context.stats.record("-", 407, self.up, self.down)
            return keep
        self._finish(head.method, head.host, head.port, "-", 407, started,
                     "no Proxy-Authorization" if head.proxy_authorization is None else
                     "wrong password or unknown user %r" % tried if tried is not None else
                     "Proxy-Authorization is not Basic user:password", head.path)
        return keep

    def _refuse_loop(self, head, started):
        keep = exchange.keep_client_after_block(head)
        self._send_client(http.render_simple_response(
            508, "forwarding loop: this request came through this proxy before (check -f)", keep_alive=keep))
        self._finish(head.method, head.host, head.port, "-", 508, started,
                     "forwarding loop: our own Via token came back")
        return keep

    def _answer_error(self, method, host, port, direction, error, started, path=None):
        status, text = exchange.rejection(error)
        self._send_client(http.render_simple_response(status, text))
        self._finish(method, host, port, direction, status, started, text, path)

    def _finish(self, method, host, port, direction, status, started, reason=None, path=None):
        self.context.finish(method, host, port, direction, status, self.up, self.down, started, reason, path)

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
    def _take_upstream(self, next_hop, forward, check):
        """(socket, reused): the kept connection if it goes to next_hop, else a new one.
        check: peek first whether the kept one is still good (ExchangeState.check_kept).
        The caller owns the socket from here on."""
        kept = self._kept
        if kept is not None:
            self._kept = None
            # A kept connection the far end closed meanwhile (or that has bytes nobody
            # asked for) is not worth a request that could not be retried on a fresh one.
            if kept[0] == next_hop and (not check or _peek(kept[1], self.idle_timeout) is None):
                return kept[1], True
            kept[1].close()
        if forward:
            return self.outbound.connect_upstream(), False
        return self.outbound.connect_direct(next_hop[0], next_hop[1], self.context.client), False

    # -- plain HTTP ------------------------------------------------------------------
    def _relay_request(self, head, action):
        """Send head + body to the next hop, relay the answer; returns (status, keep client)."""
        forward = action is _FORWARD
        next_hop = self.outbound.upstream if forward else (head.host, head.port)
        state = ExchangeState(head, forward, self.outbound.via_lines, self.outbound.upstream_fields)
        while True:
            upstream, reused = self._take_upstream(next_hop, forward, state.check_kept)
            keep_upstream = False
            try:
                early = state.connected(reused)
                if early is not None:
                    self._send_client(early)
                try:
                    body_left = self._send_request_head(head, state.request_bytes, upstream)
                except OSError as e:
                    state.lost(e)
                    continue
                if head.framing is not Framing.NONE:
                    self._relay_request_body(head, upstream, body_left)
                buf = bytearray()
                deadline = time.monotonic() + self.idle_timeout     # one for the whole answer head
                response = read_response_head(upstream, head.method, buf, deadline, reused,
                                              self._answer_lines, True)
                if response is None:
                    state.lost(None)
                    continue
                kind, data = state.response(response)
                while kind is INTERIM:
                    if data is not None:
                        if not self._send_client(data):
                            return response.status, False
                    elif self._client_gone():
                        return response.status, False
                    response = read_response_head(upstream, head.method, buf, deadline, False,
                                                  self._answer_lines)
                    kind, data = state.response(response)
                if kind is RETRY:
                    continue
                if not self._relay_response(state, data, upstream, buf):
                    return response.status, False
                keep_upstream = state.finished(bool(buf))
                return response.status, state.keep_client
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
                self.up += relay_length(self.client, None, body_left, upstream)
            else:
                self.up += relay_chunked(self.client, self.reader.buffer, upstream, encode=True,
                                         status_hint=400)
        except SendFailed as e:
            raise NextHopError("upstream connection failed while sending the request body: %s"
                               % reason_of(e.__cause__), 502) from None
        except socket.timeout:
            raise RemoteProtocolError("request body incomplete after %.0fs" % self.idle_timeout,
                                      408) from None
        except (OSError, EOFError) as e:
            raise RemoteProtocolError("request body incomplete: %s" % reason_of(e), 400) from None

    def _relay_response(self, state, response_head, upstream, buf):
        """The final answer's head and body to the client; False if either side failed
        (then neither connection is good for another exchange)."""
        response = state.final
        if state.whole_body_in(len(buf)):
            # The whole answer is here already (small bodies): one send.
            if state.framing is Framing.LENGTH:
                body = bytes(buf[:response.content_length])
                del buf[:len(body)]
                response_head += body
            return self._send_client(response_head)
        if not self._send_client(response_head):
            return False
        try:
            self.down += relay_response_body(response, state.framing, upstream, buf, self.client)
        except SendFailed as e:
            log.debug("%s: client went away during the answer: %s", self.context.peer,
                      reason_of(e.__cause__))
            return False
        except (OSError, EOFError, RemoteProtocolError) as e:
            # The head is out: all we can do is cut the connection so the client sees
            # an incomplete body rather than a wrong one.
            log.info("%s: %s %s answer cut short by upstream: %s", self.context.peer,
                     state.request.method, format_address((state.request.host, state.request.port)),
                     reason_of(e))
            return False
        return True

    # -- CONNECT -----------------------------------------------------------------------
    def _tunnel(self, head, action):
        if action is Action.FORWARD:
            request = http.render_request_head(head, absolute_form=True, via=self.outbound.via_lines,
                                               extra=self.outbound.upstream_fields)
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
            self.context.opened(head.method, head.host, head.port, action.value, self.started)
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
            self.down += relay_response_body(response, out, refusal.sock, refusal.buffer, self.client)
        except (SendFailed, OSError, EOFError, RemoteProtocolError):
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

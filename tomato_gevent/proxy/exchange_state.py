"""The order of one plain-HTTP exchange (any method but CONNECT), as a pure object: the
session (http_session.py) does the I/O and tells an ExchangeState what happened; it answers
what comes next (h11's Connection is the model: the state lives apart from the sockets).
No sockets, no clock, no logging; the decisions themselves are exchange.py's.

    ExchangeState(request, forward, via, extra)   request: RequestHead with the edge host;
                                      forward: via -f; via: http.via_lines(our pseudonym);
                                      extra: field lines for -f (its Proxy-Authorization)
        .request_bytes                the head for the next hop (absolute-form for -f)
        .check_kept                   must a kept connection be checked (peeked) before use?
                                      Only where a stale one could not be retried: for the
                                      others a retry is cheaper than a peek on every request

    CONNECTING --connected(reused)--> EXCHANGING     returns bytes for the client first: our
                                                     own 100 Continue, once per exchange
    EXCHANGING --lost(error)--------> CONNECTING     the connection failed before an answer
                                                     head: retried once, for idempotent
                                                     body-less requests on a reused connection
                                                     (RFC 9110 9.2.2); else NextHopError(502)
    EXCHANGING --response(head)-----> EXCHANGING     (INTERIM, bytes)  a 1xx for the client
                                                     (INTERIM, None)   a 1xx swallowed (100s,
                                                                       HTTP/1.0 clients)
                                      CONNECTING     (RETRY, None)     a 408 on a reused
                                                                       connection, retryable
                                                                       as for lost(): the
                                                                       server's notice that it
                                                                       closed the idle
                                                                       connection, not our
                                                                       answer (as browsers do)
                                      RELAYING       (FINAL, head)     the answer: .final,
                                                                       .framing, .keep_client
    RELAYING   --finished(leftover)-> DONE           returns whether the upstream connection
                                                     may carry the next request

A call out of this order raises RuntimeError (a bug in the caller, never the peer's doing).
"""
from ..errors import NextHopError
from ..http1 import http
from ..http1.http import Framing
from . import exchange

CONNECTING, EXCHANGING, RELAYING, DONE = "CONNECTING", "EXCHANGING", "RELAYING", "DONE"
INTERIM, RETRY, FINAL = "INTERIM", "RETRY", "FINAL"
MAX_RETRIES = 1             # a retry runs on a fresh connection, which is never stale


class ExchangeState:
    __slots__ = ("request", "request_bytes", "check_kept", "state", "reused", "retries",
                 "_continue_sent", "final", "framing", "keep_client")

    def __init__(self, request, forward, via=http._VIA, extra=b""):
        self.request = request
        self.request_bytes = http.render_request_head(request, forward, via, extra if forward else b"")
        self.check_kept = not exchange.may_retry(request, True)
        self.state = CONNECTING
        self.reused = False
        self.retries = 0
        self._continue_sent = False
        self.final = self.framing = self.keep_client = None

    def _out_of_order(self, event):
        return RuntimeError("%s in state %s" % (event, self.state))

    def connected(self, reused):
        """A connection to the next hop is ours; the bytes to send the client first, or None."""
        if self.state is not CONNECTING:
            raise self._out_of_order("connected")
        self.state = EXCHANGING
        self.reused = reused
        if not self._continue_sent and self.request.expect_continue and exchange.answer_continue(self.request):
            self._continue_sent = True
            return http.CONTINUE
        return None

    def lost(self, error=None):
        """The connection failed (error: the OSError, None: closed without a byte) before an
        answer head. Returns if the exchange starts again; raises NextHopError(502) if not."""
        if self.state is not EXCHANGING:
            raise self._out_of_order("lost")
        if self._may_retry():
            self.retries += 1
            self.state = CONNECTING
            return
        self.state = DONE
        if error is None:
            raise NextHopError("upstream closed the connection without answering", 502)
        raise NextHopError("upstream connection failed: %s" % (
            getattr(error, "strerror", None) or str(error) or type(error).__name__), 502)

    def _may_retry(self):
        return self.retries < MAX_RETRIES and exchange.may_retry(self.request, self.reused)

    def response(self, head):
        """An answer head arrived: (INTERIM, bytes | None), (RETRY, None) or (FINAL, head bytes)."""
        if self.state is not EXCHANGING:
            raise self._out_of_order("response")
        request = self.request
        status = head.status
        if status < 200:
            return INTERIM, exchange.informational(request, head)
        if status == 408 and self._may_retry():
            self.retries += 1
            self.state = CONNECTING
            return RETRY, None
        self.state = RELAYING
        self.final = head
        framing, keep = self.framing, self.keep_client = exchange.to_client(request, head)
        return FINAL, http.render_response_head(head, framing, keep, request.version)

    def whole_body_in(self, available):
        """Are `available` bytes already read the whole body (one send for head and body)?"""
        framing = self.framing
        return framing is Framing.NONE or (framing is Framing.LENGTH
                                           and available >= self.final.content_length)

    def finished(self, leftover):
        """The answer's body is through; leftover: bytes after it. May the connection be kept?"""
        if self.state is not RELAYING:
            raise self._out_of_order("finished")
        self.state = DONE
        return exchange.keep_upstream(self.final, leftover)

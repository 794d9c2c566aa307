"""The order of one plain-HTTP exchange (any method but CONNECT), as a pure object: the
session (http_session.py) does the I/O and tells an ExchangeState what happened; it answers
what comes next (h11's Connection is the model: the state lives apart from the sockets).
No sockets, no clock, no logging; the decisions themselves are exchange.py's.

    ExchangeState(request, forward, via, extra)   request: RequestHead with the edge host;
                                      forward: via -f; via: our Via pseudonym; extra: field
                                      lines for -f (its Proxy-Authorization)
        .request_bytes                the head for the next hop (absolute-form for -f)

    CONNECTING --connected(reused)--> EXCHANGING     returns bytes for the client first: our
                                                     own 100 Continue, once per exchange
    EXCHANGING --lost(error)--------> CONNECTING     the connection failed before an answer
                                                     head: retried once, for idempotent
                                                     body-less requests on a reused connection
                                                     (RFC 9110 9.2.2); else NextHopError(502)
    EXCHANGING --response(head)-----> EXCHANGING     (INTERIM, bytes)  a 1xx for the client
                                                     (INTERIM, None)   a 1xx swallowed (100s,
                                                                       HTTP/1.0 clients)
                                      RELAYING       (FINAL, head)     the answer: .final,
                                                                       .framing, .keep_client
    RELAYING   --finished(leftover)-> DONE           returns whether the upstream connection
                                                     may carry the next request

A call out of this order raises RuntimeError (a bug in the caller, never the peer's doing).
"""
from ..errors import NextHopError
from . import exchange, http
from .http import Framing

CONNECTING, EXCHANGING, RELAYING, DONE = "CONNECTING", "EXCHANGING", "RELAYING", "DONE"
INTERIM, FINAL = "INTERIM", "FINAL"
MAX_RETRIES = 1             # a retry runs on a fresh connection, which is never stale


class ExchangeState:
    __slots__ = ("request", "request_bytes", "state", "reused", "retries",
                 "_continue_sent", "final", "framing", "keep_client")

    def __init__(self, request, forward, via=http.VIA, extra=b""):
        self.request = request
        self.request_bytes = http.render_request_head(request, absolute_form=forward, via=via,
                                                      extra=extra if forward else b"")
        self.state = CONNECTING
        self.reused = False
        self.retries = 0
        self._continue_sent = False
        self.final = self.framing = self.keep_client = None

    def _expect(self, state, event):
        if self.state is not state:
            raise RuntimeError("%s in state %s" % (event, self.state))

    def connected(self, reused):
        """A connection to the next hop is ours; the bytes to send the client first, or None."""
        self._expect(CONNECTING, "connected")
        self.state = EXCHANGING
        self.reused = reused
        if not self._continue_sent and exchange.answer_continue(self.request):
            self._continue_sent = True
            return http.CONTINUE
        return None

    def lost(self, error=None):
        """The connection failed (error: the OSError, None: closed without a byte) before an
        answer head. Returns if the exchange starts again; raises NextHopError(502) if not."""
        self._expect(EXCHANGING, "lost")
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
        """An answer head arrived: (INTERIM, bytes | None) or (FINAL, head bytes)."""
        self._expect(EXCHANGING, "response")
        request = self.request
        if head.status < 200:
            return INTERIM, exchange.informational(request, head)
        self.state = RELAYING
        self.final = head
        framing = self.framing = exchange.client_framing(request, head)
        keep = self.keep_client = exchange.keep_client(request, framing)
        return FINAL, http.render_response_head(head, framing, keep, request.version)

    def whole_body_in(self, available):
        """Are `available` bytes already read the whole body (one send for head and body)?"""
        framing = self.framing
        return framing is Framing.NONE or (framing is Framing.LENGTH
                                           and available >= self.final.content_length)

    def finished(self, leftover):
        """The answer's body is through; leftover: bytes after it. May the connection be kept?"""
        self._expect(RELAYING, "finished")
        self.state = DONE
        return exchange.keep_upstream(self.final, leftover)

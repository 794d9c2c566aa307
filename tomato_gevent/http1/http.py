"""HTTP/1.x message heads and body framing for a forwarding proxy (pure, no I/O).

Strategy (h11 `_readers.py` style):

    bytes from client --parse_request_head(buf)--> None (need more) | RequestHead
                                                   | RemoteProtocolError(400 / 431 / 505)
    a connection's bytes --RequestReader.feed(data); .next_head()--> as above, leading blank
                        lines dropped as they arrive (each byte is scanned a bounded number of times)
    RequestHead --render_request_head(head, absolute_form)--> bytes for the next hop
    bytes from upstream --parse_response_head(buf, method)--> None | ResponseHead
                                                   | RemoteProtocolError (caller answers 502)
    ResponseHead --render_response_head(resp, framing, keep_alive)--> bytes for the client
    (chunked bodies: chunked.py)

Both parsers open a head the same way (_open_head: find its end, match the start line, parse
the field lines) and share the keep-alive rule (_keep_alive); what differs is the request
target (targets.py) and the body framing (_request_framing, _response_framing).

What it refuses (RFC 9112): request heads over MAX_HEAD_BYTES (431); bad request line,
header syntax, obs-fold, bad or conflicting Content-Length, Transfer-Encoding whose final
coding is not chunked, Transfer-Encoding together with Content-Length or on HTTP/1.0,
duplicate Host, targets that are not absolute-form http:// (or authority-form for CONNECT),
userinfo in the target, control characters in field values (all 400); HTTP versions other
than 1.x (505). Responses (502): the same syntax errors, status codes below 100, and a body
in a transfer coding other than chunked (the proxy would hand out bytes labelled as
something they are not: it does not pass other codings on, and no server sends them).

Hop-by-hop fields (RFC 9110 7.6.1) are never forwarded: Connection and every field it
names, Proxy-Connection, Keep-Alive, TE, Trailer, Transfer-Encoding (the proxy re-frames
the body itself), Upgrade, Proxy-Authorization, Proxy-Authenticate. The proxy adds Via.
"""
import re
from http import HTTPStatus
from typing import NamedTuple, Optional, Tuple

from ..errors import RemoteProtocolError
from . import fields, targets
from .heads import CR_LF, MAX_HEAD_BYTES, skip_blank_lines, split_head

VIA = b"tomato"                     # received-by pseudonym in our Via entries

class Framing:
    """How a message body is delimited (RFC 9112 6.3): one of the four constants below,
    compared by identity. Not an enum.Enum: on Python 3.11 every lookup of an Enum member
    (Framing.NONE) passes through EnumType.__getattr__, ~900 instructions against ~60 for a
    plain class attribute, and one request made 16 of them."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Framing(%r)" % self.value


Framing.NONE = Framing("none")                 # no body at all
Framing.LENGTH = Framing("length")             # Content-Length bytes
Framing.CHUNKED = Framing("chunked")           # chunked transfer coding
Framing.UNTIL_CLOSE = Framing("close")         # response read until the connection closes


# Heads are named tuples: immutable values, made with one call (a frozen dataclass costs a
# __setattr__ per field, twice per request).
class RequestHead(NamedTuple):
    method: str                # "GET", "CONNECT", ...
    version: Tuple[int, int]   # (1, 1) or (1, 0)
    host: str                  # lower-case name or IP literal, IPv6 without brackets
    port: int
    authority: bytes           # host[:port] as the client wrote it (brackets kept), for Host
    path: bytes                # origin-form target ("/x?y"); b"" for CONNECT
    fields: bytes              # end-to-end field lines as they go on (fields.py), CRLF each
    framing: Framing           # NONE, LENGTH or CHUNKED
    content_length: int        # for Framing.LENGTH, else 0
    keep_alive: bool           # client wants the connection kept after this exchange
    expect_continue: bool      # "Expect: 100-continue" (removed from the fields)
    length: int                # bytes of buf the head occupied (incl. leading blank lines)
    proxy_authorization: Optional[bytes] = None     # for --auth-file; never forwarded (hop-by-hop)

    @property
    def is_connect(self):
        return self.method == "CONNECT"

    @property
    def headers(self):
        """The end-to-end fields as ((name, value), ...)."""
        return fields.pairs(self.fields)


class ResponseHead(NamedTuple):
    status: int
    reason: bytes
    version: Tuple[int, int]
    fields: bytes              # end-to-end field lines (as RequestHead.fields)
    framing: Framing
    content_length: int        # for Framing.LENGTH; also kept for HEAD / 304 answers
    keep_alive: bool           # the server lets us reuse the connection
    length: int                # bytes of buf the head occupied

    @property
    def headers(self):
        return fields.pairs(self.fields)


# A head made from all its fields at once, without the named tuple's __new__ (a Python
# function: a call per head, two per request).
_new_head = tuple.__new__


# -- lexical pieces (RFC 9110 5.6.2 token; field lines: fields.py) ----------------
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^ \x00-\x1f\x7f]+) HTTP/(?P<major>\d)\.(?P<minor>\d)")
_STATUS_LINE = re.compile(
    rb"HTTP/(?P<major>\d)\.(?P<minor>\d) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
HOP_BY_HOP = fields.HOP_BY_HOP
# The usual start lines, each matched with its CRLF at the first look: a request in absolute
# form (target parsed in the same match, as targets._ABSOLUTE_TARGET does) and a status line,
# both HTTP/1.x. Anything else (CONNECT, other methods' spellings, IPv6) takes the careful way.
_USUAL_REQUEST = re.compile(
    rb"([A-Z]+) [Hh][Tt][Tt][Pp]://(([A-Za-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]{1,5}))?)"
    rb"([/?][^#\x00-\x20\x7f]*)?(?:#[^\x00-\x20\x7f]*)? HTTP/1\.([0-9])\r\n")
_USUAL_STATUS = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?\r\n")


def _bad_request(msg):
    return RemoteProtocolError(msg, 400)


def _bad_response(msg):
    return RemoteProtocolError(msg, 502)


def _open_head(buf, start, start_line, what, too_big_hint, bad):
    """How both parsers open a head: None while it is incomplete, else (start-line match,
    version, special, end-to-end fields, tokens, head length) as fields.scan and
    fields.token_lists give them. Raises RemoteProtocolError: too_big_hint over
    MAX_HEAD_BYTES, bad(msg) for a malformed start line or field line."""
    split = split_head(buf, start, too_big_hint, what)
    if split is None:
        return None
    first, block, length = split
    match = start_line.fullmatch(first)
    if match is None:
        raise bad("malformed %s line %r" % ("request" if what == "request" else "status", first[:80]))
    major, minor = match.group("major", "minor")
    special, end_to_end = fields.scan(block, bad)
    tokens = fields.token_lists(special) if special else special
    return match, (int(major), int(minor)), special, end_to_end, tokens, length


_NO_TOKEN_LISTS = fields.TOKEN_LIST_FIELDS.isdisjoint
# The usual start lines' digits as the parsers give them, without an int() and a tuple each.
_VERSIONS = {b"%d" % minor: (1, minor) for minor in range(10)}
_STATUS_CODES = {b"%d" % status: status for status in range(100, 600)}


def _open_usual(buf, line, bad, seen):
    """The rest of a usual head whose start line matched (`line`): (special, end-to-end fields,
    tokens, head length) as _open_head gives them, or None: the careful way decides (the head
    is incomplete, too big, not CRLF throughout, or refused: it finds why)."""
    first_field = line.end()
    end = buf.find(b"\r\n\r\n", first_field - 2)
    if not 0 < end <= MAX_HEAD_BYTES - 4:
        return None
    try:
        special, end_to_end = fields.scan(bytes(buf[first_field:end + 2]), bad, seen)
    except RemoteProtocolError:
        return None
    # token_lists only where a token-list field is (Connection, Transfer-Encoding, ...)
    tokens = fields.token_lists(special) if not _NO_TOKEN_LISTS(special) else {}
    return special, end_to_end, tokens, end + 4


def _keep_alive(version, tokens, end_to_end):
    """(does the sender let the connection persist, the fields that go on) (RFC 9112 9.3):
    HTTP/1.1 unless "close", HTTP/1.0 only with "keep-alive"; Proxy-Connection, which clients
    send to proxies, counts as Connection; a field Connection names does not go on."""
    if not tokens:
        return version >= (1, 1), end_to_end
    connection = tokens.get(b"connection", []) + tokens.get(b"proxy-connection", [])
    if not fields.REGENERATED.issuperset(connection):
        end_to_end = fields.drop_named(end_to_end, connection)
    if version >= (1, 1):
        return b"close" not in connection, end_to_end
    return b"keep-alive" in connection and b"close" not in connection, end_to_end


def _request_framing(version, tokens, special):
    """(framing, content length) of a request body (RFC 9112 6.1-6.3); only "chunked" alone
    as Transfer-Encoding, never with Content-Length or on HTTP/1.0 (smuggling, RFC 9112 6.3)."""
    transfer_codings = tokens.get(b"transfer-encoding", ())
    content_length = fields.content_length(special, _bad_request)
    if transfer_codings:
        if version < (1, 1):
            raise _bad_request("Transfer-Encoding in an HTTP/1.0 request")
        if transfer_codings[-1] != b"chunked" or transfer_codings.count(b"chunked") != 1:
            raise _bad_request("request body with Transfer-Encoding not ending in chunked")
        if content_length is not None:
            raise _bad_request("both Transfer-Encoding and Content-Length")
        if len(transfer_codings) > 1:
            # We would have to forward the inner codings as Transfer-Encoding; no client does this.
            raise _bad_request("transfer codings other than chunked are not supported")
        return Framing.CHUNKED, 0
    if content_length:
        return Framing.LENGTH, content_length
    return Framing.NONE, 0


def _response_framing(status, request_method, tokens, special):
    """(framing, content length) of a response body (RFC 9112 6.3): HEAD/1xx/204/304 and
    CONNECT 2xx -> NONE (the length kept: it describes the GET answer); chunked -> CHUNKED,
    any other coding refused; Content-Length -> LENGTH (0 too); else UNTIL_CLOSE."""
    transfer_codings = tokens.get(b"transfer-encoding")
    content_length = None if transfer_codings else fields.content_length(special, _bad_response)
    if response_has_no_body(status, request_method):
        if transfer_codings:
            try:
                content_length = fields.content_length(special, _bad_response)
            except RemoteProtocolError:
                pass
        return Framing.NONE, content_length or 0
    if transfer_codings:
        if transfer_codings != [b"chunked"]:
            # The proxy removes the chunked coding; any other one would stay on the body
            # while Transfer-Encoding (hop-by-hop) is not passed on: mislabelled bytes.
            raise _bad_response("unsupported transfer coding %r" % b", ".join(transfer_codings)[:60])
        return Framing.CHUNKED, 0
    if content_length is not None:
        # Content-Length: 0 stays LENGTH: passed on as such, so the client knows the (empty)
        # body's end; without it a keep-alive client would wait for a close that never comes.
        return Framing.LENGTH, content_length
    return Framing.UNTIL_CLOSE, 0


def parse_request_head(buf, start=0, seen=None):
    """Parse one request head at the start of buf (bytes or bytearray).

    Returns None while the head is incomplete, or a RequestHead whose .length says how
    many bytes of buf it used; the body (if any) follows. `start` is an optional hint:
    how much of buf was already searched by an earlier call that returned None; `seen` the
    connection's table of field lines (fields.scan), or None.
    Raises RemoteProtocolError with status_hint 400, 431 or 505.
    """
    usual = _USUAL_REQUEST.match(buf) if not start else None
    opened = _open_usual(buf, usual, _bad_request, seen) if usual is not None else None
    if opened is not None and 0 < int(usual.group(4) or 80) < 65536 and usual.group(1) != b"CONNECT":
        method_bytes, authority, host, port, path, minor = usual.groups()
        version = _VERSIONS[minor]
        special, end_to_end, tokens, length = opened
        port = int(port) if port else 80
        if path is None:
            path = b"/"
        elif path[:1] == b"?":
            path = b"/" + path
        host, method = host.decode("ascii").lower(), method_bytes.decode("ascii")
    else:
        opened = _open_head(buf, start, _REQUEST_LINE, "request", 431, _bad_request)
        if opened is None:
            return None
        match, version, special, end_to_end, tokens, length = opened
        if version[0] != 1:
            raise RemoteProtocolError("HTTP version %d.%d not supported" % version, 505)
        method_bytes, target = match.group(1, 2)
        method = method_bytes.decode("ascii")
        host, port, authority, path = targets.parse_target(method, target)
    if len(special.get(b"host", ())) > 1:
        raise _bad_request("more than one Host header")
    if not tokens and b"content-length" not in special and b"proxy-authorization" not in special:
        # No body, no Connection, no Expect (a GET, as most are): the defaults.
        return _new_head(RequestHead, (method, version, host, port, authority, path, end_to_end,
                                       Framing.NONE, 0, version >= (1, 1), False, length, None))
    framing, content_length = _request_framing(version, tokens, special)
    keep_alive, end_to_end = _keep_alive(version, tokens, end_to_end)
    return RequestHead(
        method, version, host, port, authority, path, end_to_end, framing, content_length,
        keep_alive, b"100-continue" in tokens.get(b"expect", ()), length,
        special.get(b"proxy-authorization", (None,))[0])


class RequestReader:
    """The request side of one client connection: feed() what recv() returned,
    next_head() parses the next head out of it (None: need more bytes); receive() is both.

    .buffer holds the bytes not used yet (the start of a body, the next pipelined
    request, a tunnel's first bytes); the caller consumes bodies from it. Leading blank
    lines are dropped as they arrive, and the search for the end of a head resumes where
    the previous call stopped, so a client trickling CRLFs costs linear time. More than
    MAX_HEAD_BYTES of blank lines before one head is a 431, as in parse_request_head.
    """

    def __init__(self):
        self.buffer = bytearray()
        self._searched = 0          # bytes of buffer already searched for the head's end
        self._blank = 0             # blank-line bytes dropped before the current head
        self._seen = {}             # this connection's field lines (fields.scan's table)

    @property
    def started(self):
        """Bytes towards the next head have arrived (the head's deadline runs)."""
        return bool(self.buffer) or self._blank > 0

    def feed(self, data):
        self.buffer += data

    def receive(self, data):
        """feed(data), then next_head(). The usual case (nothing buffered, data from one recv
        holding a whole head) parses data as it is, without copying it into the buffer."""
        if self.buffer or self._blank or data[:1] in CR_LF:
            self.buffer += data
            return self.next_head()
        head = parse_request_head(data, 0, self._seen)
        if head is None:
            self.buffer += data
            self._searched = len(data)
        elif head.length < len(data):
            self.buffer += memoryview(data)[head.length:]
        return head

    def next_head(self):
        buf = self.buffer
        if not buf and not self._blank:     # nothing yet (every keep-alive wait): no regex
            return None
        skip = skip_blank_lines(buf)
        if skip:
            del buf[:skip]
            self._blank += skip
            self._searched = 0
        if self._blank > MAX_HEAD_BYTES:
            raise RemoteProtocolError("request head larger than %d bytes" % MAX_HEAD_BYTES, 431)
        if not buf:
            return None
        head = parse_request_head(buf, self._searched, self._seen)
        if head is None:
            self._searched = len(buf)
            return None
        del buf[:head.length]
        self._searched = self._blank = 0
        return head


def response_has_no_body(status, request_method):
    """RFC 9112 6.3 rules 1-2: HEAD answers, 1xx, 204, 304 and CONNECT 2xx carry no body."""
    return (request_method == "HEAD" or status < 200 or status in (204, 304)
            or (request_method == "CONNECT" and 200 <= status < 300))


def parse_response_head(buf, request_method, start=0, seen=None):
    """Parse one response head at the start of buf; None while incomplete.

    Framing as _response_framing says; `seen` as for parse_request_head. Raises
    RemoteProtocolError(status_hint=502) for anything malformed or oversized.
    """
    usual = _USUAL_STATUS.match(buf) if not start else None
    opened = _open_usual(buf, usual, _bad_response, seen) if usual is not None else None
    if opened is not None:
        minor, status_text, reason = usual.groups()
        version = _VERSIONS[minor]
        special, end_to_end, tokens, length = opened
    else:
        opened = _open_head(buf, start, _STATUS_LINE, "response", 502, _bad_response)
        if opened is None:
            return None
        match, version, special, end_to_end, tokens, length = opened
        if version[0] != 1:
            raise _bad_response("upstream answered with HTTP version %d.%d" % version)
        status_text, reason = match.group(3, 4)
    status = _STATUS_CODES.get(status_text) or int(status_text)
    if status < 100:
        raise _bad_response("status code %d below 100" % status)
    framing, content_length = _response_framing(status, request_method, tokens, special)
    keep_alive, end_to_end = _keep_alive(version, tokens, end_to_end)
    return _new_head(ResponseHead, (status, reason or b"", version, end_to_end, framing, content_length,
                                    keep_alive and framing is not Framing.UNTIL_CLOSE, length))


# Our Via entry for each version a head may have (the parsers accept 1.0 to 1.9).
def via_lines(pseudonym):
    """{version: our Via field line} for a pseudonym (loop_guard's token for requests)."""
    return {(1, minor): b"Via: 1.%d %s\r\n" % (minor, pseudonym) for minor in range(10)}


_VIA = via_lines(VIA)


def _framing_field(framing, content_length):
    if framing is Framing.LENGTH:
        return b"Content-Length: %d\r\n" % content_length
    if framing is Framing.CHUNKED:
        return b"Transfer-Encoding: chunked\r\n"
    return b""


def render_request_head(head, absolute_form, via=_VIA, extra=b""):
    """The head to send to the next hop, always as HTTP/1.1, with our Via line from `via`
    (via_lines(our pseudonym): loop_guard's token) and `extra` (field lines for the next hop
    only: the -f proxy's Proxy-Authorization), CONNECT included.

    absolute_form=True for an upstream proxy ("GET http://host/path"), False for the
    origin ("GET /path"). CONNECT is rendered in authority form either way. The body
    keeps its framing kind: Content-Length as is, chunked re-encoded by the caller.
    """
    if head.method == "CONNECT":
        return b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n" % (
            head.authority, head.authority, head.fields, _framing_field(head.framing, head.content_length),
            via[head.version], extra)
    target = b"http://" + head.authority + head.path if absolute_form else head.path
    framing = head.framing
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n" % (
        head.method.encode("ascii"), target, head.authority, head.fields,
        b"" if framing is Framing.NONE else _framing_field(framing, head.content_length),
        via[head.version], extra)


_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


def render_response_head(resp, framing, keep_alive, client_version=(1, 1)):
    """The head to send to the client, as HTTP/1.1, with the body framed as `framing`.

    framing is the framing towards the client: LENGTH (as received), CHUNKED (re-encoded),
    UNTIL_CLOSE (raw, then close) or NONE. keep_alive says whether we keep the client
    connection; an HTTP/1.0 client is told so explicitly.
    """
    if framing is Framing.LENGTH:
        length = b"Content-Length: %d\r\n" % resp.content_length
    elif framing is not Framing.NONE:
        length = _framing_field(framing, resp.content_length)
    elif resp.content_length and resp.status >= 200 and resp.status != 204:
        # HEAD and 304 answers may say how long the GET answer would be.
        length = b"Content-Length: %d\r\n" % resp.content_length
    else:
        length = b""
    if not keep_alive:
        connection = _CLOSE
    elif client_version < (1, 1):
        connection = _KEEP_ALIVE
    else:
        connection = b""
    return b"HTTP/1.1 %d %s\r\n%s%s%s%s\r\n" % (resp.status, resp.reason, resp.fields, length,
                                                  _VIA[resp.version], connection)


def render_informational(resp):
    """A 1xx answer passed on to an HTTP/1.1 client (RFC 9110 15.2), hop-by-hop fields removed."""
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (resp.status, resp.reason, resp.fields)


def reason_phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def render_simple_response(status, text, keep_alive=False, extra_headers=()):
    """A complete response generated by the proxy itself: text/plain body `text` + newline."""
    body = (text.rstrip("\n") + "\n").encode("utf-8", "replace") if text is not None else b""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii"))]
    for name, value in extra_headers:
        parts += (name, b": ", value, b"\r\n")
    if text is not None:
        parts.append(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


def render_connect_request(authority, headers=()):
    """The minimal CONNECT request for authority (bytes, host:port as it goes on the wire),
    with headers ((name, value) pairs: Via, Proxy-Authorization) after Host."""
    fields = b"".join(b"%s: %s\r\n" % field for field in headers)
    return b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, fields)


def render_connect_established():
    return b"HTTP/1.1 200 Connection Established\r\n\r\n"


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

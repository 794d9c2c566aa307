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
target (_request_target) and the body framing (_request_framing, _response_framing).

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
import enum
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Optional, Tuple

from ..errors import RemoteProtocolError

# -- implementation limits ------------------------------------------------------
MAX_HEAD_BYTES = 64 * 1024          # request/response head incl. the blank line (431 above it)
VIA = b"tomato"                     # received-by pseudonym in our Via entries

Headers = Tuple[Tuple[bytes, bytes], ...]  # (name as received, value without OWS)


class Framing(enum.Enum):
    """How a message body is delimited (RFC 9112 6.3)."""

    NONE = "none"              # no body at all
    LENGTH = "length"          # Content-Length bytes
    CHUNKED = "chunked"        # chunked transfer coding
    UNTIL_CLOSE = "close"      # response read until the connection closes


@dataclass(frozen=True)
class RequestHead:
    method: str                # "GET", "CONNECT", ...
    version: Tuple[int, int]   # (1, 1) or (1, 0)
    host: str                  # lower-case name or IP literal, IPv6 without brackets
    port: int
    authority: bytes           # host[:port] as the client wrote it (brackets kept), for Host
    path: bytes                # origin-form target ("/x?y"); b"" for CONNECT
    headers: Headers           # end-to-end fields only (hop-by-hop, Host, framing removed)
    framing: Framing           # NONE, LENGTH or CHUNKED
    content_length: int        # for Framing.LENGTH, else 0
    keep_alive: bool           # client wants the connection kept after this exchange
    expect_continue: bool      # "Expect: 100-continue" (removed from headers)
    length: int                # bytes of buf the head occupied (incl. leading blank lines)
    proxy_authorization: Optional[bytes] = None     # for --auth-file; never forwarded (hop-by-hop)
    via: Optional[list] = None # the Via values received (also kept in headers): loop_guard's

    @property
    def is_connect(self):
        return self.method == "CONNECT"


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: bytes
    version: Tuple[int, int]
    headers: Headers           # end-to-end fields only (as RequestHead.headers)
    framing: Framing
    content_length: int        # for Framing.LENGTH; also kept for HEAD / 304 answers
    keep_alive: bool           # the server lets us reuse the connection
    length: int                # bytes of buf the head occupied


# -- lexical pieces (RFC 9110 5.6.2 token, 5.5 field values) ----------------------
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^ \x00-\x1f\x7f]+) HTTP/(?P<major>\d)\.(?P<minor>\d)")
_STATUS_LINE = re.compile(
    rb"HTTP/(?P<major>\d)\.(?P<minor>\d) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
# The value is matched greedily and its trailing OWS stripped afterwards: a lazy value followed
# by [ \t]* backtracks over every run of spaces, quadratic in the line (seconds for 64 KiB).
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
_REG_NAME = re.compile(rb"[A-Za-z0-9._~!$&'()*+,;=%-]+")
_PORT = re.compile(rb"[0-9]{1,5}")

# Always hop-by-hop, whatever Connection says (RFC 9110 7.6.1, 11.7.1, 11.7.2; RFC 9112 7).
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authorization", b"proxy-authenticate",
})
# Fields the proxy regenerates itself rather than copying.
_REGENERATED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}


def _find_head_end(buf, start, first):
    """Index just past the blank line ending a head that starts at `first`, or -1.

    `start` is how far an earlier call searched. Accepts bare LF (RFC 9112 2.2).
    """
    start = max(start - 3, first)
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return -1


_BLANK_LINES = re.compile(rb"(?:\r?\n)*")
_CR_LF = (b"\r", b"\n")


def _skip_blank_lines(buf):
    """Offset of the first byte after leading CRLF / LF (RFC 9112 2.2 robustness)."""
    if buf[:1] not in _CR_LF:       # the usual case: no regex
        return 0
    return _BLANK_LINES.match(buf).end()


def _split_head(buf, start, status_hint_too_big, what):
    """(first line, field lines, head length) or None; enforces MAX_HEAD_BYTES."""
    skip = _skip_blank_lines(buf)
    if skip == len(buf):
        if skip > MAX_HEAD_BYTES:
            raise RemoteProtocolError("%s head larger than %d bytes" % (what, MAX_HEAD_BYTES),
                                      status_hint_too_big)
        return None
    end = _find_head_end(buf, start, skip)
    if end > MAX_HEAD_BYTES or (end < 0 and len(buf) > MAX_HEAD_BYTES):
        raise RemoteProtocolError("%s head larger than %d bytes" % (what, MAX_HEAD_BYTES),
                                  status_hint_too_big)
    if end < 0:
        return None
    lines = bytes(buf[skip:end]).split(b"\n")
    # The last two elements are the blank line's remains; strip CR of every line.
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines[:-2]]
    return lines[0], lines[1:], end


# Fields whose values the parser itself needs (lower-case names).
_FRAMING_FIELDS = frozenset({b"connection", b"proxy-connection", b"transfer-encoding",
                             b"content-length", b"host", b"expect", b"proxy-authorization", b"via"})


def _parse_fields(lines, bad):
    """Field lines -> ([(name, value, lower-case name)], {lower name: [values]} for the
    _FRAMING_FIELDS present); raises bad(msg) on syntax errors. One pass, one lower()."""
    fields = []
    special = {}
    match_line = _FIELD_LINE.fullmatch
    for line in lines:
        match = match_line(line)
        if match is None:
            if line[:1] in (b" ", b"\t"):
                raise bad("obsolete line folding in header section")
            raise bad("malformed header line %r" % line[:80])
        name, value = match.groups()
        value = value.rstrip(b" \t")
        lname = name.lower()
        fields.append((name, value, lname))
        if lname in _FRAMING_FIELDS:
            special.setdefault(lname, []).append(value)
    return fields, special


_TOKEN_LIST_FIELDS = (b"transfer-encoding", b"connection", b"proxy-connection", b"expect")


def _token_lists(special):
    """{field: its lower-case comma-separated tokens} for the token-list fields present
    (all fields of a name together); one call per head, as most heads have few of them."""
    tokens = {}
    for name in _TOKEN_LIST_FIELDS:
        values = special.get(name)
        if values:
            tokens[name] = [t.strip().lower() for value in values for t in value.split(b",") if t.strip()]
    return tokens


def _content_length(special, bad):
    """None if absent; else the one value (identical duplicates allowed, RFC 9110 8.6)."""
    values = set()
    for value in special.get(b"content-length", ()):
        for item in value.split(b","):
            item = item.strip()
            if not item.isdigit() or len(item) > 18:
                raise bad("invalid Content-Length %r" % value[:40])
            values.add(int(item))
    if not values:
        return None
    if len(values) > 1:
        raise bad("conflicting Content-Length values")
    return values.pop()


def _end_to_end(fields, connection_tokens):
    """Drop hop-by-hop and regenerated fields, and every field Connection names."""
    if connection_tokens:
        drop = _REGENERATED.union(connection_tokens)
    else:
        drop = _REGENERATED
    return tuple((n, v) for n, v, lname in fields if lname not in drop)


def _split_authority(authority, default_port, bad):
    """b"host[:port]" / b"[v6]:port" -> (host str lower-case, port int)."""
    if authority.startswith(b"["):
        close = authority.find(b"]")
        if close < 0:
            raise bad("unterminated IPv6 literal in %r" % authority[:80])
        host = authority[1:close]
        rest = authority[close + 1:]
        if not re.fullmatch(rb"[0-9A-Fa-f:.]+", host):
            raise bad("bad IPv6 literal in %r" % authority[:80])
        if rest and not rest.startswith(b":"):
            raise bad("bad authority %r" % authority[:80])
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = authority.rpartition(b":")
        if not colon:
            host, port_text = authority, None
        if not host or not _REG_NAME.fullmatch(host):
            raise bad("bad host in %r" % authority[:80])
    if port_text is None or port_text == b"":
        if default_port is None:
            raise bad("missing port in %r" % authority[:80])
        port = default_port
    else:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise bad("bad port in %r" % authority[:80])
        port = int(port_text)
    return host.decode("ascii").lower(), port


def _bad_request(msg):
    return RemoteProtocolError(msg, 400)


def _bad_response(msg):
    return RemoteProtocolError(msg, 502)


def _open_head(buf, start, start_line, what, too_big_hint, bad):
    """How both parsers open a head: None while it is incomplete, else (start-line match,
    version, fields, special, tokens, head length), the fields as _parse_fields gives them
    and tokens as _token_lists does. Raises RemoteProtocolError: too_big_hint over
    MAX_HEAD_BYTES, bad(msg) for a malformed start line or field line."""
    split = _split_head(buf, start, too_big_hint, what)
    if split is None:
        return None
    first, field_lines, length = split
    match = start_line.fullmatch(first)
    if match is None:
        raise bad("malformed %s line %r" % ("request" if what == "request" else "status", first[:80]))
    major, minor = match.group("major", "minor")
    fields, special = _parse_fields(field_lines, bad)
    return match, (int(major), int(minor)), fields, special, _token_lists(special), length


def _keep_alive(version, tokens):
    """(does the sender let the connection persist, its Connection tokens) (RFC 9112 9.3):
    HTTP/1.1 unless "close", HTTP/1.0 only with "keep-alive"; Proxy-Connection, which clients
    send to proxies, counts as Connection."""
    connection = tokens.get(b"connection", []) + tokens.get(b"proxy-connection", [])
    if version >= (1, 1):
        return b"close" not in connection, connection
    return b"keep-alive" in connection and b"close" not in connection, connection


def _request_target(method, target):
    """(host, port, authority, path) of a request target (RFC 9112 3.2): authority-form for
    CONNECT (path b""), else absolute-form http:// without userinfo (path from its "/")."""
    if method == "CONNECT":
        host, port = _split_authority(target, None, _bad_request)
        return host, port, target, b""
    if target[:7].lower() != b"http://":
        if target.startswith(b"/") or target == b"*":
            raise _bad_request("this is a proxy: the request target must be absolute "
                               "(http://host/path)")
        raise _bad_request("unsupported request target %r" % target[:80])
    rest = target[7:]
    cut = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    authority, path = rest[:cut], rest[cut:]
    if b"@" in authority:
        raise _bad_request("userinfo in the request target is not allowed")
    host, port = _split_authority(authority, 80, _bad_request)
    path = path.split(b"#", 1)[0]
    if not path.startswith(b"/"):
        path = b"/" + path
    return host, port, authority, path


def _request_framing(version, tokens, special):
    """(framing, content length) of a request body (RFC 9112 6.1-6.3); only "chunked" alone
    as Transfer-Encoding, never with Content-Length or on HTTP/1.0 (smuggling, RFC 9112 6.3)."""
    transfer_codings = tokens.get(b"transfer-encoding", ())
    content_length = _content_length(special, _bad_request)
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
    any other coding refused; Content-Length -> LENGTH (NONE for 0); else UNTIL_CLOSE."""
    transfer_codings = tokens.get(b"transfer-encoding")
    content_length = None if transfer_codings else _content_length(special, _bad_response)
    if response_has_no_body(status, request_method):
        if transfer_codings:
            try:
                content_length = _content_length(special, _bad_response)
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
        return (Framing.LENGTH if content_length else Framing.NONE), content_length
    return Framing.UNTIL_CLOSE, 0


def parse_request_head(buf, start=0):
    """Parse one request head at the start of buf (bytes or bytearray).

    Returns None while the head is incomplete, or a RequestHead whose .length says how
    many bytes of buf it used; the body (if any) follows. `start` is an optional hint:
    how much of buf was already searched by an earlier call that returned None.
    Raises RemoteProtocolError with status_hint 400, 431 or 505.
    """
    opened = _open_head(buf, start, _REQUEST_LINE, "request", 431, _bad_request)
    if opened is None:
        return None
    match, version, fields, special, tokens, length = opened
    if version[0] != 1:
        raise RemoteProtocolError("HTTP version %d.%d not supported" % version, 505)
    method = match.group(1).decode("ascii")
    host, port, authority, path = _request_target(method, match.group(2))
    if len(special.get(b"host", ())) > 1:
        raise _bad_request("more than one Host header")
    framing, content_length = _request_framing(version, tokens, special)
    keep_alive, connection = _keep_alive(version, tokens)
    return RequestHead(
        method=method, version=version, host=host, port=port, authority=authority,
        path=path, headers=_end_to_end(fields, connection), framing=framing,
        content_length=content_length, keep_alive=keep_alive,
        expect_continue=b"100-continue" in tokens.get(b"expect", ()), length=length,
        proxy_authorization=special.get(b"proxy-authorization", (None,))[0],
        via=special[b"via"] if b"via" in special else None)


class RequestReader:
    """The request side of one client connection: feed() what recv() returned,
    next_head() parses the next head out of it (None: need more bytes).

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

    @property
    def started(self):
        """Bytes towards the next head have arrived (the head's deadline runs)."""
        return bool(self.buffer) or self._blank > 0

    def feed(self, data):
        self.buffer += data

    def next_head(self):
        buf = self.buffer
        if not buf and not self._blank:     # nothing yet (every keep-alive wait): no regex
            return None
        skip = _skip_blank_lines(buf)
        if skip:
            del buf[:skip]
            self._blank += skip
            self._searched = 0
        if self._blank > MAX_HEAD_BYTES:
            raise RemoteProtocolError("request head larger than %d bytes" % MAX_HEAD_BYTES, 431)
        if not buf:
            return None
        head = parse_request_head(buf, self._searched)
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


def parse_response_head(buf, request_method, start=0):
    """Parse one response head at the start of buf; None while incomplete.

    Framing as _response_framing says. Raises RemoteProtocolError(status_hint=502) for
    anything malformed or oversized.
    """
    opened = _open_head(buf, start, _STATUS_LINE, "response", 502, _bad_response)
    if opened is None:
        return None
    match, version, fields, special, tokens, length = opened
    if version[0] != 1:
        raise _bad_response("upstream answered with HTTP version %d.%d" % version)
    status = int(match.group(3))
    if status < 100:
        raise _bad_response("status code %d below 100" % status)
    framing, content_length = _response_framing(status, request_method, tokens, special)
    keep_alive, connection = _keep_alive(version, tokens)
    return ResponseHead(
        status=status, reason=match.group(4) or b"", version=version,
        headers=_end_to_end(fields, connection), framing=framing,
        content_length=content_length,
        keep_alive=keep_alive and framing is not Framing.UNTIL_CLOSE, length=length)


def _via(version, pseudonym=VIA):
    return b"Via: %d.%d %s\r\n" % (version[0], version[1], pseudonym)


def _framing_field(framing, content_length):
    if framing is Framing.LENGTH:
        return b"Content-Length: %d\r\n" % content_length
    if framing is Framing.CHUNKED:
        return b"Transfer-Encoding: chunked\r\n"
    return b""


def render_request_head(head, absolute_form, via=VIA, extra=b""):
    """The head to send to the next hop, always as HTTP/1.1, with our Via entry (`via`:
    our pseudonym, the loop guard's token) behind the client's; `extra`: field lines for
    the next hop only (the -f proxy's Proxy-Authorization).

    absolute_form=True for an upstream proxy ("GET http://host/path"), False for the
    origin ("GET /path"). CONNECT is rendered in authority form either way. The body
    keeps its framing kind: Content-Length as is, chunked re-encoded by the caller.
    """
    if head.is_connect:
        target = head.authority
    elif absolute_form:
        target = b"http://" + head.authority + head.path
    else:
        target = head.path
    parts = [head.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nHost: ", head.authority, b"\r\n"]
    for name, value in head.headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(_framing_field(head.framing, head.content_length))
    parts.append(_via(head.version, via))
    if extra:
        parts.append(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def render_response_head(resp, framing, keep_alive, client_version=(1, 1)):
    """The head to send to the client, as HTTP/1.1, with the body framed as `framing`.

    framing is the framing towards the client: LENGTH (as received), CHUNKED (re-encoded),
    UNTIL_CLOSE (raw, then close) or NONE. keep_alive says whether we keep the client
    connection; an HTTP/1.0 client is told so explicitly.
    """
    parts = [b"HTTP/1.1 %d " % resp.status, resp.reason, b"\r\n"]
    for name, value in resp.headers:
        parts += (name, b": ", value, b"\r\n")
    if framing is Framing.NONE:
        # HEAD and 304 answers may say how long the GET answer would be.
        if resp.content_length and resp.status >= 200 and resp.status != 204:
            parts.append(b"Content-Length: %d\r\n" % resp.content_length)
    else:
        parts.append(_framing_field(framing, resp.content_length))
    parts.append(_via(resp.version))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    elif client_version < (1, 1):
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def render_informational(resp):
    """A 1xx answer passed on to an HTTP/1.1 client (RFC 9110 15.2), hop-by-hop fields removed."""
    parts = [b"HTTP/1.1 %d " % resp.status, resp.reason, b"\r\n"]
    for name, value in resp.headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


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

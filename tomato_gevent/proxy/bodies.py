"""Message bodies between two sockets: gevent I/O for the HTTP session (http_session.py).

    relay_length(src, pending, length, dst)            exactly `length` bytes
    relay_chunked(src, pending, dst, encode, hint)     a chunked body, re-chunked or raw payload
    relay_until_close(src, pending, dst, encode)       until src closes, raw or chunk-encoded
    relay_response_body(response, framing, src, pending, dst)
                                                       the answer's body as framing says

`pending` is the bytearray of bytes already read from src (consumed first; what lies beyond
the body stays in it). Errors reading src propagate as OSError / EOFError (and
RemoteProtocolError for a bad chunked body); errors writing dst as SendFailed, so the caller
knows which side went away. Every recv is at most RELAY_RECV_BYTES, allocated per call: a
slow body holds no buffer while it waits; each wait is limited by src's own timeout, as
gevent's recv would limit it (socket_io.recv: no gevent Timeout object per wait). Each
returns the bytes it sent.
"""
from ..http1 import chunked
from ..http1.http import Framing
from .outbound import RELAY_RECV_BYTES
from .socket_io import recv, send_all


class SendFailed(Exception):
    """A relay could not write to its destination (which went away); __cause__ says why."""


def _send(dst, data):
    try:
        send_all(dst, data)
    except OSError as e:
        raise SendFailed() from e


def relay_response_body(response, framing, src, pending, dst):
    """The body of `response` from src to dst, sent as `framing` (exchange.client_framing)."""
    if response.framing is Framing.LENGTH:
        return relay_length(src, pending, response.content_length, dst)
    if response.framing is Framing.CHUNKED:
        return relay_chunked(src, pending, dst, encode=framing is Framing.CHUNKED, status_hint=502)
    if response.framing is Framing.UNTIL_CLOSE:
        return relay_until_close(src, pending, dst, encode=framing is Framing.CHUNKED)
    return 0


def relay_length(src, pending, length, dst):
    """Copy exactly `length` body bytes; pending (bytearray or None) is consumed first and
    keeps whatever lies beyond the body. Raises EOFError if src closes early."""
    sent = 0
    if pending:
        take = min(len(pending), length)
        _send(dst, pending[:take])
        del pending[:take]
        sent = take
    left = length - sent
    timeout = src.timeout
    while left:
        data = recv(src, min(left, RELAY_RECV_BYTES), timeout)
        if not data:
            raise EOFError("connection closed %d bytes before the end of the body" % left)
        _send(dst, data)
        left -= len(data)
    return length


def relay_chunked(src, pending, dst, encode, status_hint):
    """Copy a chunked body, re-encoded as chunks (encode) or as raw payload; bytes
    beyond its end are left in pending."""
    decoder = chunked.ChunkedDecoder(status_hint)
    data = bytes(pending)
    pending.clear()
    sent = 0
    while True:
        if data:
            pieces = decoder.feed(data)
            if pieces:
                out = b"".join(chunked.encode_chunk(p) for p in pieces) if encode else b"".join(pieces)
            else:
                out = b""
            del pieces
            if decoder.done:
                if encode:
                    out += chunked.LAST_CHUNK
                pending += decoder.unused
            if out:
                _send(dst, out)
                sent += len(out)
            if decoder.done:
                return sent
        data = recv(src, RELAY_RECV_BYTES, src.timeout)
        if not data:
            raise EOFError("connection closed inside a chunked body")


def relay_until_close(src, pending, dst, encode):
    """Copy until src closes (a response without length); chunk-encode it if asked."""
    sent = 0
    if pending:
        data = bytes(pending)
        pending.clear()
        out = chunked.encode_chunk(data) if encode else data
        _send(dst, out)
        sent += len(out)
    while True:
        data = recv(src, RELAY_RECV_BYTES, src.timeout)
        if not data:
            break
        out = chunked.encode_chunk(data) if encode else data
        _send(dst, out)
        sent += len(out)
    if encode:
        _send(dst, chunked.LAST_CHUNK)
        sent += len(chunked.LAST_CHUNK)
    return sent

"""Fuzz the proxy's HTTP side: the head parsers, the chunked decoder and the front door.

- parsers: any bytes give None, a head, or RemoteProtocolError; feeding the same bytes
  to a RequestReader in any split gives the same answer as parsing them whole;
- chunked decoder: any bytes give payload pieces or RemoteProtocolError, the same in
  any split;
- front door: random and mutated requests (HTTP, CONNECT, SOCKS5 greetings, blank
  lines) sent to a proxy on 127.0.0.1:0 always get a well-formed HTTP answer or a
  close, and never make a greenlet die (the hub's error handler is watched).
Mutations start from well-formed requests, since random bytes rarely get past the
request line.
"""
import ipaddress
import time

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer
from hypothesis import given
from hypothesis import strategies as st

from tomato_gevent.errors import RemoteProtocolError
import re

from tomato_gevent.http1 import chunked, fields, http, targets
from tomato_gevent.proxy.server import ProxyServer
from tomato_gevent.rules import RuleSet, parse_rules

REQUESTS = [
    b"GET http://origin.test:{port}/a HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:{port}/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST http://origin.test:{port}/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST http://origin.test:{port}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT http://origin.test:{port}/ HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
    b"CONNECT origin.test:{port} HTTP/1.1\r\n\r\n",
    b"GET http://ads.test/ HTTP/1.1\r\n\r\n",
    b"\r\n\r\nGET http://origin.test:{port}/ HTTP/1.1\n\n",
    b"\x05\x01\x00",
    b"\x05\x01\x00\x05\x01\x00\x03\x0borigin.test\x1f\x90",
]


@st.composite
def mutated(draw, corpus):
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b"\n", b":", b" ", b"\x00", b"\x0b", b";",
                                                b",", b"chunked", b"0", b"ffffffff", b"\x05"]))
        elif data:
            del data[at:at + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def inputs(corpus):
    return st.one_of(mutated(corpus), st.binary(max_size=300))


PARSE_CORPUS = [r.replace(b"{port}", b"80") for r in REQUESTS]


def outcome(parse, data):
    try:
        head = parse(data)
    except RemoteProtocolError as e:
        assert e.status_hint in (400, 431, 505)
        return ("error",)
    return None if head is None else ("head", head.method, head.host, head.port, head.framing)


@given(inputs(PARSE_CORPUS), st.lists(st.integers(1, 50), max_size=10))
def test_request_head_parser_and_reader_agree_in_any_split(data, cuts):
    whole = outcome(http.parse_request_head, data)
    reader = http.RequestReader()
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(data[pos:pos + cut])
        pos += cut
    pieces.append(data[pos:])
    got = None
    for piece in pieces:
        reader.feed(piece)
        got = outcome(lambda _: reader.next_head(), None)
        if got is not None:
            break
    if whole is None:
        assert got is None
    else:
        assert got == whole


def whole_outcome(parse, *args):
    try:
        return parse(*args)
    except RemoteProtocolError as e:
        return ("error", e.status_hint, str(e))


@given(inputs(PARSE_CORPUS + [b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nX-A:  v \t\r\nConnection: x\r\n"
                              b"X: y\r\nx: z\r\nProxy-Authorization: Basic QQ==\r\n\r\n"]))
def test_fast_paths_give_what_the_careful_paths_give(data):
    # start=1 takes the careful way to split a head (the fast one needs a first look);
    # every field of the head must be the same, and so must every refusal.
    assert whole_outcome(http.parse_request_head, data) == whole_outcome(http.parse_request_head, data, 1)
    answer = data.replace(b"GET http://a.test/", b"HTTP/1.1 200", 1)
    assert (whole_outcome(http.parse_response_head, answer, "GET")
            == whole_outcome(http.parse_response_head, answer, "GET", 1))


# The field section's grammar as regexps (fields.py's _BLOCK and _PAIRS: what scan implemented
# before it checked the grammar with bytes methods), and the regenerated lines cut out by one more.
_REGENERATED_LINE = re.compile(
    rb"^(?:" + b"|".join(re.escape(name) for name in sorted(fields.REGENERATED)) + rb"):[^\n]*\n",
    re.IGNORECASE | re.MULTILINE)


def regexp_scan(block):
    if fields._BLOCK.fullmatch(block) is None:
        return "refused"
    special, regenerated = {}, False
    for name, value in fields._PAIRS.findall(block):
        lname = name.lower()
        if lname in fields.REGENERATED:
            regenerated = True
            if lname in fields.FRAMING_FIELDS:
                special.setdefault(lname, []).append(value)
    return special, (_REGENERATED_LINE.sub(b"", block) if regenerated else block)


def bad(msg):
    return RemoteProtocolError(msg, 400)


def scan_outcome(block, seen=None):
    try:
        return fields.scan(block, bad, seen)
    except RemoteProtocolError:
        return "refused"


_NAMES = st.sampled_from([b"Host", b"host", b"HOST", b"Content-Length", b"content-length", b"Connection",
                          b"Proxy-Connection", b"TE", b"te", b"Trailer", b"Transfer-Encoding", b"Upgrade",
                          b"Keep-Alive", b"Expect", b"Proxy-Authorization", b"Proxy-Authenticate", b"X-A",
                          b"Accept", b"tex", b"hostx", b"", b" Host", b"Host ", b"Ho st", b"H\x00st", b"\xe9"])
_VALUES = st.one_of(st.sampled_from([b"", b" ", b"\t", b" a ", b"a\tb", b"keep-alive", b"5", b" 5 , 5",
                                     b"\xe9\xff", b"a\x00b", b"a\rb", b"a\nb", b"\x7f", b"a:b"]),
                    st.binary(max_size=8))
_ENDS = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"", b"\r\r\n"])


@st.composite
def field_blocks(draw):
    lines = draw(st.lists(st.tuples(_NAMES, st.sampled_from([b":", b":", b":", b"", b"::"]), _VALUES, _ENDS),
                          max_size=6))
    return b"".join(name + colon + value + end for name, colon, value, end in lines)


@given(st.one_of(field_blocks(), st.binary(max_size=60)))
def test_field_scan_agrees_with_the_grammar_as_regexps(block):
    # Every field (special values, the lines that go on) and every refusal as the regexps say;
    # asked twice, since the second time each name comes from the table of names seen.
    assert scan_outcome(block) == regexp_scan(block)
    assert scan_outcome(block) == regexp_scan(block)
    # With a connection's table of lines seen: the first time the lines are learnt, the
    # second time a valid block is answered from the table alone.
    seen = {}
    assert scan_outcome(block, seen) == regexp_scan(block)
    assert scan_outcome(block, seen) == regexp_scan(block)


@given(st.lists(field_blocks(), max_size=6))
def test_field_scan_with_a_table_agrees_with_the_grammar_in_any_sequence(blocks):
    # Lines learnt from earlier blocks (valid or not) never change the answer for a later one.
    seen = {}
    for block in blocks + blocks:
        assert scan_outcome(block, seen) == regexp_scan(block)
    assert len(seen) <= fields.LINES_REMEMBERED


@given(st.from_regex(rb"\A[Hh][Tt][Tt][Pp]://[a-zA-Z0-9.:%@\[\]_~-]{0,12}(:[0-9]{0,6})?[/?#]?[!-~]{0,12}\Z"))
def test_usual_targets_parse_as_the_careful_parser_says(target):
    assert (whole_outcome(targets.parse_target, "GET", target)
            == whole_outcome(targets.parse_target_careful, "GET", target))


@given(st.one_of(mutated([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                          b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n",
                          b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"]),
                 st.binary(max_size=200)),
       st.sampled_from(["GET", "HEAD", "CONNECT"]))
def test_response_head_parser_answers_or_refuses_with_502(data, method):
    try:
        head = http.parse_response_head(data, method)
    except RemoteProtocolError as e:
        assert e.status_hint == 502
        return
    if head is not None:
        assert 100 <= head.status <= 999 and head.length <= len(data)


@given(st.one_of(mutated([b"5\r\nhello\r\n0\r\n\r\n", b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nnext",
                          b"A\nabcdefghij\n0\n\n"]),
                 st.binary(max_size=200)),
       st.lists(st.integers(1, 20), max_size=8))
def test_chunked_decoder_is_the_same_in_any_split(data, cuts):
    def decode(pieces):
        decoder = chunked.ChunkedDecoder()
        out = b""
        try:
            for piece in pieces:
                out += b"".join(bytes(p) for p in decoder.feed(piece))
                if decoder.done:
                    return ("done", out, decoder.unused)
        except RemoteProtocolError as e:
            assert e.status_hint == 400
            return ("error",)
        return ("more", out)
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(data[pos:pos + cut])
        pos += cut
    pieces.append(data[pos:])
    whole = decode([data])
    split = decode(pieces)
    if whole[0] == "done" and split[0] == "done":
        # The split run stops at the piece holding the end: its unused is a prefix.
        assert split[1] == whole[1] and whole[2].startswith(split[2])
    else:
        assert split == whole


# -- the front door ---------------------------------------------------------------------------
class Resolver:
    def resolve(self, host):
        return [ipaddress.ip_address("127.0.0.1")]


def origin_handler(sock, address):
    buf = b""
    sock.settimeout(2)
    try:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(4096)
            if not data:
                return
            buf += data
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    except OSError:
        pass


@pytest.fixture(scope="module")
def front_door():
    origin = StreamServer(("127.0.0.1", 0), origin_handler)
    origin.start()
    proxy = ProxyServer(("127.0.0.1", 0), RuleSet(parse_rules(["block\tads.test"])), resolver=Resolver(),
                        idle_timeout=1.0, tunnel_idle_timeout=1.0)
    proxy.start()
    errors = []
    hub = gevent.get_hub()
    real_handle_error = hub.handle_error

    def record(context, kind, value, tb):
        errors.append((context, kind, value))
        real_handle_error(context, kind, value, tb)
    hub.handle_error = record
    corpus = [r.replace(b"{port}", b"%d" % origin.server_port) for r in REQUESTS]
    yield proxy, corpus, errors
    hub.handle_error = real_handle_error
    proxy.stop(timeout=1)
    origin.stop()


@given(data=st.data())
def test_front_door_answers_well_formed_or_closes(front_door, data):
    proxy, corpus, errors = front_door
    raw = data.draw(inputs(corpus))
    sock = socket.create_connection(("127.0.0.1", proxy.server_port))
    try:
        sock.settimeout(5)
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        sock.close()
    assert not errors, errors
    if got:
        head = http.parse_response_head(got, "GET")
        assert head is not None and 100 <= head.status < 600, got[:200]

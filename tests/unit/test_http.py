"""http1/http.py and chunked.py: request/response heads, hop-by-hop handling, chunked framing."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato_gevent.errors import RemoteProtocolError
from tomato_gevent.http1 import chunked, heads, http
from tomato_gevent.http1.chunked import ChunkedDecoder, encode_chunk
from tomato_gevent.http1.http import (
    MAX_HEAD_BYTES, Framing, parse_request_head,
    parse_response_head, render_request_head, render_response_head, render_simple_response)

GET = (b"GET http://Example.COM:8080/a/b?c=d HTTP/1.1\r\n"
       b"Host: example.com:8080\r\n"
       b"User-Agent: curl/7.88\r\n"
       b"Accept: */*\r\n"
       b"\r\n")


def field_names(rendered):
    lines = rendered.split(b"\r\n")[1:]
    return [line.split(b":", 1)[0].lower() for line in lines if line]


# -- incremental parsing --------------------------------------------------------------
def test_byte_at_a_time_returns_none_until_the_blank_line():
    buf = bytearray()
    results = []
    for i in range(len(GET)):
        buf += GET[i:i + 1]
        results.append(parse_request_head(buf, start=max(len(buf) - 1, 0)))
    assert all(r is None for r in results[:-1])
    head = results[-1]
    assert head == parse_request_head(GET)
    assert head.method == "GET" and head.version == (1, 1)
    assert head.host == "example.com" and head.port == 8080
    assert head.authority == b"Example.COM:8080" and head.path == b"/a/b?c=d"
    assert head.length == len(GET)
    assert head.framing is Framing.NONE and head.keep_alive


def test_length_excludes_body_and_next_request():
    head = parse_request_head(GET + b"GET http://x/ HTTP/1.1\r\n")
    assert head.length == len(GET)


def test_leading_blank_lines_and_bare_lf_are_accepted():
    head = parse_request_head(b"\r\n\r\nGET http://a.test/ HTTP/1.0\nHost: a.test\n\n")
    assert head is not None and head.host == "a.test" and head.version == (1, 0)
    assert head.length == len(b"\r\n\r\nGET http://a.test/ HTTP/1.0\nHost: a.test\n\n")
    assert parse_request_head(b"\r\n\r\n") is None


@pytest.mark.parametrize("target,host,port,path", [
    (b"http://a.test", "a.test", 80, b"/"),
    (b"http://a.test?q=1", "a.test", 80, b"/?q=1"),
    (b"HTTP://A.Test:81/x#frag", "a.test", 81, b"/x"),
    (b"http://[::1]:8080/", "::1", 8080, b"/"),
    (b"http://10.0.0.1:/p", "10.0.0.1", 80, b"/p"),
    (b"http://under_score.test/", "under_score.test", 80, b"/"),
])
def test_absolute_targets(target, host, port, path):
    head = parse_request_head(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (head.host, head.port, head.path) == (host, port, path)


def test_connect_is_authority_form():
    head = parse_request_head(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.is_connect and head.host == "2001:db8::1" and head.port == 443
    assert render_request_head(head, absolute_form=True).startswith(
        b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n")


# -- limits and rejections --------------------------------------------------------------
def test_incomplete_head_over_the_limit_is_431():
    buf = b"GET http://a.test/ HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES
    assert parse_request_head(buf[:MAX_HEAD_BYTES]) is None
    with pytest.raises(RemoteProtocolError) as e:
        parse_request_head(buf)
    assert e.value.status_hint == 431


def test_head_of_exactly_max_bytes_is_accepted_one_more_is_431():
    start = b"GET http://a.test/ HTTP/1.1\r\nX-Big: "
    filler = MAX_HEAD_BYTES - len(start) - 4
    exact = start + b"a" * filler + b"\r\n\r\n"
    assert len(exact) == MAX_HEAD_BYTES
    assert parse_request_head(exact).length == MAX_HEAD_BYTES
    with pytest.raises(RemoteProtocolError) as e:
        parse_request_head(start + b"a" * (filler + 1) + b"\r\n\r\n")
    assert e.value.status_hint == 431


def test_endless_blank_lines_hit_the_limit():
    with pytest.raises(RemoteProtocolError) as e:
        parse_request_head(b"\r\n" * (MAX_HEAD_BYTES // 2 + 1))
    assert e.value.status_hint == 431


def test_field_values_keep_tabs_and_obs_text():
    head = parse_request_head(b"GET http://a.test/ HTTP/1.1\r\nX: a\tb \xe9\r\n\r\n")
    assert head.headers == ((b"X", b"a\tb \xe9"),)


def test_a_known_field_name_without_its_colon_is_refused():
    # The table of names seen says what "Host" is; a line of just that name is still malformed.
    assert parse_request_head(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n").host == "a.test"
    with pytest.raises(RemoteProtocolError) as refused:
        parse_request_head(b"GET http://a.test/ HTTP/1.1\r\nHost\r\n\r\n")
    assert refused.value.status_hint == 400


def test_the_table_of_field_names_is_bounded():
    from tomato_gevent.http1 import fields
    for i in range(fields.NAMES_REMEMBERED + 50):
        fields.scan(b"X-%d: v\r\n" % i, RemoteProtocolError)
    assert len(fields._NAMES) <= fields.NAMES_REMEMBERED
    # Names the table has no room for are still checked, every time.
    assert fields.scan(b"X-New-Name: v\r\n", RemoteProtocolError) == ({}, b"X-New-Name: v\r\n")
    with pytest.raises(RemoteProtocolError):
        fields.scan(b"X New: v\r\n", RemoteProtocolError)


def test_a_connections_table_of_field_lines_is_bounded():
    from tomato_gevent.http1 import fields
    seen = {}
    assert fields.scan(b"Host: a\r\nX: 1\r\n", RemoteProtocolError, seen) == ({b"host": [b"a"]}, b"X: 1\r\n")
    assert seen == {b"Host: a": (b"host", b"a"), b"X: 1": b""}
    long_line = b"X-Long: " + b"v" * fields.LINE_BYTES_REMEMBERED
    fields.scan(long_line + b"\r\n", RemoteProtocolError, seen)
    assert long_line not in seen
    for i in range(fields.LINES_REMEMBERED + 10):
        fields.scan(b"X-%d: v\r\n" % i, RemoteProtocolError, seen)
    assert len(seen) <= fields.LINES_REMEMBERED
    # Lines the table has no room for are still checked, every time.
    with pytest.raises(RemoteProtocolError):
        fields.scan(b"Host: a\r\nX New: v\r\n", RemoteProtocolError, seen)


def test_a_line_that_changes_every_time_does_not_fill_a_connections_table_for_good():
    """An origin's answers on one kept connection: the same lines, and a Date that changes each
    second. After more Dates than the table holds, the next answer's lines are still learned and
    the one after it (the same second) takes the table's path."""
    from tomato_gevent.http1 import fields
    seen = {}
    for second in range(3 * fields.LINES_REMEMBERED):
        passed_on = b"Server: nginx\r\nDate: Sun, 06 Dec 2026 17:%02d:%02d GMT\r\n" % (second // 60, second % 60)
        block = passed_on + b"Content-Length: 5\r\n"
        assert fields.scan(block, RemoteProtocolError, seen) == ({b"content-length": [b"5"]}, passed_on)
        assert all(line in seen for line in block.split(b"\r\n")[:-1]), second
        assert len(seen) <= fields.LINES_REMEMBERED


def test_heads_parsed_from_a_bytearray_hold_bytes():
    # RequestReader parses from its bytearray buffer; the heads it gives must not share it.
    request = parse_request_head(bytearray(b"GET http://a.test:81/x HTTP/1.1\r\nX: y\r\n\r\n"))
    response = parse_response_head(bytearray(b"HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 1\r\n\r\n"), "GET")
    assert [type(v) for v in (request.authority, request.path, request.fields, response.reason,
                              response.fields)] == [bytes] * 5


def test_field_values_lose_their_surrounding_whitespace_only():
    head = parse_request_head(b"GET http://a.test/ HTTP/1.1\r\nX: \t a  b \t \r\nY:\r\n\r\n")
    assert head.headers == ((b"X", b"a  b"), (b"Y", b""))


# A 64 KiB head whose values are runs of spaces: the lazy value regexp that matched a field line
# backtracked over each run once per character (about 15 s of CPU for this head); parsed
# linearly it takes milliseconds. And a bad line after many blank values: a field-section
# regexp in which a blank value matches in several ways tries all their combinations (twelve
# lines took 19 s). Run in a child limited to 5 s of CPU (a bound, not a timing).
_SPACES_PROGRAM = """
from tomato_gevent.http1.http import MAX_HEAD_BYTES, parse_request_head, parse_response_head
filler = b"X: a" + b" " * (MAX_HEAD_BYTES - 200) + b"b\\r\\n"
assert parse_request_head(b"GET http://a.test/ HTTP/1.1\\r\\n" + filler + b"\\r\\n").headers[0][1][-1:] == b"b"
assert parse_response_head(b"HTTP/1.1 200 OK\\r\\n" + filler + b"\\r\\n", "GET").status == 200
from tomato_gevent.errors import RemoteProtocolError
blanks = b"a:   \\r\\n" * 2000 + b"b: \\x01\\r\\n\\r\\n"     # a bad line after many blank values
for head in (b"GET http://a.test/ HTTP/1.1\\r\\n" + blanks, b"HTTP/1.1 200 OK\\r\\n" + blanks):
    try:
        parse_request_head(head) if head.startswith(b"GET") else parse_response_head(head, "GET")
    except RemoteProtocolError:
        pass
    else:
        raise SystemExit("accepted a control character")
"""


def test_long_runs_of_spaces_in_values_cost_linear_time():
    import resource
    import subprocess
    import sys

    def limit_cpu():
        resource.setrlimit(resource.RLIMIT_CPU, (5, 5))
    result = subprocess.run([sys.executable, "-c", _SPACES_PROGRAM], preexec_fn=limit_cpu,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]


def test_response_status_100_is_the_lowest_accepted():
    assert parse_response_head(b"HTTP/1.1 100 Continue\r\n\r\n", "GET").status == 100


# -- the connection's reader: blank lines cost linear time (issue 10.8) -------------------
def test_reader_drops_blank_lines_as_they_arrive():
    reader = http.RequestReader()
    for _ in range(1000):
        reader.feed(b"\r\n")
        assert reader.next_head() is None
        # Nothing is kept to be scanned again: each byte is looked at once.
        assert len(reader.buffer) == 0
    assert reader.started
    reader.feed(b"\r")
    assert reader.next_head() is None and reader.buffer == b"\r"
    reader.feed(b"\nGET http://a.test/ HTTP/1.1\r\n")
    assert reader.next_head() is None and reader.buffer.startswith(b"GET")
    reader.feed(b"\r\nabc")
    head = reader.next_head()
    assert head.host == "a.test" and reader.buffer == b"abc" and reader.started
    reader.buffer.clear()
    assert not reader.started


def test_reader_resumes_its_search_where_it_stopped(monkeypatch):
    # Count the bytes searched for the end of the head: with the resume hint the total
    # is linear in the head's size, not quadratic in the number of feeds.
    searched = []
    real_find = heads.find_head_end

    def counting_find(buf, start, first):
        searched.append(len(buf) - max(start - 3, first))
        return real_find(buf, start, first)
    monkeypatch.setattr(heads, "find_head_end", counting_find)
    reader = http.RequestReader()
    reader.feed(b"GET http://a.test/ HTTP/1.1\r\n")
    for _ in range(500):
        reader.feed(b"X: y\r\n")
        assert reader.next_head() is None
    reader.feed(b"\r\n")
    assert reader.next_head() is not None
    assert sum(searched) < 4 * len(b"X: y\r\n") * 501


def test_reader_refuses_endless_blank_lines_with_431():
    reader = http.RequestReader()
    with pytest.raises(RemoteProtocolError) as e:
        for _ in range(MAX_HEAD_BYTES // 2 + 1):
            reader.feed(b"\r\n")
            reader.next_head()
    assert e.value.status_hint == 431


@pytest.mark.parametrize("raw", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",      # TLS to a plain proxy
    b"GET\r\n\r\n",
    b"GET  http://a.test/ HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",                      # origin form: not for a proxy
    b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET https://a.test/ HTTP/1.1\r\n\r\n",
    b"GET ftp://a.test/ HTTP/1.1\r\n\r\n",
    b"GET http://user:pw@a.test/ HTTP/1.1\r\n\r\n",
    b"GET http:///x HTTP/1.1\r\n\r\n",
    b"GET http://a.test:0/ HTTP/1.1\r\n\r\n",
    b"GET http://a.test:70000/ HTTP/1.1\r\n\r\n",
    b"GET http://a.test:8x/ HTTP/1.1\r\n\r\n",
    b"GET http://a b/ HTTP/1.1\r\n\r\n",
    b"GET http://[::1/ HTTP/1.1\r\n\r\n",
    b"CONNECT a.test HTTP/1.1\r\n\r\n",                               # CONNECT needs a port
    b"GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n",       # space before colon
    b"GET http://a.test/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",     # obs-fold
    b"GET http://a.test/ HTTP/1.1\r\nno colon\r\n\r\n",
    b"GET http://a.test/ HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n",
    b"GET http://a.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    # control characters in field values, taken as whitespace by some (issue 10.9)
    b"POST http://a.test/ HTTP/1.1\r\nContent-Length: \x0b36\r\n\r\n",
    b"GET http://a.test/ HTTP/1.1\r\nX: a\x05b\r\n\r\n",
    b"GET http://a.test/ HTTP/1.1\r\nX: \x1f\r\n\r\n",
])
def test_malformed_requests_are_400(raw):
    with pytest.raises(RemoteProtocolError) as e:
        parse_request_head(raw)
    assert e.value.status_hint == 400


def test_other_http_versions_are_505():
    with pytest.raises(RemoteProtocolError) as e:
        parse_request_head(b"GET http://a.test/ HTTP/2.0\r\n\r\n")
    assert e.value.status_hint == 505


# -- semantics -----------------------------------------------------------------------------
@pytest.mark.parametrize("version,fields,keep", [
    (b"1.1", b"", True),
    (b"1.1", b"Connection: close\r\n", False),
    (b"1.1", b"Connection: Keep-Alive, CLOSE\r\n", False),
    (b"1.0", b"", False),
    (b"1.0", b"Connection: keep-alive\r\n", True),
    (b"1.0", b"Proxy-Connection: Keep-Alive\r\n", True),
])
def test_keep_alive(version, fields, keep):
    head = parse_request_head(b"GET http://a.test/ HTTP/" + version + b"\r\n" + fields + b"\r\n")
    assert head.keep_alive is keep


@pytest.mark.parametrize("fields,framing,length", [
    (b"", Framing.NONE, 0),
    (b"Content-Length: 0\r\n", Framing.NONE, 0),
    (b"Content-Length: 12\r\n", Framing.LENGTH, 12),
    (b"Content-Length: 12, 12\r\nContent-Length: 12\r\n", Framing.LENGTH, 12),
    (b"Transfer-Encoding: Chunked\r\n", Framing.CHUNKED, 0),
])
def test_request_body_framing(fields, framing, length):
    head = parse_request_head(b"POST http://a.test/ HTTP/1.1\r\n" + fields + b"\r\n")
    assert (head.framing, head.content_length) == (framing, length)


def test_hop_by_hop_fields_are_not_forwarded():
    raw = (b"POST http://a.test/x HTTP/1.1\r\n"
           b"Host: wrong.test\r\n"
           b"Connection: keep-alive, X-Secret-Hop\r\n"
           b"X-Secret-Hop: 1\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"Proxy-Authorization: Basic c2VjcmV0\r\n"
           b"Keep-Alive: timeout=5\r\n"
           b"TE: trailers\r\n"
           b"Trailer: X-Checksum\r\n"
           b"Upgrade: websocket\r\n"
           b"Expect: 100-continue\r\n"
           b"Transfer-Encoding: chunked\r\n"
           b"Cookie: a=b\r\n"
           b"X-End-To-End: yes\r\n"
           b"\r\n")
    head = parse_request_head(raw)
    assert head.expect_continue
    out = render_request_head(head, absolute_form=False)
    assert out.startswith(b"POST /x HTTP/1.1\r\nHost: a.test\r\n")
    assert field_names(out) == [b"host", b"cookie", b"x-end-to-end", b"transfer-encoding", b"via"]
    assert b"Transfer-Encoding: chunked\r\n" in out and b"Via: 1.1 tomato\r\n" in out


def test_rendered_request_reparses_to_the_same_head():
    head = parse_request_head(GET.replace(b"GET", b"PUT").replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\n"))
    again = parse_request_head(render_request_head(head, absolute_form=True))
    assert (again.method, again.host, again.port, again.path, again.framing, again.content_length) == \
        (head.method, head.host, head.port, head.path, head.framing, head.content_length)
    assert again.headers == head.headers + ((b"Via", b"1.1 tomato"),)
    assert render_request_head(head, absolute_form=False).startswith(b"PUT /a/b?c=d HTTP/1.1\r\n")


def test_http10_request_is_sent_as_11_with_its_via():
    head = parse_request_head(b"GET http://a.test/ HTTP/1.0\r\n\r\n")
    out = render_request_head(head, absolute_form=False)
    assert out == b"GET / HTTP/1.1\r\nHost: a.test\r\nVia: 1.0 tomato\r\n\r\n"


# -- responses -------------------------------------------------------------------------------
@pytest.mark.parametrize("method,status_line,fields,framing,keep", [
    ("GET", b"HTTP/1.1 200 OK", b"Content-Length: 5\r\n", Framing.LENGTH, True),
    ("GET", b"HTTP/1.1 200 OK", b"Content-Length: 0\r\n", Framing.LENGTH, True),
    ("GET", b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", Framing.CHUNKED, True),
    ("GET", b"HTTP/1.1 200 OK", b"", Framing.UNTIL_CLOSE, False),
    ("GET", b"HTTP/1.0 200 OK", b"Content-Length: 5\r\n", Framing.LENGTH, False),
    ("GET", b"HTTP/1.0 200 OK", b"Content-Length: 5\r\nConnection: keep-alive\r\n", Framing.LENGTH, True),
    ("GET", b"HTTP/1.1 200 OK", b"Content-Length: 5\r\nConnection: close\r\n", Framing.LENGTH, False),
    ("HEAD", b"HTTP/1.1 200 OK", b"Content-Length: 5\r\n", Framing.NONE, True),
    ("GET", b"HTTP/1.1 204 No Content", b"", Framing.NONE, True),
    ("GET", b"HTTP/1.1 304 Not Modified", b"Content-Length: 5\r\n", Framing.NONE, True),
    ("GET", b"HTTP/1.1 100 Continue", b"", Framing.NONE, True),
    ("GET", b"HTTP/1.1 103", b"Link: </a>\r\n", Framing.NONE, True),
    ("CONNECT", b"HTTP/1.1 200 Connection established", b"", Framing.NONE, True),
    ("CONNECT", b"HTTP/1.1 403 Forbidden", b"Content-Length: 5\r\n", Framing.LENGTH, True),
])
def test_response_framing(method, status_line, fields, framing, keep):
    raw = status_line + b"\r\n" + fields + b"\r\n"
    resp = parse_response_head(raw, method)
    assert (resp.framing, resp.keep_alive, resp.length) == (framing, keep, len(raw))


def test_response_byte_at_a_time():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\n\r\nabc"
    found = [parse_response_head(raw[:i], "GET") for i in range(len(raw) + 1)]
    first = next(i for i, r in enumerate(found) if r is not None)
    assert first == len(raw) - 3 and found[first].status == 200


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    # status codes below 100 would pass as 1xx (issue 10.9)
    b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 000 Zero\r\n\r\n",
    # control characters in field values (issue 10.9)
    b"HTTP/1.1 200 OK\r\nContent-Length: \x0b5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x05b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n",
    # a coding the proxy would leave on the body while dropping its label (issue 10.9)
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
])
def test_malformed_responses_are_502(raw):
    with pytest.raises(RemoteProtocolError) as e:
        parse_response_head(raw, "GET")
    assert e.value.status_hint == 502


def test_oversized_response_head_is_502():
    with pytest.raises(RemoteProtocolError) as e:
        parse_response_head(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES, "GET")
    assert e.value.status_hint == 502


def test_response_rendering_reframes_and_drops_hop_by_hop():
    raw = (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
           b"Proxy-Authenticate: Basic\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n"
           b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
    resp = parse_response_head(raw, "GET")
    chunked = render_response_head(resp, Framing.CHUNKED, keep_alive=True)
    assert chunked == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                       b"Via: 1.1 tomato\r\n\r\n")
    raw_until_close = render_response_head(resp, Framing.UNTIL_CLOSE, keep_alive=False, client_version=(1, 0))
    assert field_names(raw_until_close) == [b"content-type", b"via", b"connection"]
    assert raw_until_close.endswith(b"Connection: close\r\n\r\n")


def test_keep_alive_is_spelled_out_for_http10_clients():
    resp = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "GET")
    out = render_response_head(resp, Framing.LENGTH, keep_alive=True, client_version=(1, 0))
    assert b"Content-Length: 2\r\n" in out and out.endswith(b"Connection: keep-alive\r\n\r\n")


def test_head_answer_keeps_its_content_length():
    resp = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD")
    assert b"Content-Length: 1234\r\n" in render_response_head(resp, Framing.NONE, keep_alive=True)


def test_informational_answer_rendering():
    resp = parse_response_head(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nConnection: x\r\n\r\n", "GET")
    assert http.render_informational(resp) == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"


def test_simple_response_is_a_well_framed_answer():
    raw = render_simple_response(502, "cannot connect to a.test:80: Connection refused")
    resp = parse_response_head(raw, "GET")
    assert resp.status == 502 and not resp.keep_alive
    assert raw[resp.length:] == b"cannot connect to a.test:80: Connection refused\n"
    assert resp.content_length == len(raw) - resp.length
    kept = parse_response_head(render_simple_response(403, "blocked", keep_alive=True), "GET")
    assert kept.keep_alive and kept.status == 403


# -- chunked coding ----------------------------------------------------------------------------
def decode_all(decoder, data, step):
    out = bytearray()
    for i in range(0, len(data), step):
        for piece in decoder.feed(data[i:i + step]):
            out += piece
        if decoder.done:
            break
    return bytes(out)


def test_chunked_with_extensions_and_trailers_byte_at_a_time():
    body = (b"5;name=value\r\nhello\r\n"
            b"6\r\n world\r\n"
            b"0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\nNEXT")
    for step in (1, 2, 3, 7, len(body)):
        decoder = ChunkedDecoder()
        out = bytearray()
        unused = b""
        for i in range(0, len(body), step):
            for piece in decoder.feed(body[i:i + step]):
                out += piece
            if decoder.done:
                unused = decoder.unused + body[i + step:]
                break
        assert bytes(out) == b"hello world" and decoder.done and unused == b"NEXT", step


def test_chunked_accepts_bare_lf_and_upper_case_hex():
    decoder = ChunkedDecoder()
    assert decode_all(decoder, b"A\nabcdefghij\n0\n\n", 1) == b"abcdefghij" and decoder.done


@pytest.mark.parametrize("raw", [
    b"z\r\n",
    b"\r\n",
    b"5\r\nhelloX\r\n",
    b"-1\r\n",
    b"11111111111111111\r\n",        # 17 hex digits
    b"5" + b" " * (chunked.MAX_CHUNK_LINE_BYTES + 1),
])
def test_chunked_errors(raw):
    decoder = ChunkedDecoder(status_hint=502)
    with pytest.raises(RemoteProtocolError) as e:
        decode_all(decoder, raw, 1)
    assert e.value.status_hint == 502


def test_chunked_trailer_section_is_bounded():
    decoder = ChunkedDecoder()
    with pytest.raises(RemoteProtocolError):
        decode_all(decoder, b"0\r\n" + b"X: y\r\n" * (chunked.MAX_TRAILER_BYTES // 6 + 1), 4096)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.binary(max_size=300), max_size=8),
       cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_chunked_round_trip_any_split(pieces, cuts):
    wire = b"".join(encode_chunk(p) for p in pieces) + chunked.LAST_CHUNK + b"tail"
    decoder = ChunkedDecoder()
    out = bytearray()
    pos, i = 0, 0
    while not decoder.done:
        step = cuts[i % len(cuts)]
        i += 1
        for piece in decoder.feed(wire[pos:pos + step]):
            out += piece
        pos += step
        assert pos <= len(wire) + 50
    assert bytes(out) == b"".join(pieces)
    assert decoder.unused + wire[pos:] == b"tail"


def test_heads_made_on_the_usual_paths_have_every_field():
    # The usual request and answer are made with tuple.__new__ (no named tuple __new__ to
    # check the count): a field added to the class must be added there too.
    request = http.parse_request_head(b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    response = http.parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET")
    assert len(request) == len(http.RequestHead._fields) and request.proxy_authorization is None
    assert len(response) == len(http.ResponseHead._fields) and response.length == 38


@pytest.mark.parametrize("block,expected", [
    (b"Connection: Keep-Alive\r\n", {b"connection": [b"keep-alive"]}),      # one token: the short way
    (b"Connection:\r\n", {b"connection": []}),
    (b"Connection: close, TE\r\n", {b"connection": [b"close", b"te"]}),
    (b"Connection: close\r\nConnection: upgrade\r\n", {b"connection": [b"close", b"upgrade"]}),
    (b"Transfer-Encoding: gzip ,, chunked\r\n", {b"transfer-encoding": [b"gzip", b"chunked"]}),
])
def test_token_lists_of_scanned_fields(block, expected):
    from tomato_gevent.http1 import fields
    table = {}
    for seen in (None, table, table):   # the careful scan, then a table's new and known block
        special, _ = fields.scan(block, RemoteProtocolError, seen)
        assert fields.token_lists(special) == expected

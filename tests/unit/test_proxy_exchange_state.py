"""proxy/exchange_state.py: the order of an exchange (retry, 1xx, 100-continue) as tables of
events and answers, no sockets (h11's test_connection style)."""
import pytest

from tomato_gevent.errors import NextHopError, ProtocolError
from tomato_gevent.http1 import http
from tomato_gevent.http1.http import Framing, parse_request_head, parse_response_head
from tomato_gevent.proxy.exchange_state import FINAL, INTERIM, RETRY, ExchangeState


def request(text):
    return parse_request_head(text.encode("latin-1").replace(b"\n", b"\r\n") + b"\r\n")


def response(text, method="GET"):
    return parse_response_head(text.encode("latin-1").replace(b"\n", b"\r\n") + b"\r\n", method)


GET = "GET http://a.test/ HTTP/1.1\n"
GET10 = "GET http://a.test/ HTTP/1.0\n"
POST = "POST http://a.test/ HTTP/1.1\nContent-Length: 3\n"
PUT_CONTINUE = "PUT http://a.test/ HTTP/1.1\nContent-Length: 3\nExpect: 100-continue\n"
PUT_CONTINUE10 = "PUT http://a.test/ HTTP/1.0\nContent-Length: 3\nExpect: 100-continue\n"
OK = "HTTP/1.1 200 OK\nContent-Length: 3\n"
OK_CLOSE = "HTTP/1.1 200 OK\nContent-Length: 3\nConnection: close\n"
HINTS = "HTTP/1.1 103 Early Hints\nLink: </s>\n"
CONTINUE = "HTTP/1.1 100 Continue\n"
TIMEOUT_NOTICE = "HTTP/1.1 408 Request Timeout\nConnection: close\nContent-Length: 0\n"
RESET = ConnectionResetError(104, "Connection reset by peer")

# (request, [(event, argument, expected)]): expected is what the call returns; for lost()
# RETRY (it returned) or the status_hint of the error it raised; for response() (kind,
# first bytes of the data or None), or the status_hint it raised.
CASES = {
    "plain GET, kept upstream": (GET, [
        ("connected", False, None),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", False, True)]),
    "the server closes: not kept": (GET, [
        ("connected", False, None),
        ("response", OK_CLOSE, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", False, False)]),
    "bytes behind the answer: not kept": (GET, [
        ("connected", False, None),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", True, False)]),
    "stale reused connection: GET retried once on a fresh one": (GET, [
        ("connected", True, None),
        ("lost", None, RETRY),
        ("connected", False, None),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", False, True)]),
    "reset on a reused connection: retried": (GET, [
        ("connected", True, None),
        ("lost", RESET, RETRY),
        ("connected", False, None),
        ("lost", RESET, 502)]),
    "a fresh connection that fails is not retried": (GET, [
        ("connected", False, None),
        ("lost", None, 502)]),
    "never more than one retry, even on another reused connection": (GET, [
        ("connected", True, None),
        ("lost", None, RETRY),
        ("connected", True, None),
        ("lost", None, 502)]),
    "POST is not repeated behind the client's back (RFC 9110 9.2.2)": (POST, [
        ("connected", True, None),
        ("lost", None, 502)]),
    "100-continue is ours, sent once across a retry": (PUT_CONTINUE, [
        ("connected", False, http.CONTINUE),
        ("response", CONTINUE, (INTERIM, None)),      # the origin's own 100 is swallowed
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", False, True)]),
    "no 100 for HTTP/1.0": (PUT_CONTINUE10, [
        ("connected", False, None),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n"))]),
    "1xx passed to HTTP/1.1 clients, then the answer": (GET, [
        ("connected", False, None),
        ("response", HINTS, (INTERIM, b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n")),
        ("response", HINTS, (INTERIM, b"HTTP/1.1 103 Early Hints\r\n")),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n"))]),
    "1xx swallowed for HTTP/1.0 clients": (GET10, [
        ("connected", False, None),
        ("response", HINTS, (INTERIM, None)),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n")),
        ("finished", False, True)]),
    "a 408 on a reused connection is its close notice: GET retried": (GET, [
        ("connected", True, None),
        ("response", TIMEOUT_NOTICE, (RETRY, None)),
        ("connected", False, None),
        ("response", OK, (FINAL, b"HTTP/1.1 200 OK\r\n"))]),
    "a 408 on a fresh connection is the answer": (GET, [
        ("connected", False, None),
        ("response", TIMEOUT_NOTICE, (FINAL, b"HTTP/1.1 408 Request Timeout\r\n")),
        ("finished", False, False)]),
    "a 408 after a retry is the answer": (GET, [
        ("connected", True, None),
        ("lost", None, RETRY),
        ("connected", True, None),
        ("response", TIMEOUT_NOTICE, (FINAL, b"HTTP/1.1 408 "))]),
    "a 408 to a POST on a reused connection is the answer": (POST, [
        ("connected", True, None),
        ("response", TIMEOUT_NOTICE, (FINAL, b"HTTP/1.1 408 "))]),
    "101 is never asked for: 502": (GET, [
        ("connected", False, None),
        ("response", "HTTP/1.1 101 Switching Protocols\nUpgrade: x\n", 502)]),
}


def run(request_text, steps, forward=False):
    state = ExchangeState(request(request_text), forward)
    for event, argument, expected in steps:
        if event == "connected":
            assert state.connected(argument) == expected, event
        elif event == "lost":
            if expected == RETRY:
                assert state.lost(argument) is None
            else:
                with pytest.raises(NextHopError) as e:
                    state.lost(argument)
                assert e.value.status_hint == expected
        elif event == "response":
            head = response(argument)
            if isinstance(expected, int):
                with pytest.raises(ProtocolError) as e:
                    state.response(head)
                assert e.value.status_hint == expected
            else:
                kind, data = state.response(head)
                assert kind == expected[0], (event, argument)
                if expected[1] is None:
                    assert data is None
                else:
                    assert data.startswith(expected[1]), data
        else:
            assert state.finished(argument) is expected, (event, argument)
    return state


@pytest.mark.parametrize("name", sorted(CASES))
def test_exchange_order(name):
    run(*CASES[name])


@pytest.mark.parametrize("request_text,check", [(GET, False), (GET10, False), (POST, True),
                                                ("DELETE http://a.test/ HTTP/1.1\n", False),
                                                ("PATCH http://a.test/ HTTP/1.1\n", True),
                                                (PUT_CONTINUE, True)])
def test_kept_connections_are_peeked_only_where_a_retry_is_not_allowed(request_text, check):
    assert ExchangeState(request(request_text), False).check_kept is check


@pytest.mark.parametrize("forward,first_line", [
    (False, b"GET / HTTP/1.1\r\nHost: a.test\r\n"),
    (True, b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"),   # the -f proxy gets absolute form
])
def test_request_bytes_for_origin_and_upstream_proxy(forward, first_line):
    assert ExchangeState(request(GET), forward).request_bytes.startswith(first_line)


@pytest.mark.parametrize("request_text,answer,framing,keep_client,whole", [
    (GET, OK, Framing.LENGTH, True, {2: False, 3: True, 9: True}),
    (GET, "HTTP/1.1 204 No Content\n", Framing.NONE, True, {0: True}),
    (GET, "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", Framing.CHUNKED, True, {0: False, 99: False}),
    (GET10, "HTTP/1.1 200 OK\n", Framing.UNTIL_CLOSE, False, {99: False}),
])
def test_final_answer_framing_and_one_send(request_text, answer, framing, keep_client, whole):
    state = run(request_text, [("connected", False, None), ("response", answer, (FINAL, b"HTTP/1.1 "))])
    assert state.framing is framing and state.keep_client is keep_client
    for available, expected in whole.items():
        assert state.whole_body_in(available) is expected, available


@pytest.mark.parametrize("steps", [
    [("response", OK)],                                     # before a connection
    [("finished", False)],
    [("connected", False), ("connected", False)],
    [("connected", False), ("finished", False)],            # before the answer
    [("connected", False), ("response", OK), ("lost", None)],   # the answer is being relayed
    [("connected", False), ("response", OK), ("finished", False), ("finished", False)],
])
def test_calls_out_of_order_are_bugs(steps):
    state = ExchangeState(request(GET), False)
    *before, (event, argument) = steps
    for earlier, value in before:
        getattr(state, earlier)(response(value) if earlier == "response" else value)
    with pytest.raises(RuntimeError):
        getattr(state, event)(response(argument) if event == "response" else argument)

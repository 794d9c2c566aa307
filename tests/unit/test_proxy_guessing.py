"""Password guessing and idle unauthenticated connections (issue 23 item 5): failed logins
from one address are spaced out across its connections and close the connection after a
few, the log counts them per client per interval, and connections that never log in cannot
keep a correct login out (--max-clients) or stay past the login deadline."""
import base64
import io
import ipaddress
import logging

import pytest

from tomato_gevent.proxy import server as server_mod, socks5, socks_session
from tomato_gevent.proxy.access_log import AccessLog
from tomato_gevent.proxy.auth import parse_auth_lines
from tomato_gevent.proxy.client_policy import Admission
from tomato_gevent.proxy.guess_throttle import GuessThrottle

from .proxy_clients import HttpClient, SocksClient, connect, get
from .proxy_doubles import FakeResolver, wait_for

A = ipaddress.ip_address
ME = A("10.0.0.9")


# -- the throttle, with a clock in hand -----------------------------------------------------------
def test_a_few_failures_are_free_then_turns_are_spaced_and_shared_by_all_connections():
    throttle = GuessThrottle(free=3, step=1.0, max_step=4.0, max_wait=10.0)
    for t in range(3):
        assert throttle.turn(ME, b"guess", 100.0 + t) == 0.0
        throttle.failed(ME, "root", 100.0 + t)
    # The third failure at t=102 set the next turn at 103; five connections asking at once
    # are queued one step apart instead of all checking now.
    assert [throttle.turn(ME, b"guess", 102.0) for _ in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    throttle.failed(ME, "root", 103.0)             # 4th failure: the step doubles (2 s)
    waits = [throttle.turn(ME, b"guess", 103.0) for _ in range(4)]
    assert waits == [5.0, 7.0, 9.0, None]                   # the queue goes on at 108; beyond
    #                                                         max_wait: refused without a check
    assert throttle.turn(A("10.0.0.10"), b"guess", 103.0) == 0.0     # another address: free


def test_credentials_that_worked_skip_the_queue():
    throttle = GuessThrottle(free=1, step=5.0)
    throttle.failed(ME, "alice", 0.0)
    assert throttle.turn(ME, b"Basic right", 0.0) == 5.0
    throttle.succeeded(ME, b"Basic right")
    assert throttle.turn(ME, b"Basic right", 0.0) == 0.0   # the user's next requests, other connections
    assert throttle.turn(ME, b"Basic wrong", 0.0) > 0.0     # guesses still queue


def test_the_log_gets_the_first_failure_of_an_interval_and_a_count_for_the_rest():
    throttle = GuessThrottle(free=3, report_every=60.0)
    logged = [throttle.failed(ME, user, 10.0 + i) for i, user in enumerate(["a", "b", "c", "b", "d"])]
    assert logged == [True, False, False, False, False]
    assert throttle.report(50.0) == []                     # the interval is not over
    assert throttle.report(70.0) == [(ME, 4, ("b", "c", "d"))]
    assert throttle.report(200.0) == []                    # reported once
    assert throttle.failed(ME, "e", 200.0) is True         # a new interval starts with a line


def test_quiet_clients_are_forgotten_and_the_table_is_bounded():
    throttle = GuessThrottle(free=1, forget_after=100.0, max_clients=3)
    for i in range(5):
        throttle.failed(A("10.0.0.%d" % i), None, float(i))
    assert len(throttle.clients) == 3 and A("10.0.0.4") in throttle.clients and A("10.0.0.0") not in throttle.clients
    throttle.failed(ME, None, 0.0)
    throttle.report(500.0)
    assert throttle.turn(ME, b"x", 500.0) == 0.0 and ME not in throttle.clients


def test_admission_hands_out_the_oldest_and_the_overdue():
    admission = Admission()
    for key, t in [("a", 0.0), ("b", 1.0), ("c", 5.0)]:
        admission.arrived(key, t)
    admission.admitted("b")
    assert admission.overdue(6.0, 3.0) == ["a"]
    assert admission.oldest() == "c" and admission.oldest() is None and len(admission) == 0


# -- against a running proxy -----------------------------------------------------------------------
def basic(user, password):
    return b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(b"%s:%s" % (user, password))


@pytest.fixture
def guarded(proxies):
    def make(**kwargs):
        out = io.StringIO()
        proxy = proxies("block\tads.test\n", resolver=FakeResolver(), socks5_handler=socks_session.handle,
                        authenticator=parse_auth_lines(["alice:right"], "users"),
                        access_log=AccessLog(stream=out), **kwargs)
        proxy.lines = lambda: out.getvalue().splitlines()
        return proxy
    return make


def test_a_guessing_client_is_cut_off_slowed_and_counted(guarded):
    throttle = GuessThrottle(free=3, step=0.01, max_step=0.02, max_wait=5.0)
    proxy = guarded(throttle=throttle)
    me = A("127.0.0.1")
    client = HttpClient(proxy.server_port)
    for i in range(3):                  # one keep-alive connection: three guesses, then closed
        client.send(get("ads.test", 80, extra=basic(b"mallory", b"guess%d" % i)))
        head, _ = client.response()
        assert head.status == 407
    assert client.closed()
    client.close()
    for i in range(7):                  # each further guess waits its turn, then is closed
        client = HttpClient(proxy.server_port)
        client.send(get("ads.test", 80, extra=basic(b"root", b"again%d" % i)))
        assert client.response()[0].status == 407 and client.closed()
        client.close()
    assert throttle.clients[me].failures == 10
    assert sum("wrong password" in line for line in proxy.lines()) == 1      # 10 guesses, 1 line
    assert "unknown user 'mallory'" in proxy.lines()[0]
    assert throttle.report(10 ** 9) == [(me, 9, ("mallory", "root"))]
    client = HttpClient(proxy.server_port)             # the right password gets through, in turn
    client.send(get("ads.test", 80, extra=basic(b"alice", b"right")))
    assert client.response()[0].status == 403
    assert throttle.turn(me, b"Basic " + base64.b64encode(b"alice:right"), 0.0) == 0.0
    client.close()


def test_socks5_guesses_share_the_turns_and_the_count(guarded, caplog):
    throttle = GuessThrottle(free=2, step=0.01, max_step=0.02)
    proxy = guarded(throttle=throttle)
    with caplog.at_level(logging.INFO, logger=socks_session.__name__):
        for i in range(4):
            client = SocksClient(proxy.server_port)
            assert client.method(b"\x02") == socks5.METHOD_USERNAME_PASSWORD
            assert client.login(b"mallory", b"guess%d" % i) is False
            client.close()
    assert caplog.text.count("authentication failed for user 'mallory'") == 1
    client = SocksClient(proxy.server_port)
    assert client.method(b"\x02") == socks5.METHOD_USERNAME_PASSWORD
    assert client.login(b"alice", b"right") is True
    client.close()
    assert throttle.clients[A("127.0.0.1")].failures == 4
    assert throttle.report(10 ** 9) == [(A("127.0.0.1"), 3, ("mallory",))]


def test_the_housekeeper_logs_the_counts(guarded, caplog):
    class Counted(GuessThrottle):
        def report(self, now):
            return [(ME, 57, ("root", "admin"))]
    with caplog.at_level(logging.WARNING, logger=server_mod.__name__):
        guarded(throttle=Counted())
        wait_for(lambda: "10.0.0.9: 57 more failed logins in the last 60s (users tried: 'root', 'admin')"
                 in caplog.text, "the count line")


def test_idle_connections_that_never_log_in_cannot_keep_a_login_out(guarded):
    proxy = guarded(max_clients=50)
    idle = [connect(proxy.server_port) for _ in range(60)]
    wait_for(lambda: proxy.reclaimed == 10 and proxy.stats.open_connections <= 51, "the oldest idle reclaimed")
    client = HttpClient(proxy.server_port)
    client.send(get("ads.test", 80, extra=basic(b"alice", b"right")))
    assert client.response()[0].status == 403           # served (blocked by the rule), not 503
    assert idle[0].recv(1) == b""                        # the oldest idle ones were closed
    client.close()
    for sock in idle:
        sock.close()


def test_a_connection_that_does_not_log_in_is_cut_at_the_login_deadline(guarded):
    proxy = guarded(login_deadline=0.2, idle_timeout=60)
    logged_in = HttpClient(proxy.server_port)
    logged_in.send(get("ads.test", 80, extra=basic(b"alice", b"right")))
    assert logged_in.response()[0].status == 403
    silent = connect(proxy.server_port)
    refused = HttpClient(proxy.server_port)              # a 407 is no login either
    refused.send(get("ads.test", 80))
    assert refused.response()[0].status == 407
    assert silent.recv(1) == b"" and refused.closed()    # the housekeeper cut both
    logged_in.send(get("ads.test", 80, extra=basic(b"alice", b"right")))
    assert logged_in.response()[0].status == 403         # the logged-in one stays
    for sock in (silent, refused.sock, logged_in.sock):
        sock.close()

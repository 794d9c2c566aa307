"""The access log (issue 24 item 2): one line per request, per tunnel opened and closed, with
the rule that decided (file:line or default), HTTP blocks as SOCKS5 blocks; --access-log PATH
reopened on SIGHUP."""
import io
import os
import signal
import time

import pytest
from gevent import socket
from hypothesis import given, settings, strategies as st

from tomato_gevent.proxy import socks5, socks_session
from tomato_gevent.proxy.access_log import AccessLog, access_line
from tomato_gevent.proxy.auth import parse_auth_lines
from tomato_gevent.proxy.server import ProxyServer
from tomato_gevent.rules import RuleSet, load_rule_files, parse_rules

from .proxy_clients import HttpClient, SocksClient, get
from .proxy_doubles import FakeResolver, wait_for
from .proxy_process import ProxyProcess, free_port, wait_until


# -- the line --------------------------------------------------------------------------------
def test_a_served_request_line_has_every_field_and_no_query():
    line = access_line("10.0.0.2:5000", "alice", "GET", "example.com", 80, b"/a/b?token=secret", "direct",
                       "rules.txt:3", "-", 200, 120, 4096, 0.0123)
    assert line == ("10.0.0.2:5000 alice GET example.com:80/a/b direct 200 up=120 down=4096 12.3ms "
                    "rule=rules.txt:3 upstream=-")


def test_tunnel_lines_say_open_and_closed_and_ipv6_targets_are_bracketed():
    assert access_line("[::1]:5000", None, "CONNECT", "2001:db8::1", 443, b"", "forward", "default",
                       "10.0.1.2:1080", 200, 0, 0, 0.0004, "open") == (
        "[::1]:5000 - CONNECT [2001:db8::1]:443 forward 200 up=0 down=0 0.4ms rule=default "
        "upstream=10.0.1.2:1080 open")
    assert access_line("1.2.3.4:1", None, "SOCKS5 CONNECT", "a.test", 22, None, "block", "r:1", "-", 403,
                       0, 10, 0.001, None, "reply 0x02: blocked").endswith(
        "403 up=0 down=10 1.0ms rule=r:1 upstream=- (reply 0x02: blocked)")


def test_lines_are_stamped_like_the_other_log_lines():
    out = io.StringIO()
    log = AccessLog(stream=out, clock=lambda: 1_000_000_000.25)
    log.write("x")
    log.write("y")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_000_000_000))
    assert out.getvalue() == ("%s,250 INFO     tomato_gevent.proxy.access_log: x\n"
                              "%s,250 INFO     tomato_gevent.proxy.access_log: y\n" % (stamp, stamp))


def test_reopen_follows_a_rotated_file(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.write("first")
    log.flush()                                 # (the flusher's tick: the file is open now)
    os.rename(path, tmp_path / "access.log.1")
    log.write("second")                         # still the open file, now access.log.1
    log.reopen()                                # flushes both lines there first
    log.write("third")
    log.stop()
    assert (tmp_path / "access.log.1").read_text().count("\n") == 2
    assert path.read_text().endswith(" third\n")


# -- rule origins ----------------------------------------------------------------------------
RULE_LINES = ["direct\tbaidu.com\n", "block\tfull:baidu.com\n", "forward\tkeyword:goog\n",
              "block\tcidr:10.0.0.0/8\n", "direct\tcidr:10.1.0.0/16\n", "block\tregexp:^ads[0-9]+\\.\n",
              "direct\tcom\n", "block\tbaidu.com\n"]


@settings(max_examples=300, deadline=None)
@given(st.permutations(RULE_LINES),
       st.sampled_from(["baidu.com", "www.baidu.com", "google.com", "ads1.x.org", "ads1.x.com", "x.org",
                        "10.2.3.4", "10.1.2.3", "11.0.0.1", "[::ffff:10.1.0.1]", "Www.Baidu.COM."]))
def test_the_origin_is_the_line_of_the_rule_lookup_applies(lines, host):
    origins = []
    rules = RuleSet(parse_rules(lines, "f.txt", origins), origins)
    action, origin = rules.lookup(host), rules.origin(host)
    assert (action is None) == (origin is None)
    if origin is not None:
        lineno = int(origin.rpartition(":")[2])
        assert lines[lineno - 1].startswith(action.value + "\t")


# -- lines from a running proxy ----------------------------------------------------------------


@pytest.fixture
def logged_proxy(tmp_path):
    made = []

    def start(rules_text, **kwargs):
        path = tmp_path / "rules.txt"
        path.write_text(rules_text)
        out = io.StringIO()
        proxy = ProxyServer(("127.0.0.1", 0), load_rule_files([str(path)]), access_log=AccessLog(stream=out),
                            resolver=FakeResolver({"origin.test", "ads.test", "other.test"}),
                            socks5_handler=socks_session.handle, **kwargs)
        proxy.start()
        made.append(proxy)
        proxy.lines = lambda: out.getvalue().splitlines()
        return proxy, str(path)
    yield start
    for proxy in made:
        proxy.stop(timeout=1)


def test_served_blocked_and_default_requests_each_get_one_line(logged_proxy, origin_port):
    proxy, rules = logged_proxy("# comment\ndirect\torigin.test\nblock\tads.test\n")
    client = HttpClient(proxy.server_port)
    for request in [get("origin.test", origin_port, b"/p?q=1"), get("ads.test", 80, b"/ad"),
                    get("other.test", origin_port)]:
        client.send(request)
        client.response()
    wait_for(lambda: len(proxy.lines()) == 3, "three lines")
    served, blocked, default = proxy.lines()
    assert " 127.0.0.1:" in served and " - GET origin.test:%d/p direct 200 " % origin_port in served
    assert served.endswith(" rule=%s:2 upstream=-" % rules)
    assert "q=1" not in served
    assert " - GET ads.test:80/ad block 403 " in blocked and blocked.endswith(" rule=%s:3 upstream=-" % rules)
    assert " GET other.test:%d/ direct 200 " % origin_port in default and default.endswith(" rule=default upstream=-")


def test_a_tunnel_gets_a_line_when_it_opens_and_when_it_closes(logged_proxy, origin_port):
    proxy, rules = logged_proxy("direct\torigin.test\n")
    client = HttpClient(proxy.server_port)
    client.send(b"CONNECT origin.test:%d HTTP/1.1\r\n\r\n" % origin_port)
    assert client.response("CONNECT")[0].status == 200
    wait_for(lambda: len(proxy.lines()) == 1, "the open line")
    assert proxy.lines()[0].endswith(" open")
    assert " CONNECT origin.test:%d direct 200 up=0 down=0 " % origin_port in proxy.lines()[0]
    assert proxy.lines()[0].endswith(" rule=%s:1 upstream=- open" % rules)
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    assert client.sock.recv(65536).endswith(b"origin")
    client.close()
    wait_for(lambda: len(proxy.lines()) == 2, "the closed line")
    closed = proxy.lines()[1]
    assert " CONNECT origin.test:%d direct 200 up=18 down=" % origin_port in closed
    assert closed.endswith(" rule=%s:1 upstream=- closed" % rules)


def test_socks5_lines_name_the_user_and_blocks_look_like_http_blocks(logged_proxy, origin_port):
    users = parse_auth_lines(["alice:secret-1"], "users")
    proxy, rules = logged_proxy("direct\torigin.test\nblock\tads.test\n", authenticator=users)
    socks = SocksClient(proxy.server_port)
    assert socks.method(b"\x02") == socks5.METHOD_USERNAME_PASSWORD
    assert socks.login(b"alice", b"secret-1")
    assert socks.request("ads.test", 443).code == socks5.NOT_ALLOWED
    client = HttpClient(proxy.server_port)
    client.send(get("ads.test", 80, extra=b"Proxy-Authorization: Basic YWxpY2U6c2VjcmV0LTE=\r\n"))
    assert client.response()[0].status == 403
    wait_for(lambda: len(proxy.lines()) == 2, "two lines")
    socks_line, http_line = sorted(proxy.lines(), key=lambda line: "SOCKS5" not in line)
    assert " alice SOCKS5 CONNECT ads.test:443 block 403 " in socks_line
    assert " alice GET ads.test:80/ block 403 " in http_line
    assert " rule=%s:2 upstream=- (" % rules in socks_line and http_line.endswith(" rule=%s:2 upstream=-" % rules)
    assert "secret" not in "".join(proxy.lines())


def test_bin_proxy_writes_access_log_and_reopens_it_on_sighup(tmp_path, origin_port):
    path = tmp_path / "access.log"
    rules = tmp_path / "rules.txt"
    rules.write_text("block\tads.test\n")
    port = free_port()
    proxy = ProxyProcess("-a", "127.0.0.1:%d" % port, "-r", str(rules), "--access-log", str(path))
    try:
        proxy.wait_line(lambda line: "listening on" in line, "the listening line")

        def ask(target_port):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(get("ads.test", target_port))
                return s.recv(65536)
        assert ask(80).startswith(b"HTTP/1.1 403")
        wait_until(lambda: path.exists() and "ads.test" in path.read_text(), "the first line")
        os.rename(path, tmp_path / "access.log.1")
        proxy.signal(signal.SIGHUP)
        proxy.wait_line(lambda line: "access log %s reopened" % path in line, "the reopen line")
        assert ask(8080).startswith(b"HTTP/1.1 403")
        wait_until(lambda: path.exists() and "ads.test:8080" in path.read_text(), "a line in the new file")
    finally:
        proxy.stop()
    assert "ads.test:8080" not in (tmp_path / "access.log.1").read_text()
    assert not [line for line in proxy.lines if "ads.test" in line]      # not on stderr


def test_no_access_log_drops_the_served_and_blocked_lines_but_not_the_failures(tmp_path, origin_port):
    rules = tmp_path / "rules.txt"
    rules.write_text("block\tads.test\n")
    port = free_port()
    proxy = ProxyProcess("-a", "127.0.0.1:%d" % port, "-r", str(rules), "--workers", "1", "--no-access-log")
    try:
        proxy.wait_line(lambda line: "listening on" in line, "the listening line")

        def ask(host, target_port):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(get(host, target_port))
                return s.recv(65536)
        assert ask("127.0.0.1", origin_port).startswith(b"HTTP/1.1 200")
        assert ask("ads.test", 80).startswith(b"HTTP/1.1 403")
        closed_port = free_port()
        assert ask("127.0.0.1", closed_port).startswith(b"HTTP/1.1 502")
        proxy.signal(signal.SIGUSR1)       # the summary line: all three requests were finished
        proxy.wait_line(lambda line: "summary: requests direct 2xx=1 5xx=1, block 4xx=1;" in line, "the summary")
    finally:
        proxy.stop()
    failures = [line for line in proxy.lines if "127.0.0.1:%d" % closed_port in line]
    assert len(failures) == 1 and "502" in failures[0] and "Connection refused" in failures[0]
    assert not [line for line in proxy.lines if "ads.test" in line or ":%d" % origin_port in line]
    assert not [line for line in proxy.lines if "proxy.access_log:" in line]


def test_access_log_and_no_access_log_are_refused_together(tmp_path):
    proxy = ProxyProcess("--access-log", str(tmp_path / "a.log"), "--no-access-log")
    try:
        proxy.proc.wait(timeout=30)
        proxy.reader.join(timeout=30)
    finally:
        proxy.stop()
    assert proxy.proc.returncode == 2
    assert proxy.lines == ["proxy: error: argument --no-access-log: not allowed with argument --access-log (see --help)"]

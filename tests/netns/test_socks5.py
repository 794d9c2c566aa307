"""bin/proxy's SOCKS5 front end end to end: curl as the client, origins and tinyproxy in
namespaces (the Site helpers of proxy_site.py, the site and two_sites fixtures of conftest.py)."""
import sys

from .nsutil import wait_for
from .proxy_support import SUPPORT, payload, sha256
from .proxy_site import CURL, ORIGIN_PORT, PROXY_PORT, Site, forward_through_tinyproxy, proxy_log, url


SOCKS = "socks5h://127.0.0.1:%d" % PROXY_PORT        # the name goes to the proxy (--socks5-hostname)
SOCKS_LOCAL_DNS = "socks5://127.0.0.1:%d" % PROXY_PORT


def test_socks5_hostname_direct_http_on_the_same_port_and_block(site):
    origin = site.origin()
    rules = site.rules("r.txt", "block\tblocked.test\nblock\tcidr:127.0.0.2/32\n")
    proxy = site.proxy("-r", rules)
    out = site.lab.run(site.ns, CURL + ["-x", SOCKS, url("/blob/1000000")], text=False)
    assert sha256(out.stdout) == sha256(payload(1_000_000)), out.stderr
    assert site.curl(url("/whoami")).stdout == "origin\n"               # HTTP on the same port
    assert site.status("http://127.0.0.2:%d/whoami" % ORIGIN_PORT) == 403     # cidr rule, HTTP too
    assert site.curl(url("/whoami", host="ORIGIN.test.."), proxy=SOCKS).stdout == "origin\n"
    connections = origin.output().count("CONN ")
    # Blocked by name and by address: curl fails, the origin never sees a connection.
    blocked = site.lab.run(site.ns, CURL + ["-x", SOCKS, url("/whoami", host="blocked.test")])
    assert blocked.returncode == 97 and blocked.stdout == ""            # 97: proxy handshake failed
    blocked_ip = site.lab.run(site.ns, CURL + ["-x", SOCKS, "http://127.0.0.2:%d/whoami" % ORIGIN_PORT])
    assert blocked_ip.returncode == 97
    assert origin.output().count("CONN ") == connections
    log = proxy_log(proxy, "SOCKS5 CONNECT origin.test:8080 direct 200", "SOCKS5 CONNECT blocked.test:8080",
                    "SOCKS5 CONNECT 127.0.0.2:8080", "GET origin.test:8080/whoami direct 200")
    assert "SOCKS5 CONNECT blocked.test:8080 block 403" in log and "reply 0x02" in log
    assert "SOCKS5 CONNECT 127.0.0.2:8080 block 403" in log
    assert "GET origin.test:8080/whoami direct 200" in log and "Traceback" not in log


def test_socks5_ip_literals_ipv4_and_ipv6(lab):
    site = Site(lab, hosts="127.0.0.1 origin.test\n", ipv6=True)
    try:
        site.origin("v4", ORIGIN_PORT, "127.0.0.1")
        site.origin("v6", 8081, "::1")
        rules = site.rules("r.txt", "block\tcidr:::1/128\n")
        proxy = site.proxy("-r", rules)
        assert site.curl(url("/whoami", host="127.0.0.1"), proxy=SOCKS_LOCAL_DNS).stdout == "v4\n"
        # curl --socks5 resolves origin.test itself and sends the address (ATYP 1).
        assert site.curl(url("/whoami"), proxy=SOCKS_LOCAL_DNS).stdout == "v4\n"
        blocked = site.lab.run(site.ns, CURL + ["-x", SOCKS_LOCAL_DNS, "http://[::1]:8081/whoami"])
        assert blocked.returncode == 97                                  # cidr rule for ::1
        site.lab.stop(proxy)
        proxy = site.proxy()
        assert site.curl("http://[::1]:8081/whoami", proxy=SOCKS_LOCAL_DNS).stdout == "v6\n"
        proxy_log(proxy, "SOCKS5 CONNECT [::1]:8081 direct 200")
    finally:
        site.close()


def test_socks5_forward_through_tinyproxy(two_sites):
    a, b = two_sites
    tinyproxy, proxy = forward_through_tinyproxy(a, b)
    # hidden.test exists only in B: served by B's origin through tinyproxy.
    assert a.curl(url("/whoami", host="hidden.test"), proxy=SOCKS).stdout == "B\n"
    out = a.lab.run(a.ns, CURL + ["-x", SOCKS, url("/blob/300000", host="hidden.test")], text=False)
    assert sha256(out.stdout) == sha256(payload(300_000)), out.stderr
    assert "CONNECT hidden.test:8080 HTTP/1.1" in tinyproxy.output()
    proxy_log(proxy, "SOCKS5 CONNECT hidden.test:8080 forward 200")


def test_auth_file_for_socks5_and_http(site):
    site.origin()
    auth = site.rules("users.txt", "# users\nalice:s3cret:with colon\n")
    proxy = site.proxy("--auth-file", auth)
    good_socks = "socks5h://alice:s3cret%3Awith%20colon@127.0.0.1:3128"
    good_http = "http://alice:s3cret%3Awith%20colon@127.0.0.1:3128"
    assert site.curl(url("/whoami"), proxy=good_socks).stdout == "origin\n"
    assert site.curl(url("/whoami"), proxy=good_http).stdout == "origin\n"
    assert site.curl("-p", url("/whoami"), proxy=good_http).stdout == "origin\n"
    # Refused: no credentials (SOCKS: method 0xFF), a wrong password (RFC 1929 failure), HTTP 407.
    for proxy_url in [SOCKS, "socks5h://alice:xyzzy-guess@127.0.0.1:3128"]:
        assert site.lab.run(site.ns, CURL + ["-x", proxy_url, url("/whoami")]).returncode == 97
    assert site.status(url("/whoami")) == 407
    assert site.status(url("/whoami"), proxy="http://alice:xyzzy-guess@127.0.0.1:3128") == 407
    assert site.status(url("/whoami"), "-p") == 407
    answer = site.raw(b"GET http://origin.test:8080/whoami HTTP/1.1\r\nHost: origin.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 407") and b'Proxy-Authenticate: Basic realm="tomato proxy"' in answer
    log = proxy_log(proxy, "authentication failed for user 'alice'")
    assert "s3cret" not in log and "xyzzy" not in log                  # no password in the log


def test_udp_associate_direct_and_block(site):
    echo = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "udp-echo", "5353"])
    site.lab.wait_log(echo, "READY")
    proxy = site.proxy("-r", site.rules("r.txt", "block\tblocked.test\n"))
    run = site.lab.run(site.ns, [sys.executable, SUPPORT, "socks-udp", PROXY_PORT, "origin.test", "5353",
                                 "one", "two"])
    assert run.stdout.splitlines() == ["127.0.0.1:5353 echo:one", "127.0.0.1:5353 echo:two"], run.stderr
    blocked = site.lab.run(site.ns, [sys.executable, SUPPORT, "socks-udp", PROXY_PORT, "blocked.test", "5353",
                                     "no"])
    assert blocked.stdout.splitlines() == ["-"], blocked.stderr
    log = proxy_log(proxy, "dropped 1 blocked")
    assert "SOCKS5 UDP-ASSOCIATE 0.0.0.0:0 direct 200 up=6 down=16" in log and "Traceback" not in log


GARBAGE = [
    (b"\x05\x00", b"\x05\xff"),                                          # no method offered
    (b"\x05\x01\x80", b"\x05\xff"),                                      # none acceptable
    (b"\x05\x02\x00", b""),                                              # truncated greeting
    (b"\x05\x01\x00\x04\x01\x00\x01\x7f\x00\x00\x01\x1f\x90", b"\x05\x00"),          # request version 4
    (b"\x05\x01\x00\x05\x01\x00\x09\x00\x00", b"\x05\x00\x05\x08\x00\x01" + bytes(6)),  # ATYP 9
    (b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x1f\x90", b"\x05\x00\x05\x07\x00\x01" + bytes(6)),  # BIND
    (b"\x05\x01\x00\x05\x01\x00\x03\x03a b\x1f\x90", b"\x05\x00\x05\x04\x00\x01" + bytes(6)),  # bad name
    (b"\x05\x01\x00\x05\x01\x00\x03\x0cno-such.test\x1f", b"\x05\x00"),  # truncated request
]


def test_garbage_handshakes_get_the_right_reply_and_a_close(site):
    site.origin()
    proxy = site.proxy()
    for data, answer in GARBAGE:
        assert site.raw(data) == answer, data
    assert site.status(url("/whoami")) == 200                            # still serving
    log = proxy_log(proxy, "BIND 127.0.0.1:8080 - 501", "reply 0x07")
    assert "Traceback" not in log


def test_200_concurrent_socks_connections_with_a_stalled_handshake(site):
    site.origin()
    proxy = site.proxy("--idle-timeout", "4")
    # A greeting announcing two methods and sending one: the proxy waits for the second.
    staller = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "stall", "127.0.0.1", PROXY_PORT, "\x05\x02\x02"])
    site.lab.wait_log(staller, "STALLING")
    # Connection: close, so that every request is its own SOCKS session, 200 at a time.
    out = site.fetch_many(200, 200, "-H", "Connection: close", proxy=SOCKS)
    assert out.stdout.split() == ["200"] * 200, out.stderr
    # The stalled handshakes are dropped after the idle timeout, like a stalled HTTP head.
    wait_for(lambda: staller.poll() is not None, timeout=15, what="stalled greeting to be dropped")
    assert "CLOSED after" in staller.output() and "with 0 bytes" in staller.output()
    assert proxy.poll() is None
    wait_for(lambda: proxy.output().count("SOCKS5 CONNECT origin.test:8080 direct 200") == 400,     # open, closed
             what="200 SOCKS5 session lines")

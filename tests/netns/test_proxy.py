"""bin/proxy end to end: curl (and raw sockets for garbage) against origins in namespaces.

Names: /etc/netns/NS/hosts (mounted over /etc/hosts by `ip netns exec`) maps the test
domains to 127.0.0.1 of that namespace; resolv.conf there points at 127.0.0.1, where
nothing answers, so unknown names fail fast and no query leaves the namespace.
"""
import re
import signal
import sys

import pytest

from .nsutil import wait_for
from .proxy_site import CURL, ORIGIN_PORT, PROXY, PROXY_PORT, Site, forward_through_tinyproxy, proxy_log, url
from .proxy_support import SUPPORT, payload, sha256


def status_line(raw):
    return raw.split(b"\r\n", 1)[0]


# -- direct ------------------------------------------------------------------------------------
def test_direct_get_bodies_arrive_intact_in_every_framing(site):
    site.origin()
    proxy = site.proxy()
    for path, n in (("/blob/", 1_000_000), ("/chunked/", 300_001), ("/close/", 200_003)):
        out = site.lab.run(site.ns, CURL + ["-x", PROXY, url(path + str(n))], text=False)
        assert out.returncode == 0, out.stderr
        assert sha256(out.stdout) == sha256(payload(n)), path
    # An HTTP/1.0 client gets the chunked answer de-chunked, delimited by close.
    out = site.lab.run(site.ns, CURL + ["-0", "-D", "-", "-x", PROXY, url("/chunked/50000")], text=False)
    head, body = out.stdout.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower() and b"Connection: close" in head
    assert body == payload(50000)
    # No body for HEAD, 204 and 304, and the connection stays usable.
    head = site.curl("-I", url("/blob/1234")).stdout
    assert head.startswith("HTTP/1.1 200") and "Content-Length: 1234" in head
    assert site.status(url("/status/204")) == 204
    assert site.status(url("/status/304")) == 304
    assert site.lab.stop(proxy) == 0
    assert re.search(r"GET origin\.test:8080/\S* direct 200 up=\d+ down=\d+", proxy.output())


def test_post_bodies_with_content_length_and_chunked(site):
    site.origin()
    site.proxy()
    body_path = site.tmp / "body.bin"
    body = payload(1_500_000)
    body_path.write_bytes(body)
    expected = "%s %d" % (sha256(body), len(body))
    plain = site.curl("--data-binary", "@%s" % body_path, url("/echo"))
    assert plain.stdout.strip() == expected, plain.stderr
    chunked = site.curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@%s" % body_path, url("/echo"))
    assert chunked.stdout.strip() == expected, chunked.stderr
    put = site.curl("-T", body_path, "-H", "Expect:", url("/echo"))
    assert put.stdout.strip() == expected, put.stderr


def test_hop_by_hop_headers_stay_on_their_hop(site):
    site.origin()
    site.proxy()
    seen = site.curl("-H", "Connection: X-Private", "-H", "X-Private: secret", "-H", "Keep-Alive: 5",
                     "-H", "Proxy-Authorization: Basic c2VjcmV0", "-H", "TE: trailers",
                     "-H", "Upgrade: websocket", "-H", "X-End-To-End: kept",
                     url("/headers")).stdout.lower()
    assert seen.startswith("get /headers http/1.1")
    assert "x-end-to-end: kept" in seen and "host: origin.test:8080" in seen and "via: 1.1 tomato" in seen
    for name in ("x-private", "keep-alive", "proxy-authorization", "te:", "upgrade", "connection"):
        assert name not in seen, name


def test_keep_alive_reuses_the_client_and_the_origin_connection(site):
    origin = site.origin()
    site.proxy()
    out = site.curl("-v", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                    url("/blob/1000"), url("/chunked/2000"), url("/close/10"))
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Re-using existing connection") == 2
    # First two answers came over one origin connection; /close/ closed it, so it was the last.
    assert origin.output().count("CONN ") == 1


def test_pipelined_requests_are_answered_in_order(site):
    site.origin(name="first")
    site.origin("second", 8081)
    both = (b"GET http://origin.test:8080/whoami HTTP/1.1\r\nHost: origin.test:8080\r\n\r\n"
            b"GET http://origin.test:8081/whoami HTTP/1.1\r\nHost: origin.test:8081\r\n"
            b"Connection: close\r\n\r\n")
    site.proxy()
    answer = site.raw(both)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"first\n") < answer.index(b"second\n")


def test_origin_closing_an_idle_kept_connection_is_retried_transparently(site):
    origin = site.origin("origin", ORIGIN_PORT, "127.0.0.1", "--idle-close", "0.3")
    site.proxy()
    request = b"GET http://origin.test:8080/whoami HTTP/1.1\r\nHost: origin.test:8080\r\n\r\n"
    lines = site.exchanges([request, request, request], pause=1.0)
    assert lines == ["HTTP/1.1 200 OK | origin"] * 3
    assert origin.output().count("CONN ") == 3          # each pause outlived the origin's patience


def test_every_address_is_tried_ipv6_and_ipv4(lab):
    site = Site(lab, hosts="::1 dual.test\n127.0.0.1 dual.test\n", ipv6=True)
    try:
        site.origin("v4 only", ORIGIN_PORT, "127.0.0.1")
        site.origin("v6 only", 8081, "::1")
        site.proxy(listen="[::1]:%d" % PROXY_PORT)
        v6_proxy = "http://[::1]:%d" % PROXY_PORT
        # ::1 is tried first and refuses on 8080; 127.0.0.1 answers. 8081 is the other way round.
        assert site.curl(url("/whoami", host="dual.test"), proxy=v6_proxy).stdout == "v4 only\n"
        assert site.curl(url("/whoami", host="dual.test", port=8081), proxy=v6_proxy).stdout == "v6 only\n"
        assert site.curl("-p", "http://[::1]:8081/whoami", proxy=v6_proxy).stdout == "v6 only\n"
    finally:
        site.close()


def test_connect_tunnels_both_ways(site):
    site.origin()
    proxy = site.proxy()
    for target in ("origin.test", "127.0.0.1"):
        out = site.lab.run(site.ns, CURL + ["-p", "-x", PROXY, url("/blob/700000", host=target)], text=False)
        assert out.returncode == 0 and sha256(out.stdout) == sha256(payload(700_000)), out.stderr
    body = site.tmp / "up.bin"
    body.write_bytes(payload(400_000))
    echoed = site.curl("-p", "--data-binary", "@%s" % body, url("/echo"))
    assert echoed.stdout.strip() == "%s %d" % (sha256(payload(400_000)), 400_000)
    proxy_log(proxy, "CONNECT origin.test:8080 direct 200")


def test_connect_passes_early_bytes_and_half_close(site):
    drain = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "drain", 9000])
    site.lab.wait_log(drain, "READY")
    site.proxy()
    data = payload(300_000)
    # The client writes right behind CONNECT, then closes its sending side; the far end
    # answers only after that EOF, and the answer must still come back.
    answer = site.raw(b"CONNECT origin.test:9000 HTTP/1.1\r\nHost: origin.test:9000\r\n\r\n" + data)
    assert answer == b"HTTP/1.1 200 Connection Established\r\n\r\n%s %d\n" % (
        sha256(data).encode(), len(data))


# -- block and rules -----------------------------------------------------------------------
def test_block_answers_403_for_plain_and_connect(site):
    site.origin()
    rules = site.rules("r.txt", "block\tblocked.test\n")
    proxy = site.proxy("-r", rules)
    out = site.curl("-i", url("/blob/10", host="blocked.test"))
    assert out.stdout.startswith("HTTP/1.1 403 Forbidden") and "blocked by proxy rule: blocked.test" in out.stdout
    assert site.status(url("/blob/10", host="blocked.test"), "-p") == 403
    assert site.status(url("/blob/10", host="sub.blocked.test"), "-p") == 403
    assert site.status(url("/blob/10")) == 200
    log = proxy_log(proxy, "GET blocked.test:8080/blob/10 block 403", "CONNECT blocked.test:8080 block 403")
    assert "rules: %s (1 rules: block 1, direct 0, forward 0)" % rules in log


def test_default_direction_and_first_occurrence_wins(site):
    site.origin()
    first = site.rules("first.txt", "# user overrides on top\ndirect\tother.test\nblock\torigin.test\n")
    second = site.rules("second.txt", "direct\torigin.test\nblock\tother.test\ndirect\tlocalhost\n")
    site.proxy("-d", "block", "-r", first, "-r", second)
    assert site.status(url("/whoami", host="other.test")) == 200       # first file beats second
    assert site.status(url("/whoami")) == 403                          # ditto, the other way round
    assert site.status(url("/whoami", host="localhost")) == 200        # only in the second file
    assert site.status(url("/whoami", host="127.0.0.1")) == 403        # no rule: the default, block
    # Within one file the first line wins too; forward without -f is direct.
    dup = site.rules("dup.txt", "forward\torigin.test\nblock\torigin.test\n")
    site.proxy("-d", "forward", "-r", dup, listen="127.0.0.1:3129")
    alt = "http://127.0.0.1:3129"
    assert site.status(url("/whoami"), proxy=alt) == 200
    assert site.status(url("/whoami", host="127.0.0.1"), proxy=alt) == 200


def test_sighup_reloads_rules_and_a_bad_file_keeps_the_old_ones(site):
    site.origin()
    rules = site.rules("r.txt", "block\torigin.test\n")
    proxy = site.proxy("-r", rules)
    assert site.status(url("/whoami")) == 403
    rules.write_text("direct\torigin.test\nblock\tother.test\n")
    proxy.send_signal(signal.SIGHUP)
    site.lab.wait_log(proxy, "rules reloaded")
    assert site.status(url("/whoami")) == 200
    assert site.status(url("/whoami", host="other.test")) == 403
    rules.write_text("block origin.test with spaces\n")
    proxy.send_signal(signal.SIGHUP)
    site.lab.wait_log(proxy, "rule reload failed, keeping the old rules: %s:1:" % rules)
    assert site.status(url("/whoami")) == 200
    assert site.status(url("/whoami", host="other.test")) == 403
    assert proxy.poll() is None
    assert site.lab.stop(proxy, signal.SIGINT) == 0


# -- failures ----------------------------------------------------------------------------------
def test_malformed_oversized_and_unreachable_get_400_431_502_504(site):
    site.origin()
    # 10.78.0.2 is on a link where nobody answers ARP: connecting there just hangs.
    site.lab.sh(site.ns, "ip link add void0 type veth peer name void1 && ip addr add 10.78.0.1/24 dev void0 "
                         "&& ip link set void0 up && ip link set void1 up")
    proxy = site.proxy("--connect-timeout", "1")
    assert status_line(site.raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n")) \
        == b"HTTP/1.1 400 Bad Request"
    assert status_line(site.raw(b"GET /relative HTTP/1.1\r\nHost: origin.test\r\n\r\n")) \
        == b"HTTP/1.1 400 Bad Request"
    big = b"GET http://origin.test:8080/ HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert status_line(site.raw(big)) == b"HTTP/1.1 431 Request Header Fields Too Large"
    unknown = site.curl("-i", "http://no-such-name.test/")
    assert unknown.stdout.startswith("HTTP/1.1 502") and "no-such-name.test" in unknown.stdout
    refused = site.curl("-i", url("/", port=9))
    assert refused.stdout.startswith("HTTP/1.1 502") and "Connection refused" in refused.stdout
    assert site.status("https://127.0.0.1:9/", "-p") == 502
    silent = site.curl("-i", "http://10.78.0.2/")
    assert silent.stdout.startswith("HTTP/1.1 504") and "timed out connecting to 10.78.0.2:80" in silent.stdout
    assert site.status(url("/whoami")) == 200           # still serving
    log = proxy_log(proxy, "502", "no-such-name.test")
    assert "Traceback" not in log


def test_stalled_client_does_not_hold_up_200_concurrent_requests(site):
    site.origin()
    proxy = site.proxy("--idle-timeout", "4")
    staller = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "stall", "127.0.0.1", PROXY_PORT,
                                       "GET http://origin.test:8080/ HTTP/1.1\r\nHost: orig"])
    trickler = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "stall", "127.0.0.1", PROXY_PORT,
                                        "GET http://origin.test:8080/ HTTP/1.1\r\nX-Slow: ", 0.5])
    site.lab.wait_log(staller, "STALLING")
    site.lab.wait_log(trickler, "STALLING")
    out = site.fetch_many(200, 100)
    assert out.stdout.split() == ["200"] * 200, out.stderr
    # The staller is dropped after the idle timeout, without an answer.
    wait_for(lambda: staller.poll() is not None, timeout=15, what="stalled client to be dropped")
    assert "CLOSED after" in staller.output() and "with 0 bytes" in staller.output()
    # So is one that keeps sending a byte now and then but never finishes its head.
    wait_for(lambda: trickler.poll() is not None, timeout=15, what="trickling client to be dropped")
    assert "CLOSED after" in trickler.output()
    assert proxy.poll() is None
    wait_for(lambda: proxy.output().count(" direct 200 ") == 200, what="200 request lines")


def test_running_out_of_file_descriptors_is_survived(site):
    site.origin()
    # One worker: the limit is per process, and 60 clients spread over several would fit.
    proxy = site.lab.spawn(site.ns, ["sh", "-c", 'ulimit -n 40 && exec "$@"', "sh",
                                     *site.lab.tool("proxy", "-a", "127.0.0.1:%d" % PROXY_PORT, "--workers", "1")])
    site.lab.wait_log(proxy, "listening on")
    # 60 idle clients: the kernel completes the handshakes, the proxy can accept only ~30.
    holder = site.lab.spawn(site.ns, [sys.executable, SUPPORT, "hold", "127.0.0.1", PROXY_PORT, 60])
    site.lab.wait_log(holder, "HOLDING 60")
    site.lab.wait_log(proxy, "accept failed: Too many open files")
    site.lab.stop(holder, signal.SIGKILL)
    # Descriptors come back as the held connections close: the proxy serves again.
    assert site.status(url("/whoami")) == 200
    assert proxy.poll() is None and "Traceback" not in proxy.output()


# -- forward -----------------------------------------------------------------------------------
def test_forward_through_tinyproxy(two_sites):
    a, b = two_sites
    tinyproxy, proxy = forward_through_tinyproxy(a, b)
    assert a.curl(url("/whoami", host="hidden.test")).stdout == "B\n"
    out = a.lab.run(a.ns, CURL + ["-p", "-x", PROXY, url("/blob/300000", host="hidden.test")], text=False)
    assert sha256(out.stdout) == sha256(payload(300_000)), out.stderr
    body = a.tmp / "b.bin"
    body.write_bytes(payload(100_000))
    echoed = a.curl("--data-binary", "@%s" % body, url("/echo", host="hidden.test"))
    assert echoed.stdout.strip() == "%s %d" % (sha256(payload(100_000)), 100_000)
    # Served by tinyproxy, which received absolute-form GET and a real CONNECT.
    tlog = tinyproxy.output()
    assert "GET http://hidden.test:8080/whoami HTTP/1.1" in tlog
    assert "CONNECT hidden.test:8080 HTTP/1.1" in tlog
    log = proxy.output()
    assert "GET hidden.test:8080/whoami forward 200" in log and "CONNECT hidden.test:8080 forward 200" in log


def test_forward_through_a_second_tomato_proxy(two_sites):
    a, b = two_sites
    far_rules = b.rules("b.txt", "block\tbad.test\n")
    # hidden.test is on B's loopback: the far proxy lets A in only with --allow-private.
    guarded = b.proxy("-r", far_rules, listen="10.77.0.2:1081")
    assert a.status(url("/whoami", host="hidden.test"), proxy="10.77.0.2:1081") == 403
    # The worker logs the refusal as it answers: wait for the line, the answer may come first.
    wait_for(lambda: "destination 127.0.0.1 is a loopback or link-local address" in guarded.output(),
             what="the refusal line")
    far = b.proxy("-r", far_rules, "--allow-private", listen="10.77.0.2:1080")
    near_rules = a.rules("a.txt", "direct\tlocal.test\n")
    a.origin(name="A")
    near = a.proxy("-d", "forward", "-f", "10.77.0.2:1080", "-r", near_rules)
    assert a.curl(url("/whoami", host="hidden.test")).stdout == "B\n"          # default: forward
    assert a.curl("-p", url("/whoami", host="hidden.test")).stdout == "B\n"
    assert a.curl(url("/whoami", host="local.test")).stdout == "A\n"           # rule: direct
    # The far proxy's answers come back as they are: its block, its 502.
    assert a.status(url("/whoami", host="bad.test")) == 403
    assert a.status(url("/whoami", host="bad.test"), "-p") == 403
    unknown = a.curl("-i", "http://only-a-knows.test/")
    assert unknown.stdout.startswith("HTTP/1.1 502") and "only-a-knows.test" in unknown.stdout
    near_log, far_log = near.output(), far.output()
    assert "GET hidden.test:8080/whoami forward 200" in near_log and "CONNECT hidden.test:8080 forward 200" in near_log
    assert "GET hidden.test:8080/whoami direct 200" in far_log and "CONNECT hidden.test:8080 direct 200" in far_log
    assert "GET local.test:8080/whoami direct 200" in near_log and "local.test" not in far_log
    assert "GET bad.test:8080/whoami block 403" in far_log


def test_forward_to_a_dead_upstream_is_502(site):
    site.origin()
    rules = site.rules("r.txt", "forward\torigin.test\n")
    site.proxy("-f", "127.0.0.1:9", "-r", rules)
    out = site.curl("-i", url("/whoami"))
    assert out.stdout.startswith("HTTP/1.1 502") and "upstream proxy 127.0.0.1:9" in out.stdout
    assert site.status(url("/whoami"), "-p") == 502
    assert site.status(url("/whoami", host="other.test")) == 200


# -- command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["-a", "nonsense"], "expected HOST:PORT"),
    (["-d", "sideways"], "invalid choice"),
    (["-r", "/nonexistent/rules.txt"], "cannot read rule file /nonexistent/rules.txt"),
    (["-f", ":1080"], "-f needs a host"),
])
def test_bad_command_lines_are_one_line_errors(site, args, message):
    out = site.lab.run(site.ns, site.lab.tool("proxy", "-a", "127.0.0.1:3999", *args)
                       if args[0] != "-a" else site.lab.tool("proxy", *args))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr

"""The proxy's namespace tests' site: a namespace with origins, a hosts file and proxies on
demand (test_proxy.py, test_socks5.py; the site and two_sites fixtures are in conftest.py)."""
import sys

from .nsutil import wait_for
from .proxy_support import SUPPORT, NetnsEtc


def proxy_log(proxy, *expected):
    """The proxy's log once it holds every expected piece: a session's line is written when the
    session ends, which may be just after the client has its answer."""
    def complete():
        log = proxy.output()
        return log if all(piece in log for piece in expected) else None
    return wait_for(complete, what="proxy log lines %r" % (expected,))


ORIGIN_PORT = 8080
PROXY_PORT = 3128
PROXY = "http://127.0.0.1:%d" % PROXY_PORT
CURL = ["curl", "-sS", "--max-time", "30"]


class Site:
    """One namespace: origin(s) on 127.0.0.1, names in its hosts file, proxies on demand."""

    def __init__(self, lab, hosts="127.0.0.1 origin.test blocked.test other.test\n", ipv6=False):
        self.lab = lab
        self.ns = lab.netns(ipv6=ipv6)
        self.etc = NetnsEtc(self.ns, hosts)
        self.tmp = lab.tmpdir

    def origin(self, name="origin", port=ORIGIN_PORT, bind="127.0.0.1", *extra):
        proc = self.lab.spawn(self.ns, [sys.executable, SUPPORT, "origin", "--port", port,
                                        "--bind", bind, "--name", name, *extra])
        self.lab.wait_log(proc, "READY")
        return proc

    def rules(self, name, text):
        path = self.tmp / name
        path.write_text(text)
        return path

    def proxy(self, *args, listen="127.0.0.1:%d" % PROXY_PORT):
        proc = self.lab.spawn(self.ns, self.lab.tool("proxy", "-a", listen, "-v", *args))
        self.lab.wait_log(proc, "listening on")
        return proc

    def curl(self, *args, proxy=PROXY):
        return self.lab.run(self.ns, CURL + ["-x", proxy, *map(str, args)])

    def status(self, url, *args, proxy=PROXY):
        """HTTP status curl saw (for CONNECT failures: the proxy's answer to CONNECT)."""
        out = self.curl("-o", "/dev/null", "-w", "%{http_code} %{http_connect}", *args, url, proxy=proxy)
        code, connect_code = out.stdout.split()
        return int(connect_code) if code == "000" else int(code)

    def raw(self, data, port=PROXY_PORT):
        """Send data on a fresh connection; everything the proxy answered until it closed."""
        path = self.tmp / "raw.bin"
        path.write_bytes(data)
        out = self.lab.run(self.ns, [sys.executable, SUPPORT, "raw", "127.0.0.1", port, path], text=False)
        return out.stdout

    def exchanges(self, requests, pause=0.0, port=PROXY_PORT):
        """Requests one after another on one connection; ["STATUS LINE | body", ...]."""
        paths = []
        for i, request in enumerate(requests):
            paths.append(self.tmp / ("request%d.bin" % i))
            paths[-1].write_bytes(request)
        out = self.lab.run(self.ns, [sys.executable, SUPPORT, "exchanges", "127.0.0.1", port, pause, *paths])
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    def fetch_many(self, count, parallel, *args, proxy=PROXY):
        """curl fetches /blob/1000, /blob/1001, ... (count of them), `parallel` at a time,
        through proxy; its run: stdout holds one HTTP status per line."""
        config = self.tmp / "many.curl"
        config.write_text("".join('url = "%s"\noutput = "/dev/null"\n' % url("/blob/%d" % (1000 + i))
                                  for i in range(count)))
        return self.lab.run(self.ns, CURL + ["-Z", "--parallel-max", str(parallel), "-w", "%{http_code}\\n",
                                             "-x", proxy, "-K", config, *args])

    def close(self):
        self.etc.remove()


def url(path, host="origin.test", port=ORIGIN_PORT):
    return "http://%s:%d%s" % (host, port, path)


def forward_through_tinyproxy(a, b):
    """tinyproxy in B on 10.77.0.2:8888 (two_sites), and a proxy in A forwarding hidden.test
    to it: (tinyproxy, proxy) processes."""
    conf = b.tmp / "tinyproxy.conf"
    conf.write_text("Port 8888\nListen 10.77.0.2\nTimeout 30\nAllow 10.77.0.0/24\nLogLevel Connect\n"
                    "MaxClients 50\n")
    tinyproxy = b.lab.spawn(b.ns, ["tinyproxy", "-d", "-c", conf])
    b.lab.wait_tcp_listening(b.ns, 8888)
    rules = a.rules("a.txt", "forward\thidden.test\n")
    return tinyproxy, a.proxy("-f", "10.77.0.2:8888", "-r", rules)

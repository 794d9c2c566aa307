"""Deterministic per-request cost of the HTTP proxy: N keep-alive absolute-URI GETs of a
1 KB body (GET http://127.0.0.1:PORT/1k) over CONNS connections through an in-process
ProxyServer, a loopback origin and the clients all in this one process.

    .venv/bin/python bench/proxy_calls.py TREE profile 2000 4   # function calls per request (cProfile)
    .venv/bin/python bench/proxy_calls.py TREE count 4000 4     # CPU us per request (noisy)
    .venv/bin/python bench/proxy_calls.py TREE ext 2000 4 PORT  # clients only, against bin/proxy on PORT

TREE is a checkout (this one: .; an older commit: git archive REV | tar -x -C /tmp/old).
Calls per request include the clients' and origin's (identical across trees), so compare
trees, not absolute values; bench/proxy_counts.py counts the proxy process alone (Python
calls and syscalls, HTTP requests and SOCKS5 sessions, microsocks beside it). Wall-clock
rates belong to `make bench`.
"""
import os
import sys
tree = os.path.abspath(sys.argv[1]); mode = sys.argv[2]; N = int(sys.argv[3]); CONNS = int(sys.argv[4])
sys.path.insert(0, tree)
from gevent import monkey; monkey.patch_all()
import gevent, socket, ipaddress
from gevent.server import StreamServer
from tomato_gevent.proxy.server import ProxyServer
if os.path.exists(os.path.join(tree, "tomato_gevent/proxy/rules.py")):
    from tomato_gevent.proxy.rules import RuleSet, parse_rules
else:
    from tomato_gevent.rules import RuleSet, parse_rules

class R:
    def resolve(self, host):
        return [ipaddress.ip_address("127.0.0.1")]

READY = os.environ.get("READY_FILE", "/tmp/proxy_calls.ready")
BODY = b"x" * 1024
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n" + BODY
def origin(sock, addr):
    buf = b""
    while True:
        d = sock.recv(65536)
        if not d: return
        buf += d
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            sock.sendall(RESP)
o = StreamServer(("127.0.0.1", 0), origin); o.start()
OP = o.server_port
rs = RuleSet(parse_rules([]))
kw = {}
import inspect
if "allow_private" in inspect.signature(ProxyServer.__init__).parameters: kw["allow_private"] = True
if mode == "ext":
    PP = int(sys.argv[5])
else:
    p = ProxyServer(("127.0.0.1", 0), rs, resolver=R(), **kw); p.start()
    PP = p.server_port
REQ = ("GET http://127.0.0.1:%d/1k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: b\r\n\r\n" % (OP, OP)).encode()
def client(n):
    s = socket.create_connection(("127.0.0.1", PP))
    buf = b""
    for i in range(n):
        s.sendall(REQ)
        while True:
            i2 = buf.find(b"\r\n\r\n")
            if i2 >= 0:
                head = buf[:i2]
                assert head.startswith(b"HTTP/1.1 200"), head
                if len(buf) >= i2 + 4 + 1024:
                    buf = buf[i2 + 4 + 1024:]; break
            d = s.recv(65536)
            assert d
            buf += d
    s.close()
def run(n):
    gs = [gevent.spawn(client, n // CONNS) for _ in range(CONNS)]
    gevent.joinall(gs, raise_error=True)
run(100)  # warmup
if mode == "ext":
    open(READY,"w").close()
    while os.path.exists(READY): gevent.sleep(0.05)
if mode == "profile":
    import cProfile, pstats
    pr = cProfile.Profile(); pr.enable(); run(N); pr.disable()
    st = pstats.Stats(pr); st.dump_stats(os.environ.get("PROF_OUT", "/tmp/proxy_calls.prof"))
    tot = sum(v[1] for v in st.stats.values())
    print("total calls", tot, "per req", tot / N)
    st.sort_stats("tottime").print_stats(35)
else:
    import time; t = time.process_time(); run(N); print("cpu us/req %.1f" % ((time.process_time() - t) / N * 1e6))

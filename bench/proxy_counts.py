"""Per-request and per-session cost of the proxy PROCESS alone, in counts that load does not
move: Python calls (cProfile, inside the proxy process only) and system calls (strace -c -f
attached to the proxy process only). The origin and the clients run in this process, the proxy
in a child (or microsocks, for the SOCKS5 reference), so nothing of theirs is counted.

    .venv/bin/python bench/proxy_counts.py TREE http  N      # keep-alive absolute-URI GETs of 1 KB, 4 connections
    .venv/bin/python bench/proxy_counts.py TREE socks N      # SOCKS5 sessions: connect, CONNECT, GET 1 KB, close
    .venv/bin/python bench/proxy_counts.py -    microsocks N # the same sessions through microsocks (syscalls only)

TREE is a checkout (this one: .; an older commit: git archive REV | tar -x -C /tmp/old). Prints
"python calls per request" and "syscalls per request" (with the top syscalls). The counted run
follows a warm-up of 200 requests, so connection set-up of keep-alive clients is amortised.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CONNS = int(os.environ.get("CONNS", "4"))      # client connections at once
WARMUP = 200


def serve(tree, kind, port_file, prof_file):
    """The child: a ProxyServer on 127.0.0.1:0; SIGUSR1 starts cProfile, SIGUSR2 dumps it."""
    sys.path.insert(0, tree)
    from gevent import monkey
    monkey.patch_all()
    import cProfile
    import ipaddress
    import gevent
    from tomato_gevent.proxy import socks_session
    from tomato_gevent.proxy.server import ProxyServer
    from tomato_gevent.rules import RuleSet, parse_rules

    loopback = [ipaddress.ip_address("127.0.0.1")]

    class Resolver:                     # a cached answer, as the real resolver gives for literals
        def resolve(self, host):
            return loopback

    proxy = ProxyServer(("127.0.0.1", 0), RuleSet(parse_rules([])), resolver=Resolver(),
                        allow_private=True, socks5_handler=socks_session.handle)
    proxy.start()
    profile = cProfile.Profile()

    def start():
        profile.enable()

    def stop():
        profile.disable()
        profile.dump_stats(prof_file)
        open(prof_file + ".done", "w").close()
    gevent.signal_handler(signal.SIGUSR1, start)
    gevent.signal_handler(signal.SIGUSR2, stop)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(proxy.server_port))
    os.rename(port_file + ".tmp", port_file)
    gevent.wait()


def wait_file(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + path)
        time.sleep(0.02)


def main():
    tree, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind.startswith("serve-"):
        serve(tree, kind[6:], sys.argv[4], sys.argv[5])
        return
    from gevent import monkey
    monkey.patch_all()
    import gevent
    import socket
    import struct
    from gevent.server import StreamServer

    body = b"x" * 1024
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n" + body

    def origin(sock, address):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                sock.sendall(answer)
    server = StreamServer(("127.0.0.1", 0), origin)
    server.start()
    origin_port = server.server_port

    work = tempfile.mkdtemp(prefix="proxy_counts.")
    port_file, prof_file = os.path.join(work, "port"), os.path.join(work, "prof")
    if kind == "microsocks":
        proxy_port = 21080 + os.getpid() % 1000
        child = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(proxy_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", proxy_port)).close()
                break
            except OSError:
                time.sleep(0.01)
    else:
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), os.path.abspath(tree),
                                  "serve-" + kind, "0", port_file, prof_file])
        wait_file(port_file)
        with open(port_file) as f:
            proxy_port = int(f.read())

    request = (b"GET http://127.0.0.1:%d/1k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: b\r\n\r\n"
               % (origin_port, origin_port))
    origin_request = b"GET /1k HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: b\r\n\r\n"

    def read_answer(sock, buf):
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0 and len(buf) >= end + 4 + 1024:
                assert buf.startswith(b"HTTP/1.1 200"), buf[:80]
                return buf[end + 4 + 1024:]
            data = sock.recv(65536)
            assert data, "proxy closed"
            buf += data

    def http_client(count):
        sock = socket.create_connection(("127.0.0.1", proxy_port))
        buf = b""
        for _ in range(count):
            sock.sendall(request)
            buf = read_answer(sock, buf)
        sock.close()

    def socks_session(_):
        sock = socket.create_connection(("127.0.0.1", proxy_port))
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", origin_port))
        reply = b""
        while len(reply) < 10:
            data = sock.recv(10 - len(reply))
            assert data, "proxy closed"
            reply += data
        assert reply[1] == 0, reply
        sock.sendall(origin_request)
        read_answer(sock, b"")
        sock.close()

    def run(count):
        if kind == "http":
            jobs = [gevent.spawn(http_client, count // CONNS) for _ in range(CONNS)]
        else:
            jobs = []
            for _ in range(CONNS):
                jobs.append(gevent.spawn(lambda c=count // CONNS: [socks_session(i) for i in range(c)]))
        gevent.joinall(jobs, raise_error=True)

    try:
        run(WARMUP)
        if kind != "microsocks":
            child.send_signal(signal.SIGUSR1)
            time.sleep(0.2)             # the child's signal handler runs on its next loop turn
            run(n)
            child.send_signal(signal.SIGUSR2)
            wait_file(prof_file + ".done")
            import pstats
            stats = pstats.Stats(prof_file)
            total = sum(v[1] for v in stats.stats.values())
            print("%s python calls per %s: %.1f" % (kind, "request" if kind == "http" else "session",
                                                    total / n))
        trace = os.path.join(work, "strace")
        tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(child.pid), "-o", trace],
                                  stderr=subprocess.PIPE)
        time.sleep(1.0)                 # attached (strace attaches before its first report line)
        run(n)
        time.sleep(0.2)
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        with open(trace) as f:
            text = f.read()
        rows = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 5 and re.fullmatch(r"[0-9.]+", fields[0]) and fields[-1] != "total":
                calls = int(fields[3])
                rows.append((calls, fields[-1]))
            if fields and fields[-1] == "total":
                total_calls = int(fields[3])
        rows.sort(reverse=True)
        print("profile: %s" % prof_file if kind != "microsocks" else "")
        print("%s syscalls per %s: %.2f  (%s)" % (
            kind, "request" if kind == "http" else "session", total_calls / n,
            ", ".join("%s %.2f" % (name, calls / n) for calls, name in rows if calls / n >= 0.005)))
    finally:
        child.terminate()
        child.wait()
        server.stop()


if __name__ == "__main__":
    main()

"""Per-request and per-session cost of the proxy PROCESS alone, in counts that load does not
move: Python calls (cProfile, inside the proxy process only) and system calls (strace -c -f
attached to the proxy process only). The origin and the clients run in this process, the proxy
in a child (or microsocks, for the SOCKS5 reference), so nothing of theirs is counted.

    .venv/bin/python bench/proxy_counts.py TREE http  N      # keep-alive absolute-URI GETs of 1 KB, 4 connections
    .venv/bin/python bench/proxy_counts.py TREE socks N      # SOCKS5 sessions: connect, CONNECT, GET 1 KB, close
    .venv/bin/python bench/proxy_counts.py -    microsocks N # the same sessions through microsocks (syscalls only)

TREE is a checkout (this one: .; an older commit: git archive REV | tar -x -C /tmp/old). Prints
"python calls per request", "greenlet switches per request" and "syscalls per request" (with the
top syscalls); each counted run follows a warm-up of 200 requests, so connection set-up of
keep-alive clients is amortised. With CALLGRIND=1 it also prints the proxy's user-space
instructions per request (valgrind --tool=callgrind; two runs of the proxy under it, N and 3N
requests, the difference over 2N: start-up cancels out; slow, N=300 is plenty), the one CPU
figure load does not move. WAIT_MS=20 makes every request wait for both the client and the
origin (see WAIT_SECONDS), as under load. CPU_US=1 prints user/system CPU us per request of an unprofiled run
(noisy: only to see how the time splits between Python and the kernel).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CONNS = int(os.environ.get("CONNS", "4"))      # client connections at once
# WAIT_MS=20: the origin waits that long before each answer and each client before each request
# (SOCKS5: before its greeting and its CONNECT too), so that the proxy always finds nothing there
# and waits (EAGAIN, watcher, hub, back): the path a busy proxy takes, counted the same way in
# every run (callgrind included).
WAIT_SECONDS = float(os.environ.get("WAIT_MS", "0")) / 1000.0
WARMUP = 200


def serve(tree, kind, port_file, prof_file):
    """The child: a ProxyServer on 127.0.0.1:0; SIGUSR1 starts cProfile, SIGUSR2 dumps it."""
    sys.path.insert(0, tree)
    from gevent import monkey
    monkey.patch_all()
    import cProfile
    import ipaddress
    import gevent
    import greenlet
    from tomato_gevent.proxy import socks_session
    from tomato_gevent.proxy.server import ProxyServer
    from tomato_gevent.rules import RuleSet, parse_rules

    loopback = [ipaddress.ip_address("127.0.0.1")]

    class Resolver:                     # a cached answer, as the real resolver gives for literals
        def resolve(self, host):
            return loopback

    from tomato_gevent.proxy import server
    if hasattr(server, "tune_gevent"):     # what bin/proxy does in each serving process, where it does
        server.tune_gevent()
    proxy = ProxyServer(("127.0.0.1", 0), RuleSet(parse_rules([])), resolver=Resolver(),
                        allow_private=True, socks5_handler=socks_session.handle)
    proxy.start()
    profile = cProfile.Profile()
    switches = [0]

    def count_switch(event, args):          # greenlet.settrace: one call per switch or throw
        switches[0] += 1

    def start():
        switches[0] = 0
        greenlet.settrace(count_switch)
        if os.environ.get("PROFILE", "1") != "0":
            profile.enable()

    def stop():
        profile.disable()
        greenlet.settrace(None)
        profile.dump_stats(prof_file)
        with open(prof_file + ".switches", "w") as f:
            f.write(str(switches[0]))
        open(prof_file + ".done", "w").close()
    gevent.signal_handler(signal.SIGUSR1, start)
    gevent.signal_handler(signal.SIGUSR2, stop)
    gevent.signal_handler(signal.SIGTERM, lambda: os._exit(0))     # callgrind writes its file at exit
    with open(port_file + ".tmp", "w") as f:
        f.write(str(proxy.server_port))
    os.rename(port_file + ".tmp", port_file)
    gevent.wait()


def wait_file(path, timeout=30):
    deadline = time.monotonic() + timeout
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
    # The head nginx (make bench's origin) sends for its 1 KB file: nine fields, ~250 bytes.
    answer = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 11:30:00 GMT\r\n"
              b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
              b"Last-Modified: Sun, 06 Dec 2026 11:00:00 GMT\r\nConnection: keep-alive\r\n"
              b'ETag: "6774f1a0-400"\r\nAccept-Ranges: bytes\r\n\r\n') + body

    def origin(sock, address):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                if WAIT_SECONDS:
                    gevent.sleep(WAIT_SECONDS)
                sock.sendall(answer)
    server = StreamServer(("127.0.0.1", 0), origin)
    server.start()
    origin_port = server.server_port

    work = tempfile.mkdtemp(prefix="proxy_counts.")
    port_file, prof_file = os.path.join(work, "port"), os.path.join(work, "prof")

    def start_child(prefix=(), name="port"):
        path = os.path.join(work, name)
        child = subprocess.Popen(list(prefix) + [sys.executable, os.path.abspath(__file__), os.path.abspath(tree),
                                                 "serve-" + kind, "0", path, prof_file],
                                 env=dict(os.environ, PYTHONHASHSEED="0"))
        wait_file(path, 600 if prefix else 30)
        with open(path) as f:
            return child, int(f.read())

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
        child, proxy_port = start_child()

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

    def http_client(count, port):
        sock = socket.create_connection(("127.0.0.1", port))
        buf = b""
        for _ in range(count):
            if WAIT_SECONDS:
                gevent.sleep(WAIT_SECONDS)
            sock.sendall(request)
            buf = read_answer(sock, buf)
        sock.close()

    def socks_session(port):
        sock = socket.create_connection(("127.0.0.1", port))
        if WAIT_SECONDS:                # the proxy waits for the greeting, the request, the answer
            gevent.sleep(WAIT_SECONDS)
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        if WAIT_SECONDS:
            gevent.sleep(WAIT_SECONDS)
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

    def run(count, port=proxy_port):
        if kind == "http":
            jobs = [gevent.spawn(http_client, count // CONNS, port) for _ in range(CONNS)]
        else:
            jobs = []
            for _ in range(CONNS):
                jobs.append(gevent.spawn(lambda c=count // CONNS: [socks_session(port) for _ in range(c)]))
        gevent.joinall(jobs, raise_error=True)

    unit = "request" if kind == "http" else "session"

    def cpu_ticks(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])        # utime, stime (clock ticks)

    def callgrind_instructions():
        """User-space instructions of the proxy per request: runs of n and 3n under callgrind."""
        totals = []
        for i, count in enumerate((n, 3 * n)):
            out = os.path.join(work, "callgrind.%d" % i)
            grind, grind_port = start_child(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out],
                                            "port.grind%d" % i)
            run(WARMUP, grind_port)
            run(count, grind_port)
            grind.send_signal(signal.SIGTERM)
            grind.wait()
            with open(out) as f:
                totals.append(int(re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M).group(1)))
        return (totals[1] - totals[0]) / (2 * n)

    try:
        run(WARMUP)
        if kind != "microsocks":
            if os.environ.get("CPU_US"):
                before = cpu_ticks(child.pid)
                run(n)
                after = cpu_ticks(child.pid)
                tick = os.sysconf("SC_CLK_TCK")
                print("%s CPU us per %s (noisy): user %.1f, system %.1f" % (
                    kind, unit, (after[0] - before[0]) / tick / n * 1e6, (after[1] - before[1]) / tick / n * 1e6))
            child.send_signal(signal.SIGUSR1)
            time.sleep(0.2)             # the child's signal handler runs on its next loop turn
            run(n)
            child.send_signal(signal.SIGUSR2)
            wait_file(prof_file + ".done")
            import pstats
            stats = pstats.Stats(prof_file)
            total = sum(v[1] for k, v in stats.stats.items() if k[2] != "count_switch")
            print("%s python calls per %s: %.1f" % (kind, unit, total / n))
            with open(prof_file + ".switches") as f:
                print("%s greenlet switches per %s: %.2f" % (kind, unit, int(f.read()) / n))
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
            kind, unit, total_calls / n,
            ", ".join("%s %.2f" % (name, calls / n) for calls, name in rows if calls / n >= 0.005)))
        if os.environ.get("CALLGRIND") and kind != "microsocks":
            print("%s instructions per %s (callgrind, user space): %.0f" % (kind, unit, callgrind_instructions()))
    finally:
        child.terminate()
        child.wait()
        server.stop()


if __name__ == "__main__":
    main()

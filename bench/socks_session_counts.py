"""Per-session cost of the proxy on make bench's SOCKS5 sessions path, in counts that load does
not move much: the real bin/proxy of a checkout (-d direct --workers 1 --no-access-log), a local
nginx serving /1k (proxy_bench.NGINX_CONF), and curl -Z fetching it 20 at a time through
socks5h://, each fetch a new SOCKS5 session with Connection: close (what make bench times).

    .venv/bin/python bench/socks_session_counts.py TREE syscalls N   # strace -c -f of the proxy, N sessions
    .venv/bin/python bench/socks_session_counts.py TREE grind N      # user-space instructions (callgrind:
                                                                     # N and 3N sessions, the difference / 2N)
    .venv/bin/python bench/socks_session_counts.py TREE calls N      # Python calls (cProfile of N sessions
                                                                     # less a run without them)

TREE is a checkout (. or git archive REV | tar -x -C /tmp/old). bench/proxy_counts.py counts a
SOCKS5 client of its own in lock-step (4 at once); this one counts curl's sessions, whose timing
differs (one connection pending per accept, the request already there when the proxy reads). The
counts still move with the machine's load by a few per cent (how many events one loop turn finds):
compare runs made one after the other, more than once.
"""
import os
import pstats
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_bench import NGINX_CONF  # noqa: E402

PARALLEL = 20
WARMUP = 200


def wait_port(port, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on port %d" % port)


def main():
    tree, mode, n = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    work = tempfile.mkdtemp(prefix="socks_session_counts.")
    os.chmod(work, 0o755)                   # nginx's worker runs as nobody
    os.makedirs(work + "/www")
    with open(work + "/www/1k", "wb") as f:
        f.write(b"x" * 1024)
    os.chmod(work + "/www/1k", 0o644)
    origin_port = 30000 + os.getpid() % 1000
    proxy_port = origin_port + 1000
    with open(work + "/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(d=work, port=origin_port))
    procs = []

    def curl(count):
        config = work + "/sessions.curl"
        with open(config, "w") as f:
            f.write('url = "http://127.0.0.1:%d/1k"\noutput = "/dev/null"\n' % origin_port * count)
        done = subprocess.run(["curl", "-sS", "--max-time", "60", "--noproxy", "", "-Z", "--parallel-max",
                               str(PARALLEL), "-H", "Connection: close", "-w", "%{http_code}\\n",
                               "-x", "socks5h://127.0.0.1:%d" % proxy_port, "-K", config],
                              capture_output=True, text=True)
        if done.stdout.split().count("200") != count:
            raise SystemExit("curl: not every fetch answered 200: %s" % done.stderr[-300:])

    def proxy(prefix=(), python_args=()):
        argv = list(prefix) + [sys.executable] + list(python_args) + [
            os.path.join(tree, "bin/proxy"), "-a", "127.0.0.1:%d" % proxy_port, "-d", "direct",
            "--workers", "1", "--no-access-log"]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONHASHSEED="0"))
        procs.append(proc)
        wait_port(proxy_port)
        return proc

    def stop(proc):
        proc.send_signal(signal.SIGTERM)
        proc.wait()

    procs.append(subprocess.Popen(["nginx", "-p", work, "-e", work + "/error.log", "-c", work + "/nginx.conf"]))
    try:
        wait_port(origin_port)
        if mode == "syscalls":
            proc = proxy()
            curl(WARMUP)
            tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(proc.pid), "-o", work + "/strace"],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)                 # attached
            curl(n)
            time.sleep(0.3)
            tracer.send_signal(signal.SIGINT)
            tracer.wait()
            stop(proc)
            rows, total = [], 0
            with open(work + "/strace") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 5 and re.fullmatch(r"[0-9.]+", fields[0]) and fields[-1] != "total":
                        rows.append((int(fields[3]), fields[-1]))
                    if fields and fields[-1] == "total":
                        total = int(fields[3])
            rows.sort(reverse=True)
            print("syscalls per session: %.2f (%s)" % (total / n, ", ".join(
                "%s %.2f" % (name, calls / n) for calls, name in rows if calls / n >= 0.005)))
        elif mode == "grind":
            totals = []
            for i, count in enumerate((n, 3 * n)):
                out = "%s/callgrind.%d" % (work, i)
                proc = proxy(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out])
                curl(WARMUP)
                curl(count)
                stop(proc)
                with open(out) as f:
                    totals.append(int(re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M).group(1)))
            print("user-space instructions per session (callgrind): %.0f" % ((totals[1] - totals[0]) / (2 * n)))
        elif mode == "calls":
            profiles = []
            for count in (n, 0):
                out = "%s/profile.%d" % (work, len(profiles))
                proc = proxy(python_args=["-m", "cProfile", "-o", out])
                curl(WARMUP)
                if count:
                    curl(count)
                stop(proc)
                profiles.append(pstats.Stats(out).stats)
            # Keys of built-ins named by address ("__new__ of type object at 0x...") differ between
            # runs: those rows count the whole run, not the difference.
            rows = sorted(((v[1] - profiles[1].get(k, (0, 0))[1]) / n, k) for k, v in profiles[0].items())
            rows.reverse()
            print("python calls per session: %.1f" % sum(r[0] for r in rows))
            for calls, key in rows[:40]:
                if calls >= 0.5:
                    print("%7.2f %s:%d %s" % (calls, os.path.basename(key[0]), key[1], key[2]))
        else:
            raise SystemExit("mode: syscalls, grind or calls")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()

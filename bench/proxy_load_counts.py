"""Syscalls and greenlet switches per request of the proxy process under the load `make bench`
puts on it: wrk -t1 -c50 keep-alive absolute-URI GETs of 1 KB from nginx, for a few seconds.
Counts, not rates: the rate wrk reaches on a shared machine is only printed as a noisy aside.

    .venv/bin/python bench/proxy_load_counts.py TREE [SECONDS]
    PROFILE=0 .venv/bin/python bench/proxy_load_counts.py TREE   # no cProfile: the proxy at full
                                                                # speed, so waits are as in make bench

Under this load the proxy is busy, so its waits are real waits: a recv on a socket with
nothing yet (EAGAIN), the watcher, the hub, epoll_wait. bench/proxy_counts.py (4 clients, the
proxy slowed by strace or cProfile) mostly finds the bytes already there; the two together
bracket what a request costs. Syscalls are counted with perf's syscall tracepoints (no
slow-down: `perf stat -e raw_syscalls:sys_enter`), attached to the proxy process only.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proxy_bench import NGINX_CONF    # noqa: E402  (the bench's own origin configuration)

SYSCALLS = ("recvfrom", "sendto", "epoll_wait", "epoll_ctl")
LUA = 'wrk.path = "http://127.0.0.1:%d/1k"\nwrk.headers["Host"] = "127.0.0.1:%d"\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what):
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit("%s did not listen on %d" % (what, port))


def main():
    tree = os.path.abspath(sys.argv[1])
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = tempfile.mkdtemp(prefix="proxy_load_counts.")
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "1k"), "wb") as f:
        f.write(b"x" * 1024)
    origin_port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=work, port=origin_port))
    with open(os.path.join(work, "abs.lua"), "w") as f:
        f.write(LUA % (origin_port, origin_port))
    procs = []
    try:
        procs.append(subprocess.Popen(["nginx", "-p", work, "-e", os.path.join(work, "error.log"),
                                       "-c", os.path.join(work, "nginx.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(origin_port, "nginx")
        port_file, prof_file = os.path.join(work, "port"), os.path.join(work, "prof")
        proxy = subprocess.Popen([sys.executable, os.path.join(HERE, "proxy_counts.py"), tree, "serve-http", "0",
                                  port_file, prof_file])
        procs.append(proxy)
        for _ in range(3000):
            if os.path.exists(port_file):
                break
            time.sleep(0.01)
        with open(port_file) as f:
            proxy_port = int(f.read())
        url = "http://127.0.0.1:%d/" % proxy_port
        wrk = ["wrk", "-t1", "-c50", "-s", os.path.join(work, "abs.lua")]
        subprocess.run(wrk + ["-d1s", url], check=True, stdout=subprocess.DEVNULL)     # warm-up
        events = ",".join(["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + s for s in SYSCALLS])
        perf_out = os.path.join(work, "perf")
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-o", perf_out, "-e", events, "-p", str(proxy.pid)])
        time.sleep(0.5)
        proxy.send_signal(signal.SIGUSR1)        # greenlet switches counted (and cProfile on)
        out = subprocess.run(wrk + ["-d%ds" % seconds, url], check=True, capture_output=True, text=True).stdout
        proxy.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rate = re.search(r"Requests/sec:\s*([\d.]+)", out).group(1)
        counts = {}
        with open(perf_out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    counts[fields[2].split(":")[-1].replace("sys_enter_", "")] = int(fields[0])
        for _ in range(500):
            if os.path.exists(prof_file + ".done"):
                break
            time.sleep(0.02)
        with open(prof_file + ".switches") as f:
            switches = int(f.read())
        import pstats
        try:
            stats = pstats.Stats(prof_file)
        except TypeError:               # PROFILE=0: an empty profile
            stats = None
        if stats is None:
            print("requests %d (wrk %s req/s: noisy, not a rate to quote)" % (requests, rate))
            print("load syscalls per request: %.2f  (%s)" % (
                counts["sys_enter"] / requests,
                ", ".join("%s %.2f" % (name, counts[name] / requests) for name in SYSCALLS)))
            print("load greenlet switches per request: %.2f" % (switches / requests))
            return
        calls = sum(v[1] for k, v in stats.stats.items() if k[2] != "count_switch")
        raw_recv = sum(v[1] for k, v in stats.stats.items() if k[2] == "<method 'recv' of '_socket.socket' objects>")
        print("requests %d (wrk %s req/s with cProfile on: noisy, not a rate to quote)" % (requests, rate))
        print("load syscalls per request: %.2f  (%s)" % (
            counts["sys_enter"] / requests,
            ", ".join("%s %.2f" % (name, counts[name] / requests) for name in SYSCALLS)))
        print("load greenlet switches per request: %.2f" % (switches / requests))
        print("load python calls per request: %.1f (raw socket recv %.2f)" % (calls / requests, raw_recv / requests))
        if os.environ.get("VERBOSE"):
            rows = sorted(((v[1] / requests, "%s:%d(%s)" % (os.path.basename(k[0]), k[1], k[2]))
                           for k, v in stats.stats.items()), reverse=True)
            for per, name in rows[:int(os.environ["VERBOSE"])]:
                print("  %6.2f %s" % (per, name))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

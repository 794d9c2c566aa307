#!/usr/bin/env python3
"""Counts per data packet of bin/vpn that load does not move much: system calls (strace -c -f)
and Python calls (cProfile), on the sending and the receiving side of one TCP stream.

    sudo .venv/bin/python bench/vpn_counts.py [TREE ...] [--mbytes 40] [--offload 1|0] [--udp SIZE]

TREE is a checkout whose bin/vpn is measured (default: this one); to compare with an
older commit: `git worktree add --detach /tmp/vpn-old a22b20b` and pass /tmp/vpn-old
(its code runs with this checkout's .venv interpreter). Two namespaces joined by a veth,
tun0 pre-created in each as the seed's README does (MTU 1400), the seed's command lines
with --keep-warm 0 (the warm loop's timer would add calls that depend on time, not on
packets); a Python TCP client in B sends MBYTES to a server in A through the tunnel.
So B's vpn is the sender (tun -> seal -> UDP) and A's the receiver (UDP -> open -> tun)
of the data; each also carries the ACKs the other way.

  syscalls    strace -c -f attached once the tunnel is up, detached after the transfer
  py calls    cProfile over the whole process, minus a run that only starts and stops
              (start-up and shutdown are not per packet)
Per packet = per full-size TCP segment of the stream (MBYTES / MSS 1348 at MTU 1400 with
timestamps), the same denominator for every tree. With --udp SIZE the client sends UDP
datagrams of SIZE payload bytes instead (issue 19's 64-byte packets/s), MBYTES x 1000 of
them in bursts of 50 with a 1 ms pause (so that few are lost), and per packet = per
datagram the server received.
"""
import argparse
import json
import pstats
import re
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from benchlib import profiled_vpn_pair  # noqa: E402
from tests.netns.nsutil import Lab, wait_for  # noqa: E402

MSS = 1400 - 20 - 20 - 12
PORT = 5000
SERVER = r'''
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.1.1", 8000)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); n = 0
buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k: break
    n += k
print("received", n, flush=True)
'''
UDP_SERVER = r'''
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.1.1", 8000)); print("listening", flush=True)
n = 0
while s.recv(65536) != b"end":
    n += 1
print("received", n, flush=True)
'''
UDP_CLIENT = r'''
import socket, sys, time
count, size = int(sys.argv[1]), int(sys.argv[2])
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); payload = bytes(size)
for i in range(count):
    c.sendto(payload, ("10.0.1.1", 8000))
    if i % 50 == 49:
        time.sleep(0.001)
for _ in range(20):
    time.sleep(0.05); c.sendto(b"end", ("10.0.1.1", 8000))
'''
CLIENT = r'''
import socket, sys
n = int(sys.argv[1]); c = socket.create_connection(("10.0.1.1", 8000), timeout=60)
chunk = bytes(range(256)) * 256; sent = 0
while sent < n:
    c.sendall(chunk[:min(len(chunk), n - sent)]); sent += min(len(chunk), n - sent)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
'''


def run_once(tree, nbytes, offload, out_dir, tag, udp=0):
    """One measured run: returns ({side: {"syscalls": {name: calls}, "profile": path}}, the
    server's count: bytes, or with udp datagrams)."""
    lab = Lab()
    try:
        env = {"TOMATO_VPN_OFFLOAD": "1" if offload else "0"}
        a, b, procs, profiles = profiled_vpn_pair(lab, tree, ("receiver", "sender"), out_dir, tag, PORT,
                                                  ["--keep-warm", "0"], env=env, timeout=20)
        straces = {}
        if nbytes:
            for side, proc in procs.items():
                path = out_dir / ("%s-%s.strace" % (tag, side))
                straces[side] = (lab.spawn(None, ["strace", "-c", "-f", "-o", path, "-p", proc.pid]), path)
            for tracer, _ in straces.values():
                lab.wait_log(tracer, "attached")
            server = lab.spawn(a, [sys.executable, "-c", UDP_SERVER if udp else SERVER])
            lab.wait_log(server, "listening")
            client = [UDP_CLIENT, nbytes // 1000, udp] if udp else [CLIENT, nbytes]
            lab.run(b, [sys.executable, "-c"] + client, check=True, timeout=300)
            wait_for(lambda: "received" in server.output(), timeout=30, what="the server's count")
            got = int(server.output().split()[-1])
            if got != nbytes and not udp:
                raise SystemExit("%s: the server received %d of %d bytes" % (tag, got, nbytes))
            for tracer, _ in straces.values():
                lab.stop(tracer, signal.SIGINT)
        for proc in procs.values():
            if lab.stop(proc, timeout=20) != 0:
                raise SystemExit("%s: bin/vpn exited %s:\n%s" % (tag, proc.returncode, proc.output()[-2000:]))
        return ({side: {"syscalls": parse_strace(straces[side][1]) if nbytes else {}, "profile": profiles[side]}
                 for side in procs}, got if nbytes else 0)
    finally:
        lab.close()


def parse_strace(path):
    """{syscall: calls} from strace -c's table."""
    calls = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.match(r"^\d+\.\d+$", fields[0]) and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def profile_calls(path):
    stats = pstats.Stats(str(path))
    return stats.total_calls, stats


def top_calls(stats, base_stats, packets, n=12):
    """The functions with most calls per packet (this run minus the idle run)."""
    base = {k: v[1] for k, v in base_stats.stats.items()}
    rows = [(v[1] - base.get(k, 0), k) for k, v in stats.stats.items()]
    rows.sort(reverse=True)
    return ["%7.2f  %s:%d(%s)" % (calls / packets, Path(k[0]).name, k[1], k[2]) for calls, k in rows[:n]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", default=[str(REPO)])
    parser.add_argument("--mbytes", type=int, default=40)
    parser.add_argument("--offload", type=int, default=1, choices=(0, 1))
    parser.add_argument("--top", type=int, default=0, help="also list the N functions called most per packet")
    parser.add_argument("--udp", type=int, default=0, metavar="SIZE",
                        help="UDP datagrams of SIZE payload bytes (MBYTES x 1000 of them) instead of a TCP stream")
    args = parser.parse_args()
    out_dir = REPO / "bench" / "out" / "counts"
    out_dir.mkdir(parents=True, exist_ok=True)
    nbytes = args.mbytes * 1_000_000
    packets = nbytes / MSS
    results = {}
    for tree in args.trees:
        tag = Path(tree).resolve().name
        idle, _ = run_once(tree, 0, args.offload, out_dir, tag + "-idle")
        busy, got = run_once(tree, nbytes, args.offload, out_dir, tag, args.udp)
        if args.udp:
            packets = got
        row = {"udp_received": got} if args.udp else {}
        for side in ("sender", "receiver"):
            syscalls = busy[side]["syscalls"]
            total, stats = profile_calls(busy[side]["profile"])
            base, base_stats = profile_calls(idle[side]["profile"])
            row[side] = {"syscalls_per_packet": round(sum(syscalls.values()) / packets, 3),
                         "by_syscall": {k: round(v / packets, 3) for k, v in
                                        sorted(syscalls.items(), key=lambda kv: -kv[1]) if v / packets >= 0.005},
                         "py_calls_per_packet": round((total - base) / packets, 2)}
            if args.top:
                row[side]["top"] = top_calls(stats, base_stats, packets, args.top)
        results[tree] = row
        print(json.dumps({tree: row}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

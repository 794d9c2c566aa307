#!/usr/bin/env python3
"""The Python calls between a ping's system calls, each side: the critical path, counted.

    .venv/bin/python bench/ping_calls.py [--pings N] TREE [TREE ...] [-- extra bin/vpn args]

Runs TREE's bin/vpn on both ends (as bench/ping_counts.py) under a profile hook
(sys.setprofile) that, once the tunnel is up, records every Python function call and the
calls into the system (readv, recvmsg_into, writev, sendto, epoll's poll, sched_yield) and the
scheduler's wait in the hub; then pings N times at 0.2 s. For each side it prints the most frequent
sequence per ping, written as the system calls in order with the number of Python
function calls between them, e.g. `wait 3 recvmsg_into 4 writev`: what runs between a wakeup
and the packet's send or tun write. Counts, not time: load does not move them.
"""
import argparse
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import REPO, log  # noqa: E402
from tests.netns.nsutil import Lab  # noqa: E402

PORT = 5078
WAITS = {"_wait_idle", "wait"}      # the scheduler's wait in the hub (main: _wait_idle; idlewait.py)
SYSTEM = {"readv", "recvmsg_into", "recvfrom_into", "writev", "write", "sendto", "sendmsg", "poll",
          "sched_yield"}

HOOK = r"""
import os, signal, sys, runpy
events, on = [], [False]
def prof(frame, event, arg):
    if not on[0]:
        return
    if event == "call":
        name = frame.f_code.co_name
        events.append("!wait" if name in WAITS else name)
    elif event == "c_call":
        name = getattr(arg, "__name__", "")
        if name in SYSTEM:
            events.append("!" + name)
def start(*_):
    on[0] = True
def dump(*_):
    on[0] = False
    with open(OUT, "w") as f:
        f.write("\n".join(events))
    os._exit(0)
signal.signal(signal.SIGWINCH, start)
signal.signal(signal.SIGUSR2, dump)
sys.setprofile(prof)
import threading; threading.setprofile(prof)
sys.argv = [SCRIPT] + ARGS
runpy.run_path(SCRIPT, run_name="__main__")
"""


def per_ping(events):
    """The recorded events as a list of system calls (and waits), each preceded by the number
    of Python function calls since the one before, e.g. ['2 recvmsg_into', '3 writev']."""
    seq, count = [], 0
    for e in events:
        if e.startswith("!"):
            seq.append("%d %s" % (count, e[1:]) if count else e[1:])
            count = 0
        else:
            count += 1
    return seq


def run(tree, pings, extra):
    lab = Lab()
    outs = {}
    try:
        a, b = lab.netns(), lab.netns()
        lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
        lab.tun(a, "tun0", "10.0.1.1/30")
        lab.tun(b, "tun0", "10.0.1.2/30")
        procs = {}
        for side, ns, lp, pp, peer in (("A", a, "pwd1", "pwd2", "10.9.0.2"), ("B", b, "pwd2", "pwd1", "10.9.0.1")):
            outs[side] = Path("/tmp/ping_calls_%s_%d.txt" % (side, os.getpid()))
            args = ["-la", ":%d" % PORT, "-lp", lp, "-pa", "%s:%d" % (peer, PORT), "-pp", pp, *extra]
            code = "WAITS = %r\nSYSTEM = %r\nOUT = %r\nSCRIPT = %r\nARGS = %r\n" % (
                WAITS, SYSTEM, str(outs[side]), str(Path(tree).resolve() / "bin" / "vpn"), args) + HOOK
            procs[side] = lab.spawn(ns, [sys.executable, "-c", code], cwd=str(Path(tree).resolve()))
        for proc in procs.values():
            lab.wait_log(proc, "tunnel ", timeout=30)
        lab.run(b, ["ping", "-n", "-c", 3, "-i", 0.2, "10.0.1.1"], timeout=20)
        time.sleep(2.5)                             # past any keep-warm
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGWINCH)
        done = lab.run(b, ["ping", "-n", "-c", pings, "-i", 0.2, "10.0.1.1"], timeout=pings + 20)
        if done.stdout.count("time=") != pings:
            raise SystemExit("%s: not every ping answered" % tree)
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGUSR2)
            proc.wait(timeout=20)
        return {side: out.read_text().split("\n") for side, out in outs.items()}
    finally:
        for out in outs.values():
            if out.exists():
                out.unlink()
        lab.close()


def summarize(tree, side, events, pings):
    seq = per_ping(events)
    # One ping on each side starts where the side's wait returns with the packet: cut the
    # sequence at every wait ('poll' of the native epoll, 'wait' in the hub: its Python
    # calls are counted after it) and count the pieces that carry a sendto or writev.
    pieces, piece = collections.Counter(), []
    for item in seq:
        piece.append(item)
        if item.endswith("poll") or item.endswith("wait"):
            text = " ".join(piece)
            if "sendto" in text or "writev" in text:
                pieces[text] += 1
            piece = []
    pycalls = sum(1 for e in events if e and not e.startswith("!"))
    log("%-30s %s: %.1f Python function calls per ping in all", tree, side, pycalls / pings)
    for text, n in pieces.most_common(4):
        log("    %3d x  %s", n, text)


def main():
    parser = argparse.ArgumentParser(prog="bench/ping_calls.py")
    parser.add_argument("--pings", type=int, default=20)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    for tree in args.trees:
        events = run(tree, args.pings, extra)
        for side in ("B", "A"):
            summarize(tree, side, events[side], args.pings)


if __name__ == "__main__":
    main()

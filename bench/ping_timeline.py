#!/usr/bin/env python3
"""Where a ping's round trip through the tunnel goes: a per-hop timeline from ftrace.

    .venv/bin/python bench/ping_timeline.py [--count N] [--interval S] [--openvpn] CHECKOUT

Starts CHECKOUT's bin/vpn between two namespaces (as bench/ping_ab.py; with --openvpn, OpenVPN
2.6 instead), pings B -> A through it and records, in a trace instance of its own
(/sys/kernel/tracing/instances), sched_wakeup/sched_switch and every system call of the two
tunnel processes and of ping. For each ping it finds the chain

    ping sends -> B reads the tun -> B sends the datagram -> A receives it -> A writes the tun
    -> A reads the echo reply -> A sends it -> B receives it -> B writes the tun -> ping receives

(each step the first such system call after the previous one) and prints, per step, the
median time from the previous step, with where the process was woken and put on a CPU in
between; also the system calls and the CPU time (switch-in to switch-out) of each process per
ping. Timings move with the machine's load: read the structure (which step is long, how many
calls) rather than the absolute figures. Needs root.
"""
import argparse
import collections
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vpn_bench  # noqa: E402
from benchlib import BenchLab, log  # noqa: E402
from ping_ab import start_checkout  # noqa: E402
from vpn_bench import OPENVPN, TARGET, VpnLab  # noqa: E402

TRACING = Path("/sys/kernel/tracing")
# x86_64 system call numbers
NET_SEND = {44, 46}             # sendto, sendmsg
NET_RECV = {45, 47}             # recvfrom, recvmsg
TUN_WRITE = {1, 20}             # write, writev
TUN_READ = {0, 19}              # read, readv
WAITS = {7, 23, 232, 270, 281, 441}
NAMES = {0: "read", 1: "write", 7: "poll", 19: "readv", 20: "writev", 23: "select", 24: "sched_yield",
         39: "getpid", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 228: "clock_gettime",
         232: "epoll_wait", 233: "epoll_ctl", 270: "pselect6", 281: "epoll_pwait", 441: "epoll_pwait2"}

# (role, enter/exit, syscalls, label)
CHAIN = [
    ("P", "enter", NET_SEND, "ping sends"),
    ("B", "exit", TUN_READ, "B tun read returns"),
    ("B", "enter", NET_SEND, "B sends datagram"),
    ("A", "exit", NET_RECV, "A receive returns"),
    ("A", "enter", TUN_WRITE, "A tun write starts"),
    ("A", "exit", TUN_WRITE, "A tun write returns"),
    ("A", "exit", TUN_READ, "A reads the reply"),
    ("A", "enter", NET_SEND, "A sends datagram"),
    ("B", "exit", NET_RECV, "B receive returns"),
    ("B", "enter", TUN_WRITE, "B tun write starts"),
    ("P", "exit", NET_RECV, "ping receives"),
]
LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)$")


def write(path, text):
    Path(path).write_text(text)


def parse(text, roles):
    """{role: [(t, kind, data)]}: kind 'enter'/'exit' (data: NR), 'wakeup', 'on', 'off'."""
    by_pid = {pid: role for role, pid in roles.items()}
    events = collections.defaultdict(list)
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        pid, t, name, rest = int(m.group(2)), float(m.group(4)), m.group(5), m.group(6)
        if name == "sys_enter" or name == "sys_exit":
            if pid in by_pid:
                nr = int(rest.split()[1])
                events[by_pid[pid]].append((t, "enter" if name == "sys_enter" else "exit", nr))
        elif name == "sched_wakeup":
            wpid = int(re.search(r"pid=(\d+)", rest).group(1))
            if wpid in by_pid:
                events[by_pid[wpid]].append((t, "wakeup", None))
        elif name == "sched_switch":
            prev = int(re.search(r"prev_pid=(\d+)", rest).group(1))
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if prev in by_pid:
                events[by_pid[prev]].append((t, "off", None))
            if nxt in by_pid:
                events[by_pid[nxt]].append((t, "on", None))
    return events


def first_after(events, t, kind, nrs):
    for e in events:
        if e[0] >= t and e[1] == kind and (nrs is None or e[2] in nrs):
            return e[0]
    return None


def last_between(events, t0, t1, kind):
    found = None
    for e in events:
        if e[0] > t1:
            break
        if e[0] >= t0 and e[1] == kind:
            found = e[0]
    return found


def analyse(events, count):
    starts = [e[0] for e in events["P"] if e[1] == "enter" and e[2] in NET_SEND]
    steps = collections.defaultdict(list)
    per_ping = collections.defaultdict(lambda: collections.defaultdict(list))
    for i, t0 in enumerate(starts):
        t_end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        t, prev_role, ok = t0, "P", True
        chain = []
        for role, kind, nrs, label in CHAIN:
            found = first_after(events[role], t, kind, nrs)
            if found is None or found >= t_end:
                ok = False
                break
            woke = last_between(events[role], t, found, "wakeup")
            on = last_between(events[role], t, found, "on")
            chain.append((label, found - t, None if woke is None else woke - t, None if on is None else on - t))
            t = found
        if not ok:
            continue
        for label, dt, woke, on in chain:
            steps[label].append((dt, woke, on))
        for role in ("A", "B"):
            calls = collections.Counter(e[2] for e in events[role] if t0 <= e[0] < t_end and e[1] == "enter")
            per_ping[role]["calls"].append(sum(calls.values()))
            for nr, n in calls.items():
                per_ping[role][NAMES.get(nr, str(nr))].append(n)
            on_cpu, since = 0.0, None
            for e in events[role]:
                if e[0] < t0 or e[0] >= t_end:
                    continue
                if e[1] == "on":
                    since = e[0]
                elif e[1] == "off" and since is not None:
                    on_cpu += e[0] - since
                    since = None
            per_ping[role]["cpu_us"].append(on_cpu * 1e6)
    n = len(steps[CHAIN[0][3]])
    log("%d of %d pings with the whole chain", n, len(starts))
    total = 0.0
    for role, kind, nrs, label in CHAIN[1:]:
        rows = steps[label]
        if not rows:
            continue
        med = statistics.median(r[0] for r in rows) * 1e6
        total += med
        woke = [r[1] * 1e6 for r in rows if r[1] is not None]
        on = [r[2] * 1e6 for r in rows if r[2] is not None]
        log("  %-22s +%7.1f us  (woken in %d/%d, median at +%s us; on cpu at +%s us)", label, med, len(woke),
            len(rows), "%.1f" % statistics.median(woke) if woke else "-",
            "%.1f" % statistics.median(on) if on else "-")
    log("  sum of medians %.1f us", total)
    for role in ("B", "A"):
        cols = per_ping[role]
        log("  %s per ping: %s", role, ", ".join("%s %.1f" % (k, sum(v) / len(v) if k != "cpu_us" else
                                                             statistics.median(v))
                                               for k, v in sorted(cols.items(), key=lambda kv: -sum(kv[1]))))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/ping_timeline.py")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--openvpn", action="store_true")
    parser.add_argument("--raw", help="keep the trace text in this file")
    parser.add_argument("checkout", nargs="?", default=".")
    args = parser.parse_args(argv)
    lab = BenchLab()
    inst = TRACING / "instances" / ("ping_timeline_%d" % int(time.time()))
    try:
        vpn = VpnLab(lab)
        if args.openvpn:
            up = vpn.start_openvpn()
            if up is not True:
                raise SystemExit("OpenVPN: %s" % up)
            target, procs = TARGET[OPENVPN], vpn.procs[OPENVPN]
        else:
            target, procs = start_checkout(vpn, 0, args.checkout)
        time.sleep(3)                           # past any keep-warm after the start's pings
        inst.mkdir()
        write(inst / "trace_clock", "mono")
        write(inst / "buffer_size_kb", "8192")
        ping = lab.spawn(vpn.b, ["sh", "-c", "sleep 1; exec ping -n -c %d -i %g %s" % (args.count, args.interval,
                                                                                       target)])
        roles = {"A": procs[0].pid, "B": procs[1].pid, "P": ping.pid}
        write(inst / "set_event_pid", " ".join(str(p) for p in roles.values()))
        for event in ("sched/sched_wakeup", "sched/sched_switch", "raw_syscalls/sys_enter",
                      "raw_syscalls/sys_exit"):
            write(inst / "events" / event / "enable", "1")
        write(inst / "tracing_on", "1")
        ping.wait(timeout=args.count * args.interval + 15)
        write(inst / "tracing_on", "0")
        text = (inst / "trace").read_text()
        if args.raw:
            Path(args.raw).write_text(text)
        rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", ping.output())]
        log("%s: ping -i %g median RTT %.3f ms (%d replies)", "OpenVPN" if args.openvpn else args.checkout,
            args.interval, statistics.median(rtts) if rtts else float("nan"), len(rtts))
        analyse(parse(text, roles), args.count)
    finally:
        if inst.exists():
            write(inst / "tracing_on", "0")
            for event in ("sched/sched_wakeup", "sched/sched_switch", "raw_syscalls/sys_enter",
                          "raw_syscalls/sys_exit"):
                write(inst / "events" / event / "enable", "0")
            inst.rmdir()
        lab.close()


if __name__ == "__main__":
    vpn_bench.log = log
    main()

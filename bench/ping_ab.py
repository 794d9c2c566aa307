#!/usr/bin/env python3
"""Ping RTT and CPU of two (or more) tomato checkouts and OpenVPN 2.6 side by side, alternating.

    .venv/bin/python bench/ping_ab.py [--rounds N] [--count N] [--interval S ...] CHECKOUT [CHECKOUT ...]

Each CHECKOUT (a directory with bin/vpn, e.g. this worktree and a `git archive` of main
unpacked in /tmp) runs its own tunnel between the same two namespaces (tun devices
tun10, tun11, ... on UDP ports 5010, 5011, ...), next to OpenVPN (vpn_bench's
configuration). Every round pings B -> A through each tunnel in turn (the order rotates
each round): `ping -c COUNT -i INTERVAL`, recording the average RTT (what vpn_bench reports),
the median of the single RTTs (less moved by a neighbour's load) and the CPU time of both
tunnel processes during that run. Prints every round, then the medians and the
ratios to the first checkout and to OpenVPN. On a shared machine only ratios from the
same run mean anything. Needs root and openvpn.
"""
import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vpn_bench  # noqa: E402
from benchlib import BenchLab, log  # noqa: E402
from vpn_bench import OPENVPN, TARGET, VpnLab, cpu_seconds, parse_ping_avg_ms  # noqa: E402


def start_checkout(vpn, index, checkout):
    """bin/vpn of `checkout` on tun1<index>, 10.0.1<index>.1/30 <-> .2, UDP 501<index>."""
    lab = vpn.lab
    dev, port = "tun1%d" % index, 5010 + index
    addr_a, addr_b = "10.0.1%d.1" % index, "10.0.1%d.2" % index
    lab.tun(vpn.a, dev, addr_a + "/30")
    lab.tun(vpn.b, dev, addr_b + "/30")
    script = str(Path(checkout).resolve() / "bin" / "vpn")
    procs = [
        lab.spawn(vpn.a, [sys.executable, script, "-la", ":%d" % port, "-lp", "pwd1", "-pa",
                          "%s:%d" % (vpn.wan_b, port), "-pp", "pwd2", "-I", dev]),
        lab.spawn(vpn.b, [sys.executable, script, "-la", ":%d" % port, "-lp", "pwd2", "-pa",
                          "%s:%d" % (vpn.wan_a, port), "-pp", "pwd1", "-I", dev]),
    ]
    vpn._wait_tunnel(procs, addr_a, "bin/vpn of %s" % checkout)
    return addr_a, procs


def ping_run(vpn, target, procs, count, interval):
    """(average RTT ms, median RTT ms, % of a core used by procs meanwhile)."""
    t0 = time.monotonic()
    before = sum(cpu_seconds(p.pid) for p in procs)
    done = vpn.lab.run(vpn.b, ["ping", "-n", "-c", count, "-i", interval, target], timeout=count * interval + 10)
    used = sum(cpu_seconds(p.pid) for p in procs) - before
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", done.stdout)]
    return parse_ping_avg_ms(done.stdout), statistics.median(rtts), used * 100 / (time.monotonic() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/ping_ab.py")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=25)
    parser.add_argument("--interval", type=float, action="append")
    parser.add_argument("--no-openvpn", action="store_true")
    parser.add_argument("checkouts", nargs="+")
    args = parser.parse_args(argv)
    intervals = args.interval or [0.2, 1.0]
    lab = BenchLab()
    try:
        vpn = VpnLab(lab)
        systems = {}
        for i, checkout in enumerate(args.checkouts):
            systems[checkout] = start_checkout(vpn, i, checkout)
        if not args.no_openvpn:
            up = vpn.start_openvpn()
            if up is not True:
                raise SystemExit("OpenVPN: %s" % up)
            systems[OPENVPN] = (TARGET[OPENVPN], vpn.procs[OPENVPN])
        names = list(systems)
        results = {(n, iv): {"rtt": [], "median": [], "cpu": []} for n in names for iv in intervals}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for interval in intervals:
                count = args.count if interval < 0.5 else max(3, args.count // 4)
                for name in order:
                    target, procs = systems[name]
                    rtt, median, cpu = ping_run(vpn, target, procs, count, interval)
                    results[name, interval]["rtt"].append(rtt)
                    results[name, interval]["median"].append(median)
                    results[name, interval]["cpu"].append(cpu)
                    log("round %d  -i %-4g %-40s rtt avg %.3f median %.3f ms  cpu %.3f %%", r + 1, interval, name,
                        rtt, median, cpu)
        first = names[0]
        for interval in intervals:
            for key in ("rtt", "median", "cpu"):
                med = {n: statistics.median(results[n, interval][key]) for n in names}
                for n in names:
                    line = "median -i %-4g %-6s %-40s %.3f" % (interval, key, n, med[n])
                    if n != first and med[first]:
                        line += "  /first %.2fx" % (med[n] / med[first])
                    if OPENVPN in med and n != OPENVPN and med[OPENVPN]:
                        line += "  /OpenVPN %.2fx" % (med[n] / med[OPENVPN])
                    log("%s", line)
    finally:
        lab.close()


if __name__ == "__main__":
    vpn_bench.log = log
    main()

#!/usr/bin/env python3
"""Ping RTT and CPU of tomato bin/vpn against OpenVPN 2.6, the same namespaces, alternating rounds.

    .venv/bin/python bench/ping_latency.py [--rounds N] [--count N] [-- extra bin/vpn args]

Per round and system: `ping -c COUNT -i 0.2` (warm: 5 pings/s) and `ping -c COUNT/4 -i 1` (cold),
B -> A, with the CPU time of both tunnel processes during the 0.2 s run (schedstat). Prints each
round and the medians; tomato/OpenVPN ratios at the end. Indicative on a shared machine: compare
only figures from the same run. Extra arguments after `--` go to both bin/vpn processes (e.g.
`-- --keep-warm 0`). Needs root and openvpn.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
import vpn_bench  # noqa: E402
from benchlib import BenchLab, log  # noqa: E402
from vpn_bench import COLD_PING_SECONDS, OPENVPN, TOMATO, WARM_PING_SECONDS, VpnLab  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/ping_latency.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("extra", nargs="*", help="extra bin/vpn arguments (after --)")
    args = parser.parse_args(argv)
    if args.extra:
        tool_argv = vpn_bench.tool_argv
        vpn_bench.tool_argv = lambda name, *rest: tool_argv(name, *rest, *args.extra)
    lab = BenchLab()
    try:
        vpn = VpnLab(lab)
        for system, start in ((OPENVPN, vpn.start_openvpn), (TOMATO, vpn.start_tomato)):
            up = start()
            if up is not True:
                raise SystemExit("%s: %s" % (system, up))
        results = {s: {"rtt 0.2": [], "rtt 1": [], "cpu 0.2": []} for s in (TOMATO, OPENVPN)}
        for i in range(args.rounds):
            for system in ((TOMATO, OPENVPN) if i % 2 == 0 else (OPENVPN, TOMATO)):
                warm = vpn.ping_avg_ms(system, args.count, WARM_PING_SECONDS)
                cpu = vpn.cpu_during_ping[WARM_PING_SECONDS][system][-1]
                cold = vpn.ping_avg_ms(system, max(3, args.count // 4), COLD_PING_SECONDS)
                log("round %d %-8s rtt@0.2s %.3f ms  rtt@1s %.3f ms  cpu@5pings/s %.3f %%",
                    i + 1, system, warm, cold, cpu)
                results[system]["rtt 0.2"].append(warm)
                results[system]["rtt 1"].append(cold)
                results[system]["cpu 0.2"].append(cpu)
        med = {s: {k: statistics.median(v) for k, v in r.items()} for s, r in results.items()}
        for key in ("rtt 0.2", "rtt 1", "cpu 0.2"):
            log("median %-8s tomato %.3f  OpenVPN %.3f  ratio %.2fx", key, med[TOMATO][key], med[OPENVPN][key],
                med[TOMATO][key] / med[OPENVPN][key] if med[OPENVPN][key] else float("inf"))
    finally:
        lab.close()


if __name__ == "__main__":
    benchlib.log = log
    main()

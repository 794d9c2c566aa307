#!/usr/bin/env python3
"""`make bench`: every benchmark, each figure next to its reference from the same run.

    .venv/bin/python bench/run.py            # full run (root; about 11 minutes)
    .venv/bin/python bench/run.py --quick    # short runs, results in bench/out/
    .venv/bin/python bench/run.py --only vpn,crypto
    .venv/bin/python bench/run.py --only proxy --quick --rounds 1 --seconds 1   # a smoke run

Sections: vpn (iperf3/ping over raw veth, OpenVPN 2.6, tomato bin/vpn), vpn-tcp
(tomato --transport tcp vs OpenVPN proto tcp, both transports under 1 % loss), proxy
(wrk req/s and CPU time per request, CONNECT download, idle-connection memory vs tinyproxy,
proxy.py, pproxy and the origin; tomato with 2 workers vs 1; SOCKS5 vs microsocks),
rules (bench/rules_bench.py), crypto (seal/open per packet, both backends).
Writes RESULTS.md and results.json (bench/ for a full run, bench/out/ for
--quick unless --out is given). Every namespace, process and temp file it
creates is removed on every path, Ctrl-C and SIGTERM included. It installs
nothing system-wide (the Makefile's ensure-apt line does that); the proxy section puts
proxy.py and pproxy into a venv of its own, bench/out/ref-venv (bench/refenv.py).
"""
import argparse
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from benchlib import REPO, BenchLab, Figure, log  # noqa: E402

SECTIONS = ("vpn", "vpn-tcp", "proxy", "rules", "crypto")
NEEDS_ROOT = {"vpn", "vpn-tcp", "proxy"}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (for development), results in bench/out/")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections to run (default: all of %s)" % ",".join(SECTIONS))
    parser.add_argument("--rounds", type=int, default=None, help="rounds per system (default 3, --quick 2)")
    parser.add_argument("--seconds", type=int, default=None,
                        help="length of each timed run of the proxy section (wrk; default 10, --quick 3)")
    parser.add_argument("--out", type=Path, default=None, help="directory for RESULTS.md and results.json")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error("unknown section(s): %s (choose from %s)" % (", ".join(unknown), ", ".join(SECTIONS)))
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.seconds is not None and args.seconds < 1:
        parser.error("--seconds must be at least 1")
    if args.out is None:
        args.out = REPO / "bench" / ("out" if args.quick else "")
    return args


def _terminate(signum, frame):
    # SIGTERM takes the same path as Ctrl-C: unwind, and the finally blocks clean up.
    raise KeyboardInterrupt


def _raise_fd_limit():
    # 1 000 idle connections to a proxy (plus nginx's side of them) need more than the usual 1 024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard) if hard != resource.RLIM_INFINITY else 8192,
                                                    hard))


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0 and NEEDS_ROOT & set(args.sections):
        print("bench/run.py: the vpn and proxy sections need root (network namespaces); "
              "run as root or with --only rules,crypto", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    # Started in the background by a non-interactive shell, SIGINT arrives ignored: restore Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _raise_fd_limit()
    started = time.time()
    extra = sys.argv[1:] if argv is None else list(argv)
    command = ("make bench" if os.environ.get("MAKELEVEL") and not extra
               else " ".join([".venv/bin/python", "bench/run.py", *extra]))
    figures = []
    try:
        for section in args.sections:
            log("== %s", section)
            t0 = time.monotonic()
            lab = BenchLab() if section in NEEDS_ROOT else None
            try:
                figures += _run_section(section, lab, args)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one broken section must not lose the others' figures
                log("%s section failed: %s: %s", section, type(exc).__name__, exc)
                figures.append(Figure(section, "%s section" % section, "", tomato_na="n/a: %s: %s"
                                      % (type(exc).__name__, exc), reference_na="n/a"))
            finally:
                if lab is not None:
                    lab.close()
            log("== %s done in %.0f s", section, time.monotonic() - t0)
    except KeyboardInterrupt:
        log("interrupted: namespaces and processes removed, no results written")
        return 130
    meta = report.machine_info(command, started, time.time(), args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"meta": meta, "figures": [f.to_json() for f in figures]}, indent=2) + "\n")
    markdown = report.render_markdown(meta, figures)
    (args.out / "RESULTS.md").write_text(markdown)
    print("\n".join(line for line in markdown.splitlines() if line.startswith("|")))
    log("wrote %s and %s (%.0f s in total)", args.out / "RESULTS.md", args.out / "results.json",
        time.time() - started)
    return 0


def _run_section(section, lab, args):
    if section == "vpn":
        import vpn_bench
        return vpn_bench.run(lab, quick=args.quick, rounds=args.rounds)
    if section == "vpn-tcp":
        import vpn_bench
        return vpn_bench.run_tcp_transport(lab, quick=args.quick, rounds=args.rounds)
    if section == "proxy":
        import proxy_bench
        return proxy_bench.run(lab, quick=args.quick, rounds=args.rounds, seconds=args.seconds)
    if section == "rules":
        import rules_section
        return rules_section.run(quick=args.quick)
    if section == "crypto":
        import crypto_bench
        return crypto_bench.run(quick=args.quick)
    raise ValueError(section)


if __name__ == "__main__":
    sys.exit(main())

"""Render bench figures as bench/RESULTS.md, and collect the machine/date/commit header."""
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata

from benchlib import LOWER, REPO

MAX_REASON_CHARS = 260


def _first_line(argv, pattern=None):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "missing"
    text = (done.stdout + done.stderr).strip()
    if pattern:
        match = re.search(pattern, text)
        return match.group(1) if match else "unknown"
    return text.splitlines()[0] if text else "unknown"


def _package_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def machine_info(command, started, finished, args):
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.rstrip()
    cpu = "unknown"
    try:
        cpu = re.search(r"^model name\s*:\s*(.+)$", open("/proc/cpuinfo").read(), re.M).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_s": round(finished - started),
        "command": command,
        "quick": args.quick,
        "rounds": args.rounds,
        "sections": args.sections,
        "commit": commit + (" with uncommitted changes to %s" % ", ".join(
            line[3:] for line in dirty.splitlines()[:4]) + (", ..." if len(dirty.splitlines()) > 4 else "")
            if dirty else ""),
        "machine": "%s, %d cores, Linux %s, Python %s" % (cpu, os.cpu_count(), platform.release(),
                                                          platform.python_version()),
        "tools": {
            "openvpn": _first_line(["openvpn", "--version"], r"OpenVPN (\S+)"),
            "iperf3": _first_line(["iperf3", "--version"], r"iperf (\S+)"),
            "wrk": _first_line(["wrk", "--version"], r"wrk (\S+)"),
            "nginx": _first_line(["nginx", "-v"], r"nginx/(\S+)"),
            "tinyproxy": _first_line(["tinyproxy", "-v"], r"tinyproxy (\S+)"),
            **_bench_venv_versions(),
            "gevent": _package_version("gevent"),
            "cryptography": _package_version("cryptography"),
            "pycryptodome": _package_version("pycryptodome"),
        },
        "python": sys.version.split()[0],
    }


def _bench_venv_versions():
    """proxy.py and pproxy as installed in the bench's own venv (refenv.py), if it exists."""
    import refenv
    try:
        found = refenv.installed()
    except (OSError, subprocess.SubprocessError, ValueError):
        found = {}
    return {name: found.get(name, "missing") for name in refenv.PACKAGES}


def fmt_number(value):
    if value is None:
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return "{:,.0f}".format(value).replace(",", " ")
    if magnitude >= 10:
        return "%.1f" % value
    if magnitude >= 1:
        return "%.2f" % value
    return "%.3f" % value


def _cell(value, unit):
    return "n/a" if value is None else ("%s %s" % (fmt_number(value), unit)).strip()


def _short(reason):
    reason = reason.replace("|", "/").replace("\n", " ")
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 3] + "..."


def target_text(fig):
    """The row's target as the Notes show it: "target ≥ 1.50×: met" (or missed, or no verdict without a ratio)."""
    text = "target %s %.2f×" % ("≤" if fig.better == LOWER else "≥", fig.target)
    met = fig.target_met
    return text if met is None else "%s: %s" % (text, "met" if met else "missed")


def render_markdown(meta, figures):
    tools = ", ".join("%s %s" % item for item in meta["tools"].items())
    lines = [
        "# Benchmark results",
        "",
        "- Date: %s (took %d s)" % (meta["date_utc"], meta["duration_s"]),
        "- Commit: %s" % meta["commit"],
        "- Machine: %s (shared, noisy: absolute figures move 20-30 %% between runs, ratios much less)"
        % meta["machine"],
        "- Tools: %s" % tools,
        "- Command: `%s`%s" % (meta["command"], " (quick mode: short runs, not for comparison)"
                               if meta["quick"] else ""),
        "",
        "Every reference was measured in the same run as tomato's figure, the systems alternating "
        "round by round; each cell is the best round. Ratio = tomato / reference: above 1.0 is better "
        "for rates, below 1.0 is better where the figure says *lower is better*. A *target* in the notes is the "
        "ratio an open issue asks for (the VPN's: issue 19).",
        "",
        "| Section | Figure | tomato | Reference | Ratio | Notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for fig in figures:
        ref_name = " (%s)" % fig.reference_name if fig.reference_name else ""
        name = fig.name + (" *(lower is better)*" if fig.better == LOWER else "")
        ratio = fig.ratio
        notes = [target_text(fig)] if fig.target is not None else []
        notes += [fig.note] if fig.note else []
        if fig.tomato is None and fig.tomato_na:
            notes.append("tomato " + fig.tomato_na)
        if fig.reference is None and fig.reference_na and fig.reference_na != "n/a":
            notes.append("reference " + fig.reference_na)
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            fig.section, name, _cell(fig.tomato, fig.unit),
            _cell(fig.reference, fig.unit) + (ref_name if fig.reference is not None else ""),
            "n/a" if ratio is None else "%.2f×" % ratio,
            _short("; ".join(notes))))
    lines += ["", "Raw rounds and every reason for an n/a are in results.json "
              "(written next to this file, not committed).", "", "## Setups", ""] + SETUPS
    return "\n".join(lines)


SETUPS = [
    "- **VPN**: namespaces A (10.9.0.1) and B (10.9.0.2) joined by a veth; clients in B, servers in A. "
    "tomato exactly as the seed's README: pre-created tun0 (MTU 1400, 10.0.1.1/30, 10.0.1.2/30), "
    "`vpn -la :5000 -lp pwd1 -pa 10.9.0.2:5000 -pp pwd2 -I tun0` and its mirror. OpenVPN 2.6 in userspace "
    "on tun1: p2p, `data-ciphers AES-256-GCM`, TLS with self-signed EC certificates made by openssl at run "
    "time and `peer-fingerprint`, `disable-dco`, `tun-mtu 1400`, `sndbuf`/`rcvbuf` 4 MiB. Both tunnels "
    "run side by side for the whole section. Idle CPU: both processes of a tunnel, a few seconds "
    "without traffic (after tomato's 2 s keep-warm window), and during the ping rounds. "
    "TCP: `iperf3 -c` single stream, and `iperf3 -c --bidir` (one stream each way at once, the row's "
    "figure is the sum of both directions' received rates); RTT: `ping -i 0.2`, and `ping -i 1` (ping's "
    "default interval: cold); "
    "UDP: `iperf3 -u -l 64 -b 0` (received packets/s). CPU per packet: CPU time of each tunnel "
    "process during the TCP run / (TCP payload / MSS), ACKs included; CPU times come from the "
    "scheduler's nanosecond count of each process, ended threads included (its CPU-time clock).",
    "- **VPN over TCP**: A (10.9.1.1) and B (10.9.2.2) routed through a router namespace R; A's and B's "
    "veths without TSO/UDP segmentation offload, so R forwards single packets. Four tunnels side by "
    "side: tomato over UDP and with `--transport tcp` (both sides dialling, the seed's command lines), "
    "OpenVPN 2.6 as above with `proto udp` and with `proto tcp-server` (A) / `tcp-client` (B). "
    "`iperf3 -c` single stream B -> A through each; the loss rows add 1 % random loss on R "
    "(`tc netem loss 1%` on both egress interfaces, or an nftables `numgen random` drop in R's "
    "forward chain where the kernel lacks sch_netem: the row's note says which).",
    "- **Proxy**: one namespace, everything on its loopback. nginx (1 worker, own temp prefix) serves "
    "/1k and a 100 MB file; tinyproxy with its own config (MaxClients 2000, LogLevel Error); "
    "`bin/proxy -a 127.0.0.1:1080 -d direct --workers 1 --no-access-log` (the references run without "
    "per-request lines too; a22b20b had none), the same with `--workers 2` on port 1082, and with its "
    "default access log (to a file) on port 1084; "
    "proxy.py 2.4 (`proxy --log-level WARNING`, its defaults: acceptor and worker processes per CPU) and "
    "pproxy 2.7 (`pproxy -l http://127.0.0.1:8118`), both from PyPI in the bench's own venv "
    "(bench/out/ref-venv). `wrk -t1 -c50` with a Lua script making the request line "
    "`GET http://127.0.0.1:8080/1k HTTP/1.1`; CPU time per request = CPU time of the proxy's process "
    "tree during the wrk run (the scheduler's nanoseconds per process, ended threads included: tinyproxy "
    "ends one per connection) / requests wrk completed; `curl -p -x` (CONNECT) for the 100 MB "
    "download; RSS (the proxy's process tree) before and with 1 000 idle TCP connections open, on fresh "
    "processes, and PSS for tomato with 2 workers (shared pages counted once).",
    "- **Rules**: `bench/rules_bench.py` (the rules' own script); the references are the issues' goals, and for"
    " the pattern pass the same list without its keyword/regexp rules, timed in the same process.",
    "- **Crypto**: `Keypair.seal_into` of tomato_gevent/vpn/keypair.py and the tunnel's decoder "
    "`Keypairs.open_into` (receiver index, AEAD, replay window) on a 1400-byte payload, best of 7 loops; the "
    "reference is the bare "
    "AES-256-GCM call of the same library on the same buffers.",
    "",
]

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
                           capture_output=True, text=True).stdout.strip()
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
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "machine": "%s, %d cores, Linux %s, Python %s" % (cpu, os.cpu_count(), platform.release(),
                                                          platform.python_version()),
        "tools": {
            "openvpn": _first_line(["openvpn", "--version"], r"OpenVPN (\S+)"),
            "iperf3": _first_line(["iperf3", "--version"], r"iperf (\S+)"),
            "wrk": _first_line(["wrk", "--version"], r"wrk (\S+)"),
            "nginx": _first_line(["nginx", "-v"], r"nginx/(\S+)"),
            "tinyproxy": _first_line(["tinyproxy", "-v"], r"tinyproxy (\S+)"),
            "gevent": _package_version("gevent"),
            "cryptography": _package_version("cryptography"),
            "pycryptodome": _package_version("pycryptodome"),
        },
        "python": sys.version.split()[0],
    }


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
        "for rates, below 1.0 is better where the figure says *lower is better*.",
        "",
        "| Section | Figure | tomato | Reference | Ratio | Notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for fig in figures:
        ref_name = " (%s)" % fig.reference_name if fig.reference_name else ""
        name = fig.name + (" *(lower is better)*" if fig.better == LOWER else "")
        ratio = fig.ratio
        notes = [fig.note] if fig.note else []
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
              "(written next to this file, not committed).", ""]
    return "\n".join(lines)

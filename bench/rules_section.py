"""Rules benchmark: runs bench/rules_bench.py (the rules' own script) and turns its JSON into figures.

rules_bench.py is a standalone script, run with this interpreter as a
subprocess so its memory figure is its own process's. The references are the
issues' goals (load < 0.3 s, >= 1 M lookups/s, dlmerge < 2 s); keys it prints that are not
known here still appear as rows without a reference.
"""
import subprocess
import sys
from pathlib import Path

from benchlib import HIGHER, LOWER, Figure, Unavailable, log, run_json

SCRIPT = Path(__file__).resolve().parent / "rules_bench.py"
TIMEOUT_S = 240

# key printed by rules_bench.py -> (figure, unit, better, goal or None, goal name)
KNOWN = {
    "load_s": ("load rules/dlc.txt", "s", LOWER, 0.3, "goal < 0.3 s"),
    "lookups_per_s": ("lookups/s, realistic host mix (host:port, odd spellings)", "lookups/s", HIGHER,
                      1e6, "goal >= 1 M/s"),
    "lookups_per_s_plain": ("lookups/s, already-normalised names", "lookups/s", HIGHER, 1e6, "goal >= 1 M/s"),
    "memory_mib": ("memory held by the loaded rule set (tracemalloc)", "MiB", LOWER, None, ""),
    "dlmerge_s": ("dlmerge on the full domain-list-community data", "s", LOWER, 2.0, "goal < 2 s"),
}


# The pattern pass's cost: the mix with the file's keyword/regexp rules against the same
# list without them, both timed in the same process.
PATTERN_PASS = ("lookups/s, realistic mix, with the keyword/regexp rules", "lookups/s",
                "without them (same run)")


def run(quick=False):
    if not SCRIPT.exists():
        return [Figure("Rules", "rules benchmark", "", tomato_na="n/a: bench/rules_bench.py not written yet",
                       reference_na="n/a")]
    argv = [sys.executable, str(SCRIPT)] + (["--quick"] if quick and _accepts_quick() else [])
    try:
        data = run_json(argv, TIMEOUT_S)
    except (Unavailable, subprocess.SubprocessError, OSError) as exc:
        return [Figure("Rules", "rules benchmark", "", tomato_na="n/a: %s" % exc, reference_na="n/a")]
    log("rules: %s", data)
    figures = []
    for key, value in data.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key == "lookups_per_s_without_patterns":
            name, unit, reference_name = PATTERN_PASS
            figures.append(Figure("Rules", name, unit, HIGHER, tomato=float(data["lookups_per_s"]),
                                  reference=float(value), reference_name=reference_name))
            continue
        name, unit, better, goal, goal_name = KNOWN.get(key, (key, "", HIGHER, None, ""))
        fig = Figure("Rules", name, unit, better, tomato=float(value), reference=goal, reference_name=goal_name)
        figures.append(fig)
    extras = {k: v for k, v in data.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
    if extras and figures:
        figures[0].note = "; ".join("%s: %s" % item for item in extras.items())
    return figures


def _accepts_quick():
    try:
        return "--quick" in SCRIPT.read_text()
    except OSError:
        return False

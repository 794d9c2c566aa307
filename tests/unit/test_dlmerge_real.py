"""dlmerge on the real domain-list-community snapshot, and the real bin/dlmerge script."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tomato_gevent.dlmerge import cli
from tomato_gevent.dlmerge.data import parse_lists, resolve_many
from tomato_gevent.dlmerge.merge import PRIORITY, direction_of, merge
from tomato_gevent.rules import Action, RuleSet, load_rule_files, parse_rules

BLOCK, DIRECT, FORWARD = Action.BLOCK, Action.DIRECT, Action.FORWARD
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "third_party" / "domain-list-community" / "data"     # the project carries it
DLMERGE = REPO / "bin" / "dlmerge"
FIXTURE = REPO / "tests" / "fixtures" / "dlc" / "data"

EXPECTED = {
    "baidu.com": DIRECT, "www.baidu.com": DIRECT, "qq.com": DIRECT, "weixin.qq.com": DIRECT,
    "taobao.com": DIRECT, "www.gov.cn": DIRECT, "apple.com.cn": DIRECT,
    "google.com": FORWARD, "www.google.com": FORWARD, "github.com": FORWARD, "api.github.com": FORWARD,
    "youtube.com": FORWARD, "twitter.com": FORWARD, "wikipedia.org": FORWARD,
    "doubleclick.net": BLOCK, "ad.doubleclick.net": BLOCK, "googleadservices.com": BLOCK,
    "adscdn.baidu.com": BLOCK, "pagead2.googlesyndication.com": BLOCK,
    # regexp entries: no domain rule covers these names
    "91porn123.me": FORWARD, "hses3.akamaized.net": FORWARD, "cdn1-epicgames-12.file.myqcloud.com": DIRECT,
}


def run_dlmerge(*args, **kwargs):
    return subprocess.run([sys.executable, str(DLMERGE)] + [str(a) for a in args], cwd=str(REPO),
                          capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def real_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("dlc") / "dlc.txt"
    assert cli.main([str(DATA), "-o", str(out), "-q"]) == 0
    return out.read_text(encoding="utf-8")


def test_real_data_well_known_names(real_output):
    rule_set = RuleSet(parse_rules(real_output.splitlines(True), source="dlc.txt"))
    assert {host: rule_set.lookup(host) for host in EXPECTED} == EXPECTED
    assert len(rule_set) > 20000
    assert all(count > 0 for count in rule_set.counts.values())


def test_real_data_every_line_parses_and_no_rule_repeats(real_output):
    lines = real_output.splitlines(True)
    rules = parse_rules(lines, source="dlc.txt")
    assert len(rules) == sum(1 for line in lines if line.strip() and not line.startswith("#"))
    assert len({(kind, value) for _, kind, value in rules}) == len(rules)


def test_real_data_header_names_source_and_counts(real_output):
    header = [line for line in real_output.splitlines() if line.startswith("# ")][:8]
    rules = parse_rules(real_output.splitlines(True))
    counts = {action: sum(1 for a, _, _ in rules if a is action) for action in Action}
    text = "\n".join(header)
    assert "source: https://github.com/v2fly/domain-list-community commit c975ccef9c19f005a3bfa7a33255d1b406deea64, " in text
    assert str(REPO) not in real_output and "third_party" not in real_output
    assert "rules: %d (block %d, direct %d, forward %d; " % (
        len(rules), counts[BLOCK], counts[DIRECT], counts[FORWARD]) in text
    regexps = sum(1 for _, kind, _ in rules if kind == "regexp")
    assert regexps == 159 and "regexp %d)" % regexps in text
    assert "skipped: 0 bad entries" in text


def test_real_data_output_is_stable(real_output, tmp_path):
    again = tmp_path / "again.txt"
    assert cli.main([str(DATA), "-o", str(again), "-q"]) == 0
    assert again.read_text(encoding="utf-8") == real_output


def test_real_data_merge_matches_unpruned_answers():
    """Leaving out redundant rules must not change any answer: compare against all entries."""
    lists = parse_lists(cli.read_data_dir(str(DATA)))
    resolved = resolve_many(lists, ["cn", "geolocation-!cn"])
    result = merge(resolved)
    pruned = RuleSet(result.rules)
    rank = {a: i for i, a in enumerate(PRIORITY)}
    # The unpruned rule set: every entry, strongest direction per key; patterns in the
    # merger's section order (block, direct, forward).
    best = {}
    for list_action, name in ((DIRECT, "cn"), (FORWARD, "geolocation-!cn")):
        for e in resolved[name]:
            key = (e.type, e.value.lower() if e.type in ("domain", "full") else e.value)
            action = direction_of(e, list_action)
            if key not in best or rank[action] < rank[best[key]]:
                best[key] = action
    # Same-name exact rules weaker than their suffix rule are merged into the suffix rule.
    for (kind, value), action in list(best.items()):
        if kind == "full" and ("domain", value) in best and rank[best[("domain", value)]] < rank[action]:
            del best[(kind, value)]
    unpruned = RuleSet(sorted(((action, kind, value) for (kind, value), action in best.items()),
                              key=lambda rule: rank[rule[0]]))
    names = [value for (kind, value) in best if kind in ("domain", "full")]
    hosts = names + ["www." + name for name in names] + ["91porn123.me", "x.bilibili301.xyz", "hses3.akamaized.net"]
    differences = [h for h in hosts if pruned.lookup(h) is not unpruned.lookup(h)]
    assert differences == []


def test_shipped_dlc_rules_are_current():
    """rules/dlc.txt is committed; it must be what `make rules` produces from the snapshot."""
    result = run_dlmerge("third_party/domain-list-community/data")     # what `make rules` runs
    assert result.returncode == 0, result.stderr
    shipped = (REPO / "rules" / "dlc.txt").read_text(encoding="utf-8")
    assert result.stdout == shipped, "rules/dlc.txt is stale: run make rules"
    rule_set = load_rule_files([str(REPO / "rules" / "dlc.txt")])
    assert rule_set.lookup("www.baidu.com") is DIRECT


# --- the real script ---------------------------------------------------------------

def test_script_writes_rules_and_logs_summary(tmp_path):
    out = tmp_path / "out.txt"
    result = run_dlmerge(FIXTURE, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert ("28 rules (block 6, direct 13, forward 9; domain 21, full 2, keyword 3, regexp 2) written to %s"
            % out) in result.stderr
    assert "WARNING" in result.stderr and "bad domain 'bad..domain.example' skipped" in result.stderr
    assert "direct\tbaidu.com\n" in out.read_text(encoding="utf-8")


def test_script_stdout_by_default():
    result = run_dlmerge(FIXTURE, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# tomato proxy rules")
    assert "forward\tgithub.com\n" in result.stdout
    assert "WARNING" in result.stderr and "INFO" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/dlc-data"], "data directory /nonexistent/dlc-data: no such directory"),
    ([str(DLMERGE)], "not a directory"),
    ([FIXTURE, "--direct", "loop-a"], "include cycle: loop-a -> loop-b -> loop-c -> loop-a"),
    ([FIXTURE, "--forward", "broken-include"], "no such list 'no-such-list'"),
    ([FIXTURE, "--block", "category-nope"], "no list 'category-nope' in"),
    ([FIXTURE, "--direct", "baidu", "--forward", "github", "-o", "/nonexistent/dir/out.txt"],
     "cannot write /nonexistent/dir/out.txt"),
], ids=["missing-dir", "file-not-dir", "cycle", "missing-include", "missing-list", "unwritable-output"])
def test_script_errors_are_one_line_exit_2(args, message):
    result = run_dlmerge(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ERROR" in lines[0] and message in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_list_is_named_not_the_folder(tmp_path):
    """A data folder that lacks one list the conversion needs: the line names that list and
    what asked for it, and does not send the user looking for another folder."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    (data / "geolocation-!cn").unlink()
    for args, expected in [([], "no list 'geolocation-!cn' in %s (the default of --forward): "
                                "a list is the file of that name" % data),
                           (["--block", "category-nope"], "no list 'category-nope' in %s (asked for by --block): "
                                                          "a list is the file of that name" % FIXTURE)]:
        result = run_dlmerge(data if not args else FIXTURE, *args)
        assert result.returncode == 2
        assert result.stderr.rstrip().endswith(expected), result.stderr
        assert "expected the data/ folder" not in result.stderr


def test_the_same_input_gives_the_same_file_anywhere(tmp_path):
    """The snapshot copied elsewhere, named by an absolute path: byte for byte rules/dlc.txt
    (the header names the upstream commit, not the folder)."""
    elsewhere = tmp_path / "somewhere" / "else"
    shutil.copytree(DATA.parent, elsewhere)
    out = tmp_path / "dlc.txt"
    result = run_dlmerge(elsewhere / "data", "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (REPO / "rules" / "dlc.txt").read_bytes()


def test_script_usage_errors_exit_2():
    result = run_dlmerge()
    assert result.returncode == 2
    assert result.stderr.startswith("dlmerge: error:") and "Traceback" not in result.stderr
    result = run_dlmerge("--help")
    assert result.returncode == 0
    assert "--block LIST" in result.stdout


def test_script_does_not_replace_output_on_error(tmp_path):
    out = tmp_path / "keep.txt"
    out.write_text("direct\tkeep.example\n", encoding="utf-8")
    result = run_dlmerge(FIXTURE, "--direct", "loop-a", "-o", out)
    assert result.returncode == 2
    assert out.read_text(encoding="utf-8") == "direct\tkeep.example\n"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_script_reader_going_away_is_not_an_error():
    """dlmerge DATA | head: a closed stdout pipe ends quietly, no traceback."""
    proc = subprocess.Popen([sys.executable, str(DLMERGE), str(FIXTURE), "-q"], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()             # before dlmerge has written anything
    try:
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr and "Broken pipe" not in stderr

"""dlmerge: data syntax, include resolution, the merge mapping, on the fixture tree in tests/fixtures/dlc."""
import os

import pytest

from tomato_gevent.dlmerge import cli
from tomato_gevent.dlmerge.data import Entry, parse_list, parse_lists, resolve, resolve_many
from tomato_gevent.dlmerge.merge import direction_of, merge, render
from tomato_gevent.errors import ConfigError
from tomato_gevent.rules import Action, RuleSet, parse_rules

BLOCK, DIRECT, FORWARD = Action.BLOCK, Action.DIRECT, Action.FORWARD
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "dlc", "data")

# What the fixture tree converts to with the default mapping (header aside).
EXPECTED_FIXTURE_RULES = """\
# block (6 rules)
block\tads.sample.cn
block\ttracker.sample.cn
block\tadscdn.baidu.com
block\tfull:tieba-ads.baidu.com
block\tdoubleclick.net
block\tregexp:^bd[0-9]+\\.com$

# direct (13 rules)
direct\tcn
direct\talibaba.com
direct\talicdn.com
direct\tbaidu.com
direct\tbaidupcs.com
direct\tbdstatic.com
direct\tcn.bing.com
direct\tfull:cdn.github.com
direct\tboth.example
direct\texact-vs-suffix.example
direct\txn--fiqs8s
direct\tkeyword:baidu
direct\tkeyword:ytimg

# forward (9 rules)
forward\tforeign.sample.cn
forward\tbing.com
forward\tespressif.com
forward\tgithub.com
forward\tgithubusercontent.com
forward\tgoogle.com
forward\tmicrosoft.com
forward\tkeyword:googlevideo
forward\tregexp:(^|\\.)gvt[0-9]\\.com$
"""


def fixture_lists():
    return parse_lists(cli.read_data_dir(FIXTURE))


def entry(value, *attrs, type="domain"):
    return Entry(type, value, frozenset(attrs), (), "test:1")


def values(entries):
    return sorted((e.type, e.value) for e in entries)


# --- parsing one list -----------------------------------------------------------

def test_parse_every_entry_form():
    data_list = parse_list("x", [
        "# whole-line comment",
        "",
        "   ",
        "bare.example",
        "domain:prefixed.example",
        "full:exact.example @ads",
        "keyword:ads",
        r"regexp:^ad[0-9]+\.example$ @cn",
        "tagged.example @ads @cn &category-ads &other # trailing comment @x: y",
        "include:other",
        "include:filtered @ads @-!cn # comment",
        "\ttabbed.example\t@!cn\t",
    ])
    entries = data_list.entries
    assert [(e.type, e.value, set(e.attrs), e.affiliations) for e in entries] == [
        ("domain", "bare.example", set(), ()),
        ("domain", "prefixed.example", set(), ()),
        ("full", "exact.example", {"ads"}, ()),
        ("keyword", "ads", set(), ()),
        ("regexp", r"^ad[0-9]+\.example$", {"cn"}, ()),
        ("domain", "tagged.example", {"ads", "cn"}, ("category-ads", "other")),
        ("domain", "tabbed.example", {"!cn"}, ()),
    ]
    assert entries[0].origin == "x:4"
    assert [(i.name, set(i.must_have), set(i.must_not)) for i in data_list.includes] == [
        ("other", set(), set()),
        ("filtered", {"ads"}, {"!cn"}),
    ]
    assert data_list.includes[1].origin == "x:11"


@pytest.mark.parametrize("line, why", [
    ("foo:bar.example", "unknown rule type 'foo'"),
    ("full:", "empty value after 'full:'"),
    ("include:", "empty value after 'include:'"),
    ("a.example ads", "unexpected 'ads'"),
    ("a.example @", "unexpected '@'"),
    ("a.example &", "unexpected '&'"),
    ("a.example @-ads", "@-attribute is a filter"),
    ("include:x &y", "cannot carry &affiliations"),
])
def test_parse_errors_name_list_line_and_text(line, why):
    with pytest.raises(ConfigError) as err:
        parse_list("some-list", ["ok.example", line + "  # comment"])
    message = str(err.value)
    assert message.startswith("some-list:2: ")
    assert why in message
    assert message.endswith(repr(line + "  # comment"))


def test_include_filters_admit():
    lists = parse_lists({
        "src": ["plain.example", "ads.example @ads", "cn.example @cn", "notcn.example @!cn",
                "both.example @ads @!cn"],
        "has-ads": ["include:src @ads"],
        "not-notcn": ["include:src @-!cn"],
        "ads-not-notcn": ["include:src @ads @-!cn"],
        "has-cn": ["include:src @cn"],
    })
    assert [e.value for e in resolve(lists, "has-ads")] == ["ads.example", "both.example"]
    assert [e.value for e in resolve(lists, "not-notcn")] == ["plain.example", "ads.example", "cn.example"]
    assert [e.value for e in resolve(lists, "ads-not-notcn")] == ["ads.example"]
    assert [e.value for e in resolve(lists, "has-cn")] == ["cn.example"]


def test_filters_apply_to_what_the_included_list_itself_includes():
    lists = parse_lists({
        "top": ["include:middle @ads"],
        "middle": ["middle.example @ads", "include:leaf"],
        "leaf": ["leaf-ads.example @ads", "leaf.example"],
    })
    assert [e.value for e in resolve(lists, "top")] == ["middle.example", "leaf-ads.example"]


def test_affiliation_adds_entry_to_other_list_even_without_file():
    lists = parse_lists({
        "a": ["x.example @ads &b &c"],
        "b": ["own.example"],
    })
    assert [e.value for e in resolve(lists, "b")] == ["own.example", "x.example"]
    assert [e.value for e in resolve(lists, "c")] == ["x.example"]
    assert set(resolve(lists, "c")[0].attrs) == {"ads"}


def test_include_cycle_is_one_line_error():
    lists = parse_lists({"a": ["include:b"], "b": ["b.example", "include:a"]})
    with pytest.raises(ConfigError) as err:
        resolve(lists, "a")
    assert str(err.value) == "b:2: include:a: include cycle: a -> b -> a"


def test_self_include_is_a_cycle():
    lists = parse_lists({"a": ["include:a"]})
    with pytest.raises(ConfigError, match="include cycle: a -> a"):
        resolve(lists, "a")


def test_missing_include_is_one_line_error():
    lists = parse_lists({"a": ["ok.example", "include:nope"]})
    with pytest.raises(ConfigError) as err:
        resolve(lists, "a")
    assert str(err.value) == "a:2: include:nope: no such list 'nope'"


def test_absurdly_deep_include_chain_is_an_error_not_a_recursion_error():
    files = {"l%d" % i: ["include:l%d" % (i + 1)] for i in range(150)}
    files["l150"] = ["end.example"]
    with pytest.raises(ConfigError, match=r"includes nested deeper than 100: l0 -> l1 -> l2"):
        resolve(parse_lists(files), "l0")
    files = {"l%d" % i: ["include:l%d" % (i + 1)] for i in range(90)}
    files["l90"] = ["end.example"]
    assert [e.value for e in resolve(parse_lists(files), "l0")] == ["end.example"]


def test_diamond_include_is_not_a_cycle():
    lists = parse_lists({"top": ["include:l", "include:r"], "l": ["include:base"], "r": ["include:base"],
                         "base": ["base.example"]})
    assert [e.value for e in resolve(lists, "top")] == ["base.example"]      # once (issue 10 item 13)


# --- the fixture tree -------------------------------------------------------------

def test_fixture_resolution_follows_nested_filtered_includes():
    lists = fixture_lists()
    cn = resolve(lists, "cn")
    assert ("domain", "alibaba.com") in values(cn)
    assert ("domain", "alihealth.hk") not in values(cn)           # include:alibaba @-!cn
    assert ("domain", "baidupcs.com") not in values(cn)           # kept as written; merge normalises
    assert ("domain", "BaiduPCS.COM") in values(cn)
    not_cn = resolve(lists, "geolocation-!cn")
    assert ("domain", "espressif.com") in values(not_cn)          # include:espressif @!cn
    assert ("domain", "espressif.cn") not in values(not_cn)
    assert values(resolve(lists, "cn-access")) == [("domain", "cn.bing.com")]     # include:microsoft @cn
    assert values(resolve(lists, "extra-ads")) == [("domain", "ads.sample.cn"),
                                                   ("domain", "promo.unselected.example")]
    assert ("domain", "tracker.sample.cn") in values(resolve(lists, "category-ads"))


def test_fixture_cycle_and_missing_list():
    lists = fixture_lists()
    with pytest.raises(ConfigError, match=r"^loop-c:1: include:loop-a: include cycle: loop-a -> loop-b -> loop-c"):
        resolve(lists, "loop-a")
    with pytest.raises(ConfigError, match=r"^broken-include:1: include:no-such-list: no such list"):
        resolve(lists, "broken-include")


def fixture_merge(**selection):
    lists = fixture_lists()
    names = {n for names in selection.values() for n in names} or {"cn", "geolocation-!cn"}
    return merge(resolve_many(lists, sorted(names)), **selection)


def test_fixture_default_mapping_output():
    result = fixture_merge()
    text = render(result, ["header"])
    assert text == "# header\n\n" + EXPECTED_FIXTURE_RULES
    assert result.counts == {BLOCK: 6, DIRECT: 13, FORWARD: 9}
    assert result.kinds == {"domain": 21, "full": 2, "keyword": 3, "regexp": 2}
    assert result.skipped == 2
    # www.baidu.com, sample.cn, googleapis.cn (@cn under cn) and full:exact-vs-suffix.example
    assert result.redundant == 4
    assert result.warnings == ["sample:5: bad domain 'bad..domain.example' skipped",
                               "google:7: bad regexp '(?<name>gvt)x' skipped"]


def test_fixture_directions_through_the_rule_engine():
    rule_set = RuleSet(fixture_merge().rules)
    expected = {
        "www.baidu.com": DIRECT, "baidupcs.com": DIRECT, "img.bdstatic.com": DIRECT,
        "adscdn.baidu.com": BLOCK, "tieba-ads.baidu.com": BLOCK, "x.tieba-ads.baidu.com": DIRECT,
        "ads.sample.cn": BLOCK, "foreign.sample.cn": FORWARD, "www.sample.cn": DIRECT,
        "alihealth.hk": None,                       # @!cn, filtered out of cn, in no forward list
        "www.google.com": FORWARD, "googleapis.cn": DIRECT, "doubleclick.net": BLOCK,
        "github.com": FORWARD, "cdn.github.com": DIRECT, "x.cdn.github.com": FORWARD,
        "bing.com": FORWARD, "cn.bing.com": DIRECT, "espressif.com": FORWARD, "espressif.cn": DIRECT,
        "both.example": DIRECT, "exact-vs-suffix.example": DIRECT,
        "adnetwork.example": None, "promo.unselected.example": None, "loop-b.example": None,
        "例子.中国": DIRECT,
        # keyword/regexp entries, with their list's direction (@ads and @cn applied)
        "bd12.com": BLOCK, "www.bd12.com": None, "xbaidux.net": DIRECT, "r1.googlevideo.net": FORWARD,
        "i.ytimg.net": DIRECT, "gvt1.com": FORWARD, "x.gvt2.com": FORWARD, "gvtx.com": None,
        "googlevideo.google.com": FORWARD, "baidu.googlevideo.cn": DIRECT,   # suffix rules first
    }
    assert {host: rule_set.lookup(host) for host in expected} == expected


def test_options_choose_lists_per_direction():
    result = fixture_merge(block=["category-ads", "extra-ads"], direct=["cn"], forward=["geolocation-!cn"])
    rule_set = RuleSet(result.rules)
    assert rule_set.lookup("adnetwork.example") is BLOCK
    assert rule_set.lookup("promo.unselected.example") is BLOCK     # via &extra-ads
    assert rule_set.lookup("www.baidu.com") is DIRECT
    only_google = RuleSet(fixture_merge(block=(), direct=(), forward=["google"]).rules)
    assert only_google.lookup("google.com") is FORWARD
    assert only_google.lookup("googleapis.cn") is DIRECT               # @cn in a forward list
    assert only_google.lookup("doubleclick.net") is BLOCK              # @ads anywhere
    assert only_google.lookup("baidu.com") is None


def test_direction_of_entry():
    assert direction_of(entry("x", "ads"), DIRECT) is BLOCK
    assert direction_of(entry("x", "ads", "!cn"), FORWARD) is BLOCK
    assert direction_of(entry("x", "!cn"), DIRECT) is FORWARD
    assert direction_of(entry("x", "cn"), DIRECT) is DIRECT
    assert direction_of(entry("x", "cn"), FORWARD) is DIRECT
    assert direction_of(entry("x", "!cn"), FORWARD) is FORWARD
    assert direction_of(entry("x", "cn"), BLOCK) is BLOCK


def test_merge_conflicts_block_then_direct_then_forward():
    resolved = {
        "direct": [entry("both.example"), entry("x.example"), entry("ad.example")],
        "forward": [entry("both.example"), entry("x.example", "cn"), entry("ad.example", "ads")],
    }
    result = merge(resolved, block=(), direct=["direct"], forward=["forward"])
    assert result.rules == [(BLOCK, "domain", "ad.example"), (DIRECT, "domain", "both.example"),
                            (DIRECT, "domain", "x.example")]


def test_merge_exact_rule_dropped_only_when_same_name_suffix_is_stronger():
    resolved = {
        "d": [entry("a.example"), entry("b.example", type="full")],
        "f": [entry("a.example", type="full"), entry("b.example")],
    }
    result = merge(resolved, block=(), direct=["d"], forward=["f"])
    assert result.rules == [(DIRECT, "domain", "a.example"), (DIRECT, "full", "b.example"),
                            (FORWARD, "domain", "b.example")]
    assert result.redundant == 1


def test_merge_leaves_out_rules_that_change_no_answer_and_keeps_the_answers():
    resolved = {"d": [entry("example.com"), entry("www.example.com"), entry("a.b.example.com", type="full"),
                      entry("ads.example.com", "ads"), entry("x.ads.example.com"),
                      entry("y.ads.example.com", "ads")]}
    result = merge(resolved, block=(), direct=["d"], forward=())
    assert result.rules == [(BLOCK, "domain", "ads.example.com"), (DIRECT, "domain", "example.com"),
                            (DIRECT, "domain", "x.ads.example.com")]
    assert result.redundant == 3
    full = RuleSet((direction_of(e, DIRECT), e.type, e.value) for e in resolved["d"])
    pruned = RuleSet(result.rules)
    for host in ["example.com", "www.example.com", "a.b.example.com", "b.example.com", "ads.example.com",
                 "z.ads.example.com", "x.ads.example.com", "y.ads.example.com", "q.y.ads.example.com"]:
        assert pruned.lookup(host) is full.lookup(host), host


def test_merge_with_patterns_leaves_out_only_what_changes_no_answer():
    # Patterns rank below every suffix rule: pruning a suffix rule under an enclosing one of the
    # same direction keeps the answers even where a keyword of another direction matches, and the
    # merger never prunes towards the default (a pattern could then decide instead).
    resolved = {
        "d": [entry("example.com"), entry("ads.example.com"), entry("tracker.net", type="full"),
              entry("cdn.example.org", type="full"), entry("example.org")],
        "b": [entry("ads", type="keyword"), entry(r"(^|\.)track", type="regexp"),
              entry("ads", type="keyword")],
        "f": [entry("ads", type="keyword"), entry("example", type="keyword")],
    }
    result = merge(resolved, block=["b"], direct=["d"], forward=["f"])
    assert result.rules == [
        (BLOCK, "keyword", "ads"), (BLOCK, "regexp", r"(^|\.)track"),
        (DIRECT, "domain", "example.com"), (DIRECT, "full", "tracker.net"), (DIRECT, "domain", "example.org"),
        (FORWARD, "keyword", "example")]
    assert result.redundant == 2        # ads.example.com, full:cdn.example.org
    unpruned = RuleSet([(BLOCK, e.type, e.value) for e in resolved["b"]]
                       + [(DIRECT, e.type, e.value) for e in resolved["d"]]
                       + [(FORWARD, e.type, e.value) for e in resolved["f"]])
    pruned = RuleSet(parse_rules(render(result, []).splitlines(True)))
    for host in ["example.com", "ads.example.com", "x.ads.example.com", "tracker.net", "www.tracker.net",
                 "cdn.example.org", "ads.example.net", "example.net", "adsexample.io", "q.io"]:
        assert pruned.lookup(host) is unpruned.lookup(host), host


def test_render_output_parses_and_is_deterministic():
    first = render(fixture_merge(), ["h"])
    second = render(fixture_merge(), ["h"])
    assert first == second
    assert parse_rules(first.splitlines(True)) == fixture_merge().rules


def test_read_data_dir_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read data directory"):
        cli.read_data_dir(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="holds no list files"):
        cli.read_data_dir(str(tmp_path))
    (tmp_path / "bad").write_bytes(b"caf\xe9.example\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        cli.read_data_dir(str(tmp_path))


def test_cli_main_in_process_writes_file(tmp_path, caplog):
    out = tmp_path / "rules.txt"
    assert cli.main([FIXTURE, "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.endswith(EXPECTED_FIXTURE_RULES)
    assert "# rules: 28 (block 6, direct 13, forward 9; domain 21, full 2, keyword 3, regexp 2)" in text
    assert "# skipped: 2 bad entries; 4 redundant rules left out" in text
    assert [p.name for p in tmp_path.iterdir()] == ["rules.txt"]       # no temp file left


@pytest.mark.parametrize("argv, message", [
    (["--direct", "loop-a"], "include cycle: loop-a -> loop-b -> loop-c -> loop-a"),
    (["--direct", "broken-include"], "no such list 'no-such-list'"),
    (["--block", "no-such-list"], "no list 'no-such-list' in"),
])
def test_cli_main_errors_exit_2(argv, message, capsys):
    assert cli.main([FIXTURE] + argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


# --- issue 10 item 13: includes expanded once ------------------------------------

def doubling_chain(levels, second_filter=""):
    """Lists l0..l{levels-1} each include the next twice; the last holds one entry (2^levels before)."""
    files = {"l%d" % i: ["include:l%d" % (i + 1), "include:l%d%s" % (i + 1, second_filter)] for i in range(levels)}
    files["l%d" % levels] = ["# crafted: each list above includes the next twice",
                             "# so the one entry below used to come out 2^levels times", "deep.example", ""]
    return files


def test_an_include_repeated_is_expanded_once():
    files = doubling_chain(18)
    assert sum(len(lines) for lines in files.values()) == 40
    resolved = resolve(parse_lists(files), "l0")
    assert values(resolved) == [("domain", "deep.example")]     # was 2^18 = 262 144 copies
    result = merge({"l0": resolved}, block=(), direct=["l0"], forward=())
    assert result.rules == [(DIRECT, "domain", "deep.example")]


def test_an_entry_reached_through_two_filters_or_a_diamond_is_kept_once():
    files = doubling_chain(18, second_filter=" @-ads")
    resolved = resolve(parse_lists(files), "l0")
    assert len(resolved) == 1
    diamond = {"top": ["include:left", "include:right"], "left": ["include:base"], "right": ["include:base"],
               "base": ["a.example", "b.example @ads"]}
    assert values(resolve(parse_lists(diamond), "top")) == [("domain", "a.example"), ("domain", "b.example")]

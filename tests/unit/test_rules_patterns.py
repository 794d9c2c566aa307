"""keyword:, regexp: and cidr: rules: matching, precedence, and the literal prefilter."""
from pathlib import Path

import pytest

from tomato_gevent.rules import Action, RuleSet, load_rule_files, parse_rules
from tomato_gevent.rules.patterns import PatternMatcher, final_labels, label_start_rest, required_literal

BLOCK, DIRECT, FORWARD = Action.BLOCK, Action.DIRECT, Action.FORWARD
EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "rules" / "example.txt"


def rules(text):
    return RuleSet(parse_rules(text.splitlines(True)))


# --- keyword ---------------------------------------------------------------------

def test_keyword_matches_anywhere_in_the_name():
    rs = rules("block\tkeyword:track\n")
    for host in ["track.example", "www.tracker.com", "ad-tracking.net", "x.y.backtrack.org:443", "TRACK.example."]:
        assert rs.lookup(host) is BLOCK, host
    for host in ["tra.ck.example", "example.com", "10.0.0.1"]:
        assert rs.lookup(host) is None, host


def test_keyword_may_span_labels_and_is_lower_cased():
    rs = rules("forward\tkeyword:Google.\n")
    assert rs.lookup("www.google.com") is FORWARD
    assert rs.lookup("googlex.com") is None


def test_short_keywords_are_still_found():
    rs = rules("direct\tkeyword:qq\n")
    assert rs.lookup("a.qq.com") is DIRECT
    assert rs.lookup("aqqb.net") is DIRECT
    assert rs.lookup("q.q.net") is None


# --- regexp ----------------------------------------------------------------------

def test_regexp_is_re_search_on_the_normalised_name():
    rs = rules("block\tregexp:(^|\\.)91porn[0-9]{3}\\.me$\n")
    assert rs.lookup("91porn123.me") is BLOCK
    assert rs.lookup("www.91PORN123.me.:443") is BLOCK
    assert rs.lookup("x91porn123.me") is None
    assert rs.lookup("91porn12.me") is None
    assert rs.lookup("91porn123.me.uk") is None


def test_regexp_sees_a_labels_of_idn():
    rs = rules("direct\tregexp:^xn--fa-hia\\.de$\n")
    assert rs.lookup("faß.de") is DIRECT


def test_unanchored_regexp():
    rs = rules("forward\tregexp:javdb\\d+\\.com$\n")
    assert rs.lookup("javdb42.com") is FORWARD
    assert rs.lookup("www.myjavdb7.com") is FORWARD
    assert rs.lookup("javdb.com") is None


def test_regexp_without_a_literal_is_checked_on_every_name():
    rs = rules("block\tregexp:^[a-z][0-9]$\n")
    assert rs.lookup("a1") is BLOCK
    assert rs.lookup("aa") is None


# --- precedence ------------------------------------------------------------------

def test_precedence_exact_then_suffix_then_patterns_then_default():
    rs = rules(
        "forward\tkeyword:example\n"
        "block\tregexp:example\n"
        "direct\tfull:www.example.com\n"
        "block\texample.org\n")
    assert rs.lookup("www.example.com") is DIRECT          # exact beats the earlier keyword
    assert rs.lookup("a.example.org") is BLOCK             # suffix beats the earlier keyword
    assert rs.lookup("example.net") is FORWARD             # first pattern in file order
    assert rs.lookup("other.net") is None                  # the default decides


def test_any_suffix_rule_beats_every_pattern():
    rs = rules("block\tkeyword:ads\ndirect\tcom\n")
    assert rs.lookup("ads.example.com") is DIRECT
    assert rs.lookup("ads.example.net") is BLOCK


def test_first_pattern_in_file_order_wins_over_a_longer_match():
    rs = rules("direct\tregexp:a\nblock\tkeyword:abcdef\nforward\tkeyword:bcd\n")
    assert rs.lookup("xabcdefx.com") is DIRECT
    rs = rules("forward\tkeyword:bcd\nblock\tkeyword:abcdef\n")
    assert rs.lookup("xabcdefx.com") is FORWARD


def test_a_shorter_literal_inside_a_longer_one_is_found_too():
    # The prefilter reports the longest literal at a position; "abc" there counts as well.
    assert rules("direct\tkeyword:abc\nblock\tkeyword:abcdef\n").lookup("xabcdefx.com") is DIRECT
    assert rules("direct\tregexp:(^|\\.)abc\nblock\tregexp:(^|\\.)abcdef\n").lookup("x.abcdef.com") is DIRECT


def test_duplicate_pattern_first_occurrence_wins_and_counts_once():
    rs = rules("block\tkeyword:ads\ndirect\tkeyword:ads\ndirect\tregexp:ads\n")
    assert rs.lookup("ads.com") is BLOCK
    assert len(rs) == 2
    assert rs.counts == {BLOCK: 1, DIRECT: 1, FORWARD: 0}


def test_patterns_and_ip_literals_do_not_meet():
    rs = rules("block\tkeyword:10\nblock\tregexp:^1\n")
    assert rs.lookup("10.0.0.1") is None
    assert rs.lookup("[::1]:443") is None


# --- cidr ------------------------------------------------------------------------

def test_cidr_rules_decide_ip_literals_most_specific_prefix_first():
    rs = rules(
        "direct\tcidr:10.0.0.0/8\n"
        "block\tcidr:10.1.0.0/16\n"
        "forward\tcidr:10.1.2.3/32\n"
        "direct\tcidr:fd00::/8\n"
        "block\tcidr:fd00:1::/32\n")
    assert rs.lookup("10.9.9.9") is DIRECT
    assert rs.lookup("10.1.9.9") is BLOCK
    assert rs.lookup("10.1.2.3:443") is FORWARD
    assert rs.lookup("11.0.0.1") is None
    assert rs.lookup("fd12::1") is DIRECT
    assert rs.lookup("[fd00:1::5]:443") is BLOCK
    assert rs.lookup("fe80::1") is None
    assert rs.lookup("::ffff:10.1.2.3") is FORWARD         # IPv4-mapped counts as IPv4


def test_cidr_rules_never_match_names():
    rs = rules("block\tcidr:0.0.0.0/0\nblock\tcidr:::/0\n")
    assert rs.lookup("example.com") is None
    assert rs.lookup("1.2.3.4") is BLOCK
    assert rs.lookup("2001:db8::1") is BLOCK


def test_cidr_first_occurrence_wins_and_spelling_is_normalised():
    rs = rules("block\tcidr:FD00::/8\ndirect\tcidr:fd00::0/8\n")
    assert rs.lookup("fd00::1") is BLOCK
    assert len(rs) == 1
    assert parse_rules(["block\tcidr:FD00::/8\n"])[0].value == "fd00::/8"


def test_example_file_sends_private_ranges_direct():
    rs = load_rule_files([str(EXAMPLE_RULES)])
    for host in ["192.168.1.10", "10.0.0.1", "172.16.5.5", "127.0.0.1", "[fd00::1]:80", "fe80::1", "::1"]:
        assert rs.lookup(host) is DIRECT, host
    assert rs.lookup("8.8.8.8") is None


# --- the prefilter ---------------------------------------------------------------

@pytest.mark.parametrize("pattern, literal, anchored", [
    (r"(^|\.)91porn[0-9]{3}\.me$", "91porn", True),
    (r"(?:^|\.)gaogediao\.(com|me)$", "gaogediao.", True),
    (r"^hses[1-7]?\.akamaized\.net$", "akamaized.net", True),
    (r"^.+-mihayo\.akamaized\.net$", "akamaized.net", True),    # anchored beats a longer text one
    (r"javdb\d+\.com$", "javdb", False),
    (r"(^|\.)[1-5]gaoap\.com$", "gaoap.com", False),
    (r"(?i)ABCdef", "abcdef", False),
    (r"a|bcdef", "", False),            # a branch: no literal is required
    (r"x?", "", False),
    (r"[^a]\.co$", "co", True),        # after a dot: label-anchored, 2 + bonus
])
def test_required_literal(pattern, literal, anchored):
    assert required_literal(pattern) == (literal, anchored)


@pytest.mark.parametrize("pattern, labels", [
    (r"(^|\.)91porn[0-9]{3}\.me$", {"me"}),
    (r"\.(co\.uk|com|net)$", {"uk", "com", "net"}),
    (r"(^|\.)91porn\.(best|com|cool)$", {"best", "com", "cool"}),
    (r"(?i)\.COM$", {"com"}),
    (r"(^|\.)youyuapi\..+$", None),
    (r"abc$", None),
    (r"\.com", None),
    (r"\.(com|[a-z]+)$", None),
])
def test_final_labels(pattern, labels):
    assert final_labels(pattern) == (frozenset(labels) if labels is not None else None)


def test_rules_meet_only_names_under_their_tld_plus_those_of_any_tld():
    rs = rules("block\tregexp:(^|\\.)ad[0-9]\\.com$\ndirect\tregexp:(^|\\.)ad[0-9]\\.\nforward\tkeyword:ad7\n")
    assert rs.lookup("ad1.com") is BLOCK
    assert rs.lookup("ad1.net") is DIRECT
    assert rs.lookup("x.ad7.org") is DIRECT
    assert rs.lookup("ad7x.org") is FORWARD
    assert rs.lookup("ad1.comx") is DIRECT


def test_matcher_agrees_with_running_every_rule_in_order():
    specs = [(BLOCK, "regexp", r"(^|\.)ab[0-9]\.com$"), (DIRECT, "keyword", "abc"),
             (FORWARD, "regexp", r"(^|\.)abc\.net$"), (DIRECT, "regexp", r"\.com$"),
             (BLOCK, "keyword", "ab"), (FORWARD, "regexp", r"^c")]
    matcher = PatternMatcher(specs)
    import re
    names = ["ab1.com", "abc.net", "x.abc.net", "xab1.com", "c.org", "abab.org", "zz.com", "cab.io", "q.io"]
    for name in names:
        expected = next((a for a, k, v in specs if (v in name if k == "keyword" else re.search(v, name))), None)
        assert matcher.match(name) is expected, name


def test_label_start_rest_only_where_it_keeps_the_meaning():
    assert label_start_rest(r"(^|\.)[a-z][1-9][0-9][a-z]\.com$") == r"[a-z][1-9][0-9][a-z]\.com$"
    assert label_start_rest(r"(?:^|\.)a[0-9]\.(cc|tv)$") == r"a[0-9]\.(cc|tv)$"
    assert label_start_rest(r"(^|\.)a[0-9]\.com$|^b") is None      # "|b" would lose its own branch
    assert label_start_rest(r"(^|\.)(a)\1\.com$") is None           # a back-reference counts groups
    assert label_start_rest(r"(^|\.)[^.]\.com$") is None
    assert label_start_rest(r"(^|\.)a(?i)") is None
    assert label_start_rest(r"^a[0-9]\.com$") is None


def test_a_pattern_without_literal_is_screened_by_its_rest_after_a_dot():
    # Neither rule has a literal but the TLD: the .com screen is their rests after a dot.
    matcher = PatternMatcher([(BLOCK, "regexp", r"(^|\.)[a-c][0-9]\.com$"),
                              (DIRECT, "regexp", r"(^|\.)[x-z][0-9]{2}\.com$")])
    screen = matcher.screens["com"]
    for name, action in [("a1.com", BLOCK), ("w.b2.com", BLOCK), ("x12.com", DIRECT), ("q.x12.com", DIRECT)]:
        assert screen("." + name) is not None and matcher.match(name) is action
    for name in ["www.site1.com", "d1.com", "xa1.com", "x1.com", "a1.com.cn.com"]:
        assert screen("." + name) is None and matcher.match(name) is None


def test_an_unscreenable_rule_runs_on_every_name_of_its_group():
    matcher = PatternMatcher([(BLOCK, "regexp", r"[a-c][0-9]\.com$"), (DIRECT, "regexp", r"(^|\.)q[0-9]\.com$")])
    assert matcher.screens["com"](".www.site.com") is not None
    assert matcher.match("xa1.com") is BLOCK and matcher.match("q1.com") is DIRECT
    assert matcher.match("www.site.com") is None


def test_cidr_rules_see_an_ip_literal_as_the_resolver_does_zone_and_all():
    # The resolver connects "10.0.0.1%1" to 10.0.0.1 (ip_literal drops a zone): so must the
    # rules decide on 10.0.0.1, or the zone is a way past a cidr rule.
    rs = rules("block\tcidr:10.0.0.0/8\nblock\tcidr:fe80::/10\n")
    for host in ["10.0.0.1%1", "10.0.0.1%1:443", "fe80::1%eth0", "[fe80::1%eth0]:443"]:
        assert rs.lookup(host) is BLOCK, host

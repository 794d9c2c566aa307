"""Outbound.route: the routing decision cached per host, never older than the last set_rules."""
import pytest

from tomato_gevent.proxy import outbound as outbound_mod
from tomato_gevent.proxy.outbound import Outbound
from tomato_gevent.rules import Action, BadHost, RuleSet, parse_rules

from .proxy_doubles import FakeResolver


def rules(*lines):
    return RuleSet(parse_rules(lines))


def test_route_is_the_canonical_host_and_the_rules_decision():
    out = Outbound(rules("block\tads.test"), resolver=FakeResolver())
    assert out.route("WWW.Ads.Test.") == ("www.ads.test", Action.BLOCK)
    assert out.route("0:0::1") == ("::1", Action.DIRECT)
    with pytest.raises(BadHost):
        out.route("a..b")


def test_a_reload_is_seen_by_the_very_next_request():
    # The cache would answer "direct" for ads.test forever if set_rules left it in place.
    out = Outbound(rules(), resolver=FakeResolver())
    assert out.route("ads.test") == ("ads.test", Action.DIRECT)
    assert out.route("ads.test") == ("ads.test", Action.DIRECT)        # now from the cache
    out.set_rules(rules("block\tads.test"))
    assert out.route("ads.test") == ("ads.test", Action.BLOCK)
    out.set_rules(rules("forward\tads.test"))
    assert out.route("ads.test") == ("ads.test", Action.DIRECT)        # forward without -f


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(outbound_mod, "ROUTE_CACHE_ENTRIES", 8)
    out = Outbound(rules("block\th7.test"), resolver=FakeResolver())
    for n in range(100):
        assert out.route("h%d.test" % n)[1] is (Action.BLOCK if n == 7 else Action.DIRECT)
        assert len(out._routes) <= 8
    assert out.route("h7.test")[1] is Action.BLOCK

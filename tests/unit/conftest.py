import pytest

from tomato_gevent.proxy.server import ProxyServer
from tomato_gevent.rules import RuleSet, parse_rules

from .proxy_doubles import FakeResolver


@pytest.fixture
def proxies():
    made = []

    def make(rules="", resolver=None, **kwargs):
        rule_set = RuleSet(parse_rules(rules.splitlines()))
        proxy = ProxyServer(("127.0.0.1", 0), rule_set, resolver=resolver or FakeResolver(), **kwargs)
        proxy.start()
        made.append(proxy)
        return proxy
    yield make
    for proxy in made:
        proxy.stop(timeout=1)

"""Test-suite policy shared by every test directory.

Tests under tests/netns need root (network namespaces, tun devices). Without
root they are skipped, unless TOMATO_REQUIRE_NETNS=1 (CI sets it): then any
skip of a netns test is reported as a failure, so CI cannot pass by skipping.
"""
import os

import pytest

REQUIRE_NETNS = os.environ.get("TOMATO_REQUIRE_NETNS") == "1"


def _is_netns_test(item):
    return "tests/netns/" in str(item.fspath).replace(os.sep, "/")


def pytest_runtest_setup(item):
    if _is_netns_test(item) and os.geteuid() != 0:
        pytest.skip("network-namespace tests need root")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_NETNS and report.skipped and _is_netns_test(item) and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = "netns test skipped but TOMATO_REQUIRE_NETNS=1: %s" % (reason,)

"""Test-suite policy shared by every test directory.

Tests under tests/netns need root (network namespaces, tun devices). Without
root they are skipped, unless TOMATO_REQUIRE_NETNS=1 (CI sets it): then any
skip of a netns test is reported as a failure, so CI cannot pass by skipping.

Hypothesis runs under one of two profiles, chosen by HYPOTHESIS_PROFILE:

- "default" (`make test`, CI): bounded and derandomized. Every run of the same
  code tries the same inputs, so a failure found in CI fails the same way on a
  laptop (and the falsifying example is printed with a reproduce blob); no
  flaky "passed on retry". Exploring new inputs is `make fuzz`'s job.
- "fuzz" (`make fuzz`, see tests/fuzz/conftest.py): random seeds, rounds of
  1000 inputs repeated for minutes, failures saved in .hypothesis/ and replayed
  first by the next run.
"""
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REQUIRE_NETNS = os.environ.get("TOMATO_REQUIRE_NETNS") == "1"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A deadline or "too slow" health check would turn a busy CI machine into a
# failure; speed belongs to bench/, never to tests.
settings.register_profile(
    "default", max_examples=300, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fuzz", max_examples=1000, derandomize=False, deadline=None, print_blob=True,
    database=DirectoryBasedExampleDatabase(os.path.join(CHECKOUT, ".hypothesis", "examples")),
    suppress_health_check=[HealthCheck.too_slow])
# Explicit, so that hypothesis' own "ci" profile (picked when $CI is set) never
# decides behind our back.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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

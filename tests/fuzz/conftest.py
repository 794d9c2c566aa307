"""Fuzz runs: bounded in `make test`, long in `make fuzz`.

Fuzz tests are plain hypothesis tests (`@given`, no max_examples of their own);
the profile decides how hard they run (tests/conftest.py). Under the "fuzz"
profile this plugin turns each test into a time-boxed fuzzer:

- the budget FUZZ_MINUTES (default 5) is shared by the collected tests: each
  gets an equal part of what is left when it starts, so a test that overran its
  part (a round is not cut short) shortens the next ones, not the whole run;
- a test reruns its hypothesis search in rounds (fresh random seed each round,
  max_examples from the profile) until its share of the budget is spent or a
  round fails; a failure is shrunk and reported by hypothesis as usual and
  saved in .hypothesis/, so the next run replays it first;
- every input handed to the test body is counted, and the end of the run prints
  one line per test: inputs tried, rounds, seconds, crashes.
"""
import functools
import os
import time
from collections import defaultdict

import pytest
from hypothesis import settings

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))


def _fuzzing():
    return settings.get_current_profile_name() == "fuzz"


def _is_fuzz_item(item):
    return str(item.fspath).startswith(FUZZ_DIR + os.sep) and _hypothesis_test(item) is not None


def _hypothesis_test(item):
    function = getattr(item, "obj", None)
    return function if getattr(function, "is_hypothesis_test", False) else None


class FuzzStats:
    def __init__(self):
        self.inputs = defaultdict(int)
        self.rounds = defaultdict(int)
        self.seconds = defaultdict(float)
        self.crashes = defaultdict(int)
        self.budget_seconds = None
        self.deadline = None  # monotonic time the whole run should end by
        self.tests_left = 0

    def share(self, now):
        """Seconds for the test that starts now: an equal part of what is left."""
        if self.deadline is None:  # the first fuzz test starts the clock
            self.deadline = now + self.budget_seconds
        share = max(0.0, self.deadline - now) / max(1, self.tests_left)
        self.tests_left -= 1
        return share


STATS = FuzzStats()


def pytest_collection_finish(session):
    fuzz_items = [item for item in session.items if _is_fuzz_item(item)]  # after -k / deselection
    if _fuzzing() and fuzz_items:
        STATS.budget_seconds = float(os.environ.get("FUZZ_MINUTES", "5")) * 60
        STATS.tests_left = len(fuzz_items)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    test = _hypothesis_test(pyfuncitem)
    if not _fuzzing() or test is None or not _is_fuzz_item(pyfuncitem):
        return None  # pytest calls the test once, as usual
    nodeid = pyfuncitem.nodeid
    body = test.hypothesis.inner_test

    @functools.wraps(body)
    def counted(*args, **kwargs):
        STATS.inputs[nodeid] += 1
        return body(*args, **kwargs)

    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    # hypothesis reads inner_test at call time: the documented hook for wrapping the body.
    test.hypothesis.inner_test = counted
    started = time.monotonic()
    share = STATS.share(started)
    try:
        while True:
            STATS.rounds[nodeid] += 1
            try:
                test(**arguments)
            except BaseException:
                STATS.crashes[nodeid] += 1
                raise
            if time.monotonic() - started >= share:
                break
    finally:
        STATS.seconds[nodeid] = time.monotonic() - started
        test.hypothesis.inner_test = body
    return True


def pytest_terminal_summary(terminalreporter):
    if not _fuzzing() or not STATS.rounds:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz figures (profile fuzz, FUZZ_MINUTES=%g)" % (STATS.budget_seconds / 60))
    width = max(len(nodeid) for nodeid in STATS.rounds)
    write("%-*s %12s %7s %8s %8s" % (width, "test", "inputs", "rounds", "seconds", "crashes"))
    for nodeid in sorted(STATS.rounds):
        write("%-*s %12d %7d %8.1f %8d" % (width, nodeid, STATS.inputs[nodeid], STATS.rounds[nodeid],
                                           STATS.seconds[nodeid], STATS.crashes[nodeid]))
    write("%-*s %12d %7s %8.1f %8d" % (width, "total", sum(STATS.inputs.values()), "",
                                       sum(STATS.seconds.values()), sum(STATS.crashes.values())))

"""vpn log throttle: at most `burst` lines per cause per interval, the rest DEBUG and counted."""
import logging

from tomato_gevent.vpn.throttle import INTERVAL_SECONDS, LogThrottle

log = logging.getLogger("tomato_gevent.test.throttle")


def test_throttle_one_line_per_cause_per_interval_and_counts_the_rest():
    throttle = LogThrottle(log, 60.0)
    assert throttle.admit("auth", 0.0) == 0
    assert throttle.admit("auth", 1.0) is None
    assert throttle.admit("auth", 59.9) is None
    assert throttle.admit("skew", 2.0) == 0                 # causes are independent
    assert throttle.admit("auth", 60.0) == 2                # two held back since the last line
    assert throttle.admit("auth", 119.0) is None
    assert throttle.admit("auth", 200.0) == 1


def test_throttle_burst_admits_that_many_lines_within_any_interval():
    throttle = LogThrottle(log, 10.0, burst=2)
    assert throttle.admit("link", 0.0) == 0                 # lost
    assert throttle.admit("link", 0.5) == 0                 # connected again: told in full
    assert throttle.admit("link", 1.0) is None              # a third within 10 s is held
    assert throttle.admit("link", 10.0) == 1                # 10 s after the first: one more
    assert throttle.admit("link", 10.4) is None             # 0.5 s still inside the window
    assert throttle.admit("link", 10.5) == 1


def records(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]


def test_lines_held_back_go_to_debug_and_are_counted_in_the_next_line(caplog):
    clock = [100.0]
    warn = LogThrottle(log, monotonic=lambda: clock[0])     # the data path's defaults: 10 s, burst 1, WARNING
    with caplog.at_level(logging.DEBUG, logger=log.name):
        warn(("send", 105), "cannot send to %s: %s", "10.9.0.2:5000", "No buffer space available")
        for _ in range(3):
            warn(("send", 105), "cannot send to %s: %s", "10.9.0.2:5000", "No buffer space available")
        warn(("tun", 5), "writing %s failed: %s", "tun0", "Input/output error")    # another cause: its own line
        clock[0] += INTERVAL_SECONDS
        warn(("send", 105), "cannot send to %s: %s", "10.9.0.3:5000", "No buffer space available")
    assert records(caplog) == [
        (logging.WARNING, "cannot send to 10.9.0.2:5000: No buffer space available"),
        (logging.DEBUG, "cannot send to 10.9.0.2:5000: No buffer space available"),
        (logging.DEBUG, "cannot send to 10.9.0.2:5000: No buffer space available"),
        (logging.DEBUG, "cannot send to 10.9.0.2:5000: No buffer space available"),
        (logging.WARNING, "writing tun0 failed: Input/output error"),
        (logging.WARNING, "cannot send to 10.9.0.3:5000: No buffer space available (3 more like this in the "
                          "last 10 s)")]


def test_a_burst_at_its_level_and_the_time_given_by_the_caller(caplog):
    def clock():
        raise AssertionError("now= given: the clock is not read")

    events = LogThrottle(log, interval=60.0, burst=2, level=logging.INFO, monotonic=clock)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        for now, text in ((0.0, "lost"), (1.0, "connected"), (2.0, "lost"), (3.0, "connected"), (61.0, "lost")):
            events("peer", text, now=now)
    assert records(caplog) == [(logging.INFO, "lost"), (logging.INFO, "connected"), (logging.DEBUG, "lost"),
                               (logging.DEBUG, "connected"), (logging.INFO, "lost (2 more like this in the last "
                                                                            "1 min)")]

"""warmth.py: when the data path stays warm (pure: the clock is passed in)."""
import pytest

from tomato_gevent.vpn.warmth import (DENSE_EVENTS, DENSE_WINDOW_SECONDS, LEAD_SECONDS, MAX_PERIOD_SECONDS,
                                      MIN_PERIOD_SECONDS, Density, Rhythm)


@pytest.mark.parametrize("interval, dense", [
    (0.2, False),                                   # ping -i 0.2: 5 a second, 10 wakeups with the replies
    (0.02, False),                                  # 50 a second
    (DENSE_WINDOW_SECONDS / DENSE_EVENTS * 0.9, True),
    (0.0001, True),                                 # a transfer
])
def test_density(interval, dense):
    d = Density()
    assert any(d.dense(i * interval) for i in range(200)) is dense


def test_density_forgets_a_burst_long_ago():
    d = Density()
    assert [d.dense(i * 1e-4) for i in range(DENSE_EVENTS)][-1] is True
    assert d.dense(10.0) is False


def rhythm(*arrivals):
    r = Rhythm()
    for t in arrivals:
        r.arrived(t)
    return r.window()


@pytest.mark.parametrize("arrivals, expected", [
    ((), None),
    ((1.0, 1.2), None),                              # two are not a rhythm yet
    ((1.0, 1.2, 1.4), 1.6),                          # ping -i 0.2
    ((1.0, 1.2, 1.4015), 1.603),                     # jitter within the lead
    ((1.0, 1.2, 1.41), None),                        # ... beyond it
    ((0.0, 1.0, 2.0), 3.0),                          # ping -i 1
    ((0.0, 25.0, 50.0), 75.0),                       # keepalives
    ((0.0, 0.01, 0.02), None),                       # too dense: the warm loop's business
    ((0.0, 40.0, 80.0), None),                       # too sparse
    ((0.0, 5.0, 5.2, 5.4), 5.6),                     # only the last three count
])
def test_rhythm(arrivals, expected):
    window = rhythm(*arrivals)
    if expected is None:
        assert window is None
    else:
        assert window == pytest.approx((expected - LEAD_SECONDS, expected + LEAD_SECONDS))


def test_rhythm_bounds():
    assert rhythm(0.0, MIN_PERIOD_SECONDS, 2 * MIN_PERIOD_SECONDS) is not None
    assert rhythm(0.0, MAX_PERIOD_SECONDS, 2 * MAX_PERIOD_SECONDS) is not None

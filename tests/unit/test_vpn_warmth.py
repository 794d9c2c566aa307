"""warmth.py: when the data path stays warm (pure: the clock is passed in)."""
import pytest

from tomato_gevent.vpn.warmth import (DENSE_EVENTS, DENSE_WINDOW_SECONDS, LEAD_SECONDS, LINGER_SECONDS,
                                      MAX_NATIVE_WAIT_SECONDS, MAX_PERIOD_SECONDS, MAX_SPREAD_SECONDS,
                                      MIN_PERIOD_SECONDS, RHYTHM_INTERVALS, Density, Rhythm, after_packets,
                                      linger_until)


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


PING_02 = (0.0, 0.201, 0.404, 0.612, 0.816)         # ping -i 0.2 on a 250 Hz kernel: 201-208 ms apart


@pytest.mark.parametrize("arrivals, expected", [
    ((), None),
    ((1.0, 1.2, 1.4, 1.6), None),                    # three intervals are not a rhythm yet
    ((1.0, 1.2, 1.4, 1.6, 1.8), (2.0, 2.0)),         # ping -i 0.2, exactly
    (PING_02, (0.816 + 0.201, 0.816 + 0.208)),       # ... as it comes: the window spans the intervals seen
    ((0.0, 0.2, 0.4, 0.6, 0.811), None),             # ... beyond MAX_SPREAD_SECONDS
    ((0.0, 1.0, 2.0, 3.0, 4.0), (5.0, 5.0)),         # ping -i 1
    ((0.0, 25.0, 50.0, 75.0, 100.0), (125.0, 125.0)),   # keepalives
    ((0.0, 40.0, 80.0, 120.0, 160.0), None),         # too sparse
    ((0.0, 5.0, 5.2, 5.4, 5.6, 5.8), (6.0, 6.0)),    # only the last four intervals count
    # An arrival within MIN_PERIOD_SECONDS of the last (a late reply, a burst) is no beat:
    ((0.0, 0.2, 0.203, 0.4, 0.6, 0.6001, 0.8), (1.0, 1.0)),
    ((0.0, 0.01, 0.02, 0.03, 0.04, 0.05), None),     # too dense: the warm loop's business
])
def test_rhythm(arrivals, expected):
    window = rhythm(*arrivals)
    if expected is None:
        assert window is None
    else:
        assert window == pytest.approx((expected[0] - LEAD_SECONDS, expected[1] + LEAD_SECONDS))
        assert window[1] - window[0] <= MAX_NATIVE_WAIT_SECONDS


def test_rhythm_bounds():
    for period in (MIN_PERIOD_SECONDS * 1.001, MAX_PERIOD_SECONDS):     # (1.001: float sums)
        assert rhythm(*(i * period for i in range(RHYTHM_INTERVALS + 1))) is not None


def test_rhythm_spread_bound():
    base = [i * 1.0 for i in range(RHYTHM_INTERVALS)]
    widest = rhythm(*base, base[-1] + 1.0 + MAX_SPREAD_SECONDS * 0.9)
    assert widest is not None and LINGER_SECONDS < widest[1] - widest[0] <= MAX_NATIVE_WAIT_SECONDS
    assert rhythm(*base, base[-1] + 1.0 + MAX_SPREAD_SECONDS * 1.1) is None


@pytest.mark.parametrize("from_tun, until", [
    (True, 5.0 + LINGER_SECONDS),                   # a ping went out: its reply wakes into the loop
    (False, 5.0),                                   # the peer's packet (and the tun's answer): done
])
def test_linger(from_tun, until):
    assert linger_until(5.0, from_tun) == pytest.approx(until)


@pytest.mark.parametrize("dense, keep_warm, from_tun, from_peer, expected", [
    # light traffic: the peer's packet is followed by a yield; a tun packet by the linger
    (False, 2.0, False, True, (1.0, 5.0, True)),
    (False, 2.0, True, False, (1.0, 5.0 + LINGER_SECONDS, False)),
    # dense traffic: warm keep_warm seconds more, no yield
    (True, 2.0, False, True, (7.0, 5.0, False)),
    # dense with --keep-warm 0: never warm, and still no yield
    (True, 0, False, True, (1.0, 5.0, False)),
])
def test_after_packets(dense, keep_warm, from_tun, from_peer, expected):
    warm_until, native_until, yield_cpu = after_packets(5.0, dense, keep_warm, 1.0, from_tun, from_peer)
    assert (warm_until, native_until, yield_cpu) == pytest.approx(expected)


def test_no_yield_while_still_warm_from_earlier_dense_traffic():
    assert after_packets(5.0, False, 2.0, 6.0, False, True) == (6.0, 5.0, False)

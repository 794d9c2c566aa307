"""ReplayWindow against wireguard-go's replay_test.go table (itself from the Linux kernel's selftest)."""
import pytest

from tomato_gevent.vpn.replay import WINDOW_SIZE, ReplayWindow

REJECT_AFTER_MESSAGES = (1 << 64) - (1 << 13) - 1
T_LIM = WINDOW_SIZE + 1

# (counter, expected) in order, numbered as in replay_test.go.
TABLE = [
    (0, True), (1, True), (1, False), (9, True), (8, True), (7, True), (7, False),
    (T_LIM, True), (T_LIM - 1, True), (T_LIM - 1, False), (T_LIM - 2, True), (2, True), (2, False),
    (T_LIM + 16, True), (3, False), (T_LIM + 16, False), (T_LIM * 4, True), (T_LIM * 4 - (T_LIM - 1), True),
    (10, False), (T_LIM * 4 - T_LIM, False), (T_LIM * 4 - (T_LIM + 1), False), (T_LIM * 4 - (T_LIM - 2), True),
    (T_LIM * 4 + 1 - T_LIM, False), (0, False),
    (REJECT_AFTER_MESSAGES, False), (REJECT_AFTER_MESSAGES - 1, True), (REJECT_AFTER_MESSAGES, False),
    (REJECT_AFTER_MESSAGES - 1, False), (REJECT_AFTER_MESSAGES - 2, True), (REJECT_AFTER_MESSAGES + 1, False),
    (REJECT_AFTER_MESSAGES + 2, False), (REJECT_AFTER_MESSAGES - 2, False), (REJECT_AFTER_MESSAGES - 3, True),
    (0, False),
]


def test_window_size_matches_wireguard():
    assert WINDOW_SIZE == 8128


def test_table():
    window = ReplayWindow(limit=REJECT_AFTER_MESSAGES)
    for number, (counter, expected) in enumerate(TABLE, 1):
        assert window.accept(counter) is expected, "T%d: accept(%d) should be %s" % (number, counter, expected)


def _sweep_1():
    return [(i, True) for i in range(1, WINDOW_SIZE + 1)] + [(0, True), (0, False)]


def _sweep_2():
    return [(i, True) for i in range(2, WINDOW_SIZE + 2)] + [(1, True), (0, False)]


def _sweep_3():
    return [(i, True) for i in range(WINDOW_SIZE + 1, 0, -1)]


def _sweep_4():
    return [(i, True) for i in range(WINDOW_SIZE + 2, 1, -1)] + [(0, False)]


def _sweep_5():
    return [(i, True) for i in range(WINDOW_SIZE, 0, -1)] + [(WINDOW_SIZE + 1, True), (0, False)]


def _sweep_6():
    return [(i, True) for i in range(WINDOW_SIZE, 0, -1)] + [(0, True), (WINDOW_SIZE + 1, True)]


@pytest.mark.parametrize("sweep", [_sweep_1, _sweep_2, _sweep_3, _sweep_4, _sweep_5, _sweep_6],
                         ids=["bulk1", "bulk2", "bulk3", "bulk4", "bulk5", "bulk6"])
def test_bulk(sweep):
    window = ReplayWindow(limit=REJECT_AFTER_MESSAGES)
    for counter, expected in sweep():
        assert window.accept(counter) is expected, (counter, expected)


def test_reordered_within_window_accepted_once():
    window = ReplayWindow(limit=REJECT_AFTER_MESSAGES)
    order = [5, 3, 4, 1, 2, 0, 100, 50, 99]
    assert all(window.accept(c) for c in order)
    assert not any(window.accept(c) for c in order)


def test_too_old_rejected():
    window = ReplayWindow(limit=REJECT_AFTER_MESSAGES)
    assert window.accept(WINDOW_SIZE + 10)
    assert not window.accept(9)            # 8129 behind: outside the window
    assert window.accept(10)               # exactly WINDOW_SIZE behind: still inside


def test_reset_forgets():
    window = ReplayWindow(limit=REJECT_AFTER_MESSAGES)
    assert window.accept(3)
    window.reset()
    assert window.accept(3)

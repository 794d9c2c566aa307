"""vpn status: the JSON contract, its human views, the log throttle and the peer watch (pure)."""
import json

import pytest

from tomato_gevent.vpn.status import (LogThrottle, PeerWatch, clock_skew_message, format_bytes, format_duration,
                                      format_status, format_status_line, silence_threshold)
from tests.unit.vpn_doubles import SESSION, status

CONTRACT_KEYS = {"interface", "peer_address", "last_received_seconds_ago", "rx_packets", "rx_bytes",
                 "tx_packets", "tx_bytes", "drops", "uptime_seconds"}


def test_json_contract_keys_and_values():
    s = status()
    assert CONTRACT_KEYS <= set(s)
    assert json.loads(json.dumps(s)) == s                   # plain JSON types only
    assert s["last_received_seconds_ago"] == 5.0 and s["uptime_seconds"] == 100.0
    assert s["peer_session"] == "%016x" % SESSION and s["peer_session_age_seconds"] == 42.0
    assert s["drops"] == {"authentication failed": 3, "short datagram": 1}
    assert list(s["drops"]) == sorted(s["drops"])
    assert (s["dynamic"], s["peer_learned"]) == (False, False)


def test_unknown_values_are_null():
    s = status(peer_address=None, dynamic=True, session_id=None, last_received=None, drops={})
    assert s["peer_address"] is None and s["last_received_seconds_ago"] is None
    assert s["peer_session"] is None and s["peer_session_age_seconds"] is None
    assert s["peer_learned"] is False and s["drops"] == {}
    assert status(dynamic=True)["peer_learned"] is True


def test_human_view_is_formatted_from_the_json():
    text = format_status(json.loads(json.dumps(status())))
    assert text.splitlines()[0] == "interface: tun0"
    assert "  peer: 10.9.0.2:5000" in text and "listening on: 0.0.0.0:5000" in text
    assert "peer session: %016x, started 42 s ago" % SESSION in text
    assert "latest authenticated datagram: 5 s ago" in text
    assert "3.38 KiB received (12 packets), 1.91 MiB sent (15 packets)" in text
    assert "drops: authentication failed: 3, short datagram: 1" in text
    assert "uptime: 1 min 40 s" in text
    fresh = format_status(status(peer_address=None, dynamic=True, session_id=None, last_received=None, drops={}))
    assert "peer: none known (dynamic mode" in fresh and "peer session: none yet" in fresh
    assert "latest authenticated datagram: never" in fresh and "drops: none" in fresh
    unresolved = format_status(status(peer_address=None, peer_host="vpn.example.org"))
    assert "peer: vpn.example.org (not resolved yet)" in unresolved
    named = format_status(status(peer_host="vpn.example.org"))
    assert "peer: 10.9.0.2:5000 (vpn.example.org)" in named


def test_one_line_has_exact_counters():
    line = format_status_line(status())
    assert "\n" not in line
    assert line.startswith("tun0: peer 10.9.0.2:5000, last datagram 5 s ago")
    assert "received 12 packets (3456 bytes), sent 15 packets (2000000 bytes)" in line
    assert "dropped authentication failed: 3, short datagram: 1, up 1 min 40 s" in line


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (61, "1 min 1 s"),
                                           (3600 + 61, "1 h 1 min"), (86400 * 3 + 7200 + 5, "3 d 2 h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("count, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"),
                                         (5 * 1024 ** 3, "5.00 GiB"), (3 * 1024 ** 5, "3072.00 TiB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_throttle_one_line_per_cause_per_interval_and_counts_the_rest():
    throttle = LogThrottle(60.0)
    assert throttle.admit("auth", 0.0) == 0
    assert throttle.admit("auth", 1.0) is None
    assert throttle.admit("auth", 59.9) is None
    assert throttle.admit("skew", 2.0) == 0                 # causes are independent
    assert throttle.admit("auth", 60.0) == 2                # two held back since the last line
    assert throttle.admit("auth", 119.0) is None
    assert throttle.admit("auth", 200.0) == 1


def test_throttle_burst_admits_that_many_lines_within_any_interval():
    throttle = LogThrottle(10.0, burst=2)
    assert throttle.admit("link", 0.0) == 0                 # lost
    assert throttle.admit("link", 0.5) == 0                 # connected again: told in full
    assert throttle.admit("link", 1.0) is None              # a third within 10 s is held
    assert throttle.admit("link", 10.0) == 1                # 10 s after the first: one more
    assert throttle.admit("link", 10.4) is None             # 0.5 s still inside the window
    assert throttle.admit("link", 10.5) == 1


def test_silence_threshold():
    assert silence_threshold(25) == 75 and silence_threshold(5) == 60 and silence_threshold(0) == 60


def test_peer_watch_up_silent_back():
    watch = PeerWatch(silent_after=60.0, now=0.0)
    assert watch.check(59.0) is None
    assert watch.check(60.0) == PeerWatch.SILENT            # never heard since the start
    assert watch.check(61.0) is None                        # said once
    assert watch.received(70.0) == PeerWatch.UP             # the first datagram is "up", not "back"
    assert watch.received(80.0) is None
    assert watch.check(139.0) is None
    assert watch.check(140.0) == PeerWatch.SILENT and watch.silent_since == 80.0
    assert watch.check(500.0) is None
    assert watch.received(501.0) == PeerWatch.BACK and not watch.silent
    assert watch.received(502.0) is None


def test_clock_skew_message():
    assert clock_skew_message(30_400, 10).startswith("peer clock differs by +30 s; -pvt is 10 s")
    assert clock_skew_message(-45_000, 2.5).startswith("peer clock differs by -45 s; -pvt is 2.5 s")

"""vpn peer watch: up, silent, back, and the silence threshold (pure)."""
from tomato_gevent.vpn.peerwatch import PeerWatch, silence_threshold


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

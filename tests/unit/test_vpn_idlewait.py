"""idlewait.py: the data path's wait in the hub, and its rhythm-window timer."""
import os
import socket
import time

import gevent
import pytest

from tomato_gevent.vpn.idlewait import NET_READY, TUN_READY, IdleWait


@pytest.fixture
def idle_fds():
    """(IdleWait on a datagram socket and a pipe's read end, the socket's peer, the pipe's
    write end); all closed afterwards."""
    net, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tun_r, tun_w = os.pipe()
    idle = IdleWait(net.fileno(), tun_r)
    try:
        yield idle, net, peer, tun_w
    finally:
        idle.close()
        for f in (net, peer):
            f.close()
        os.close(tun_r)
        os.close(tun_w)


def test_wait_returns_the_side_that_became_readable(idle_fds):
    idle, net, peer, tun_w = idle_fds
    gevent.spawn_later(0, peer.send, b"x")
    assert idle.wait() == NET_READY
    net.recv(1)
    gevent.spawn_later(0, os.write, tun_w, b"x")
    assert idle.wait(5.0) == TUN_READY


def test_window_timer_counts_from_now_not_from_the_hubs_last_poll(idle_fds):
    # The scheduler spends milliseconds in its own epoll between hub turns, and libev's clock
    # is then that old: a timer started from it would open a rhythm window that much early.
    # Blocking outside the hub stands in for that.
    idle = idle_fds[0]
    gevent.sleep(0)                     # a hub iteration: libev's clock is now
    time.sleep(0.1)                     # (not monkey-patched) the process runs outside the hub
    start = time.monotonic()
    assert idle.wait(0.05) is None
    assert time.monotonic() - start >= 0.05     # with the stale clock: returned at once

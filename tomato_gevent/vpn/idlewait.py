"""The data path's wait in the gevent hub while the link is idle (scheduler.py's run loop).

Idle, the scheduler's greenlet gives the process to the hub: two libev io watchers (the
transport's socket, the tun) and, for a rhythm window (warmth.py), a timer switch back to it.
libev's clock is the time of the hub's last poll, which may be several milliseconds old when
the loop has been waiting in its own epoll: the timer is started with update=True (one clock
read; gevent's libev loop does so by default, which is not promised), else a window would open
that much early.
"""
from gevent import get_hub
from gevent.core import READ
from gevent.hub import Waiter

NET_READY, TUN_READY = 1, 2


class IdleWait:
    """wait(timeout=None): NET_READY or TUN_READY, whichever fd became readable first, or
    None when timeout seconds passed first."""

    def __init__(self, net_fd, tun_fd):
        self._loop = loop = get_hub().loop
        self._net_read = loop.io(net_fd, READ)
        self._tun_read = loop.io(tun_fd, READ)

    def wait(self, timeout=None):
        waiter = Waiter()
        switch = waiter.switch
        self._net_read.start(switch, NET_READY)
        self._tun_read.start(switch, TUN_READY)
        timer = None
        if timeout is not None:
            timer = self._loop.timer(max(timeout, 0.0))
            timer.start(switch, None, update=True)
        try:
            return waiter.get()
        finally:
            self._net_read.stop()
            self._tun_read.stop()
            if timer is not None:
                timer.close()

    def close(self):
        for watcher in (self._net_read, self._tun_read):
            watcher.close()

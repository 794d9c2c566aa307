"""SIGINT while gevent's hub runs, after launch.quiet_hub_interrupts() (test_launchers.py):
prints 'main greenlet interrupted' when the KeyboardInterrupt reaches the main greenlet."""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402

from tomato_gevent.launch import quiet_hub_interrupts  # noqa: E402

quiet_hub_interrupts()
gevent.spawn(os.kill, os.getpid(), signal.SIGINT)
try:
    gevent.sleep(30)
except KeyboardInterrupt:
    print('main greenlet interrupted')

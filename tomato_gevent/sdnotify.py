"""sd_notify(3) by hand: tell systemd that a Type=notify service is ready, or stopping.

The protocol is one datagram of newline-separated KEY=VALUE assignments sent to the unix
socket named in $NOTIFY_SOCKET: a path, or an abstract socket written with a leading '@'.
Outside systemd the variable is unset and notify() does nothing.
"""
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*assignments, environ=None):
    """Send e.g. notify("READY=1", "STATUS=listening on :5000"); True if the datagram went out.

    Never raises: a service keeps running when the manager cannot be told (systemd then
    reports the start as timed out, which names the problem better than a crash would).
    """
    environ = os.environ if environ is None else environ
    name = environ.get("NOTIFY_SOCKET")
    if not name:
        return False
    if name.startswith("@"):
        address = "\0" + name[1:]
    elif name.startswith("/"):
        address = name
    else:
        log.warning("cannot notify systemd: unsupported NOTIFY_SOCKET %r", name)
        return False
    message = "\n".join(assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as e:
        log.warning("cannot notify systemd at %s: %s", name, e.strerror or e)
        return False
    return True

"""tomato_gevent: encrypted point-to-point VPN, ping, rule-based HTTP proxy, domain-list converter.

Nothing is imported here on purpose: the launchers must monkey-patch with
gevent before any module that touches sockets is loaded.
"""

__version__ = "0.1.0"  # the one place: setup.cfg reads it (version = attr:), --version prints it

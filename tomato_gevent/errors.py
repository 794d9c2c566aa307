"""Error types. Everything tomato raises on purpose derives from TomatoError;
the CLIs catch it once at the top and turn it into one log line and an exit code."""


class TomatoError(Exception):
    """Base of every error tomato raises on purpose."""

    exit_status = 1


class ConfigError(TomatoError):
    """Bad user input: a command-line value, a rule file, a domain-list file."""

    exit_status = 2


class ProtocolError(TomatoError):
    """Something on the wire broke the protocol (abstract)."""


class RemoteProtocolError(ProtocolError):
    """The peer or client sent something invalid.

    status_hint is the HTTP status to answer with, as h11's error_status_hint.
    """

    def __init__(self, msg, status_hint=400):
        super().__init__(msg)
        self.status_hint = status_hint


class BadPacket(RemoteProtocolError):
    """A datagram failed framing or authentication: drop it and count it."""

    def __init__(self, reason):
        super().__init__(reason, status_hint=400)
        self.reason = reason


class Refused(TomatoError):
    """The proxy will not carry this request: a block rule (403), a forbidden
    destination (403), no room for another client (503). status_hint as above."""

    def __init__(self, msg, status_hint=403):
        super().__init__(msg)
        self.status_hint = status_hint


class NextHopError(TomatoError):
    """The origin or the upstream proxy could not be reached or failed mid-way:
    502 (refused, reset, unknown name), 504 (timed out)."""

    def __init__(self, msg, status_hint=502):
        super().__init__(msg)
        self.status_hint = status_hint

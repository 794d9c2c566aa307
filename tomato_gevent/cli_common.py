"""Shared CLI pieces: logging setup, HOST:PORT parsing, the error-to-exit-status edge."""
import argparse
import ipaddress
import logging
import os
import sys

from .errors import ConfigError, TomatoError

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def setup_logging(verbosity=0):
    """-v (verbosity >= 1) is DEBUG, default INFO, -q (negative) WARNING; stderr."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


class OneLineParser(argparse.ArgumentParser):
    """The argument parser of every tool. Bad arguments: one line on stderr and exit
    status 2, no usage dump, no traceback."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see --help)\n" % (self.prog, message))


def parse_hostport(text, default_host=""):
    """'HOST:PORT', ':PORT', '[v6]:PORT' -> (host, port). host '' means "any"/default_host.

    Raises ConfigError with a one-line message on anything else.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise ConfigError("bad address %r: expected [IPv6]:PORT" % text)
        host, port_text = text[1:end], text[end + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError("bad address %r: %r is not an IPv6 address" % (text, host)) from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError("bad address %r: expected HOST:PORT" % text)
        if ":" in host:
            raise ConfigError("bad address %r: write IPv6 addresses as [ADDR]:PORT" % text)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError("bad address %r: port %r is not a number" % (text, port_text)) from None
    if not 0 < port < 65536:
        raise ConfigError("bad address %r: port must be 1-65535" % text)
    return (host or default_host), port


def hostport_arg(text):
    """argparse type= for HOST:PORT: bad values become argparse's one-line usage error."""
    try:
        return parse_hostport(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def number_arg(convert, accept, requirement):
    """An argparse type= for a number: convert (int or float), then accept(value) or refuse.

    requirement is the one-line refusal, formatted with {text} (as typed) and {value}.
    """
    kind = "whole number" if convert is int else "number"

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a %s" % (text, kind)) from None
        if not accept(value):
            raise argparse.ArgumentTypeError(requirement.format(text=repr(text), value=value))
        return value
    return parse


positive_float = number_arg(float, lambda value: value > 0, "{text} must be greater than 0")
positive_int = number_arg(int, lambda value: value > 0, "{text} must be greater than 0")


def read_secret(value, path, env_name, what):
    """A password from the command line, a file (first line) or the environment, in that order."""
    if value is not None:
        return value
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                secret = f.readline().rstrip("\r\n")
        except OSError as e:
            raise ConfigError("cannot read %s file %s: %s" % (what, path, e.strerror)) from None
        if not secret:
            raise ConfigError("%s file %s is empty" % (what, path))
        return secret
    secret = os.environ.get(env_name)
    if secret:
        return secret
    raise ConfigError("no %s given (use the flag, its -file variant or $%s)" % (what, env_name))


def run_cli(body, prog):
    """Call body() and map every expected failure to one log line and an exit status.

    body returns the exit status. TomatoError -> its exit_status; KeyboardInterrupt -> 130.
    """
    try:
        return body()
    except TomatoError as e:
        logging.getLogger(prog).error("%s", e)
        return e.exit_status
    except KeyboardInterrupt:
        return 130

"""Shared CLI pieces: logging setup, HOST:PORT parsing, the error-to-exit-status edge."""
import argparse
import ipaddress
import logging
import os
import stat
import sys

from . import __version__
from .environment import forget_environment
from .errors import ConfigError, TomatoError

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
# The journal stamps every line itself; a second time stamp only makes lines longer.
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
# sd-daemon(3) priority prefixes: journald files each line under its level (SyslogLevelPrefix=).
_JOURNAL_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class JournalFormatter(logging.Formatter):
    """One journal line per record: '<priority>LEVEL name: message', no time stamp."""

    def __init__(self):
        super().__init__(JOURNAL_FORMAT)

    def format(self, record):
        priority = next((prio for level, prio in _JOURNAL_PRIORITIES if record.levelno >= level), 7)
        return "<%d>%s" % (priority, super().format(record))


def stream_is_journal(stream, environ=os.environ):
    """True when stream is the journal connection systemd named in $JOURNAL_STREAM ("DEV:INODE").

    Comparing device and inode (as sd_journal_stream_fd(3) advises) keeps the plain format
    when stderr was redirected elsewhere, e.g. a command started from a unit's shell.
    """
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def setup_logging(verbosity=0, stream=None):
    """-v (verbosity >= 1) is DEBUG, default INFO, -q (negative) WARNING; stderr.

    Under systemd (stderr is the journal) lines carry a priority prefix instead of a time stamp.
    """
    stream = sys.stderr if stream is None else stream
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if stream_is_journal(stream) else logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def program_name(tool):
    """The name for usage and error lines: the command as started (tomato-vpn, vpn), or the
    tool's own name when main() is called from elsewhere (a test runner)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.endswith(tool) else tool


class OneLineParser(argparse.ArgumentParser):
    """The argument parser of every tool. Bad arguments: one line on stderr and exit
    status 2, no usage dump, no traceback. Every tool gets --version."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version="%(prog)s " + __version__)

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
            hint = " (for port %s on every address write :%s)" % (text, text) if text.isdigit() else ""
            raise ConfigError("bad address %r: expected HOST:PORT%s" % (text, hint))
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


MAX_PASSWORD_FILE_BYTES = 4096         # a password file holds one line
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"),
               (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def read_private_file(path, what, max_bytes):
    """The UTF-8 text of a small regular file holding secrets (a password file, the proxy's
    --auth-file). Refused with one ConfigError line: anything but a regular file (a named
    pipe would block the start, /dev/zero never ends), a file over max_bytes, text that is
    not UTF-8. A file that other users may read still works, with a warning: readable by
    every user, or by the members of its group.
    """
    try:
        # O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError("cannot read %s file %s: %s" % (what, path, e.strerror)) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "a special file")
            raise ConfigError("%s file %s is %s, not a regular file" % (what, path, kind))
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ConfigError("cannot read %s file %s: %s" % (what, path, e.strerror)) from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise ConfigError("%s file %s is larger than %d bytes: is it the right file?" % (what, path, max_bytes))
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("%s file %s is not UTF-8 text (byte %d)" % (what, path, e.start)) from None
    if status.st_mode & stat.S_IROTH:
        log.warning("%s file %s is readable by every user: chmod 600 %s", what, path, path)
    elif status.st_mode & stat.S_IRGRP:
        log.warning("%s file %s is readable by the members of group %s: chmod 600 %s unless they should know it",
                    what, path, _group_name(status.st_gid), path)
    return text


def _group_name(gid):
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def _utf8(secret, where):
    """secret (str from argv or the environment, undecodable bytes as surrogates) if it is
    UTF-8 text; else one ConfigError line naming where it came from, never the value."""
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("%s is not UTF-8 text" % where) from None
    return secret


def read_secret(value, path, env_name, what):
    """A password from the command line, a file (first line) or the environment, in that order.

    A file: read_private_file's rules (a regular file of at most MAX_PASSWORD_FILE_BYTES,
    UTF-8, a warning when others may read it). $env_name is removed from the environment
    in every case (environment.py), so that no child (--up/--down hooks) inherits it.
    """
    from_environment = os.environ.get(env_name)
    if from_environment is not None and not forget_environment([env_name]):
        log.warning("$%s could not be erased from /proc/%d/environ (readable by root and this user)",
                    env_name, os.getpid())
    if value is not None:
        return _utf8(value, "the %s on the command line" % what)
    if path is not None:
        secret = read_private_file(path, what, MAX_PASSWORD_FILE_BYTES).split("\n", 1)[0].rstrip("\r")
        if not secret:
            raise ConfigError("%s file %s is empty" % (what, path))
        return secret
    if from_environment:
        return _utf8(from_environment, "$%s" % env_name)
    raise ConfigError("no %s given (use the flag, its -file variant or $%s)" % (what, env_name))


BROKEN_PIPE_STATUS = 141       # 128 + SIGPIPE: what a shell reports for `cat | head`'s cat


def print_output(text):
    """Print text and a newline on stdout; 0, or BROKEN_PIPE_STATUS when the reader left
    (`vpn show | head -1`): quietly, where print() ends in a BrokenPipeError traceback
    and Python's last flush at exit in a second one."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())       # what is still buffered goes nowhere at exit
        os.close(devnull)
        return BROKEN_PIPE_STATUS
    return 0


def run_cli(body, prog):
    """Call body() and map every expected failure to one log line and an exit status.

    body returns the exit status. TomatoError -> its exit_status; KeyboardInterrupt -> 130.
    """
    try:
        return body()
    except TomatoError as e:
        logging.getLogger(prog).error("%s", e)
        return e.exit_status
    except KeyboardInterrupt:  # Ctrl-C before the tool's own SIGINT handling took over
        logging.getLogger(prog).warning("interrupted")
        return 130

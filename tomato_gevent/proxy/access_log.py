"""The proxy's access log: one line per request, per tunnel opened and per tunnel closed.

    CLIENT USER METHOD TARGET DECISION STATUS up=N down=N MSms rule=ORIGIN upstream=HOP [EVENT] [(REASON)]

    CLIENT    the client's address:port
    USER      the authenticated user (--auth-file), "-" if none; a refused login names the
              user tried in REASON
    METHOD    GET, CONNECT, ... ; "SOCKS5 CONNECT", "SOCKS5 UDP-ASSOCIATE"
    TARGET    host:port; for plain HTTP followed by the path without its query string
    DECISION  direct | forward | block | - (refused before a rule was asked)
    ORIGIN    the rule that decided ("rules.txt:12"), "default" (no rule: -d), "-"
    HOP       the -f proxy for forward, "-" otherwise
    STATUS    the HTTP status (SOCKS5 outcomes as the same status: 200, 403, 502, 504)
    up/down   bytes client -> next hop / -> client; MS the duration in milliseconds
    EVENT     "open" / "closed" for a tunnel (CONNECT, SOCKS5), nothing for a request

access_line(...) makes the text (pure); AccessLog writes it, time-stamped as the log's other
lines (stderr, or the journal's format under systemd), or to its own file (--access-log
PATH: reopen() on SIGHUP, for logrotate). It is written with one write() per line and no
logging machinery: it runs on every request, and a LogRecord costs dozens of calls.
Nothing here logs a password: the caller passes user names only.
"""
import logging
import os
import sys
import time

from ..cli_common import LOG_FORMAT, stream_is_journal
from ..errors import ConfigError

log = logging.getLogger(__name__)

LOGGER_NAME = __name__          # the name the lines carry on stderr, as logging's would
FLUSH_SECONDS = 1.0             # --access-log PATH: lines reach the file at most this late


def access_line(client, user, method, host, port, path, decision, rule, upstream, status, up, down,
                seconds, event=None, reason=None):
    """One access line (no time stamp, no newline); see the module docstring."""
    target = "-" if port == "-" else ("[%s]:%s" if ":" in host else "%s:%s") % (host, port)
    if path:
        if b"?" in path:
            path = path.partition(b"?")[0]
        target += path.decode("latin-1")
    line = "%s %s %s %s %s %d up=%d down=%d %.1fms rule=%s upstream=%s" % (
        client, user or "-", method, target, decision, status, up, down, seconds * 1000.0, rule, upstream)
    if event:
        line += " " + event
    if reason:
        line += " (%s)" % reason
    return line


class AccessLog:
    """Writes access lines. path None: to `stream` (default stderr) at once, in the format of
    the other log lines. Else to the file `path` (appended, created 0640), buffered: the lines
    of up to FLUSH_SECONDS go out in one write() of whole lines (start() runs that timer; so
    workers appending to one file never split a line), and reopen() starts a new file. The
    file is checked here but opened at the first write out, in the process that writes: a
    --workers parent, which never writes, holds no descriptor of a file logrotate moved."""

    def __init__(self, path=None, stream=None, clock=time.time):
        self.path = path
        self.clock = clock
        self._second = None
        self._stamp = ""
        self._flusher = None
        if path is None:
            self._file = stream if stream is not None else sys.stderr
            if stream_is_journal(self._file):
                self._tag = "<6>INFO %s: " % LOGGER_NAME
                self._stamped = False
            else:
                self._tag = LOG_FORMAT.split("%(asctime)s", 1)[1] % {"levelname": "INFO", "name": LOGGER_NAME,
                                                                      "message": ""}
                self._stamped = True
            self._emit = self._file.write
        else:
            os.close(_open(path))           # a path that cannot be opened: one line at start
            self._fd = None
            self._tag = " "
            self._stamped = True
            self._lines = []
            self._emit = self._lines.append

    def write(self, line):
        if self._stamped:
            now = self.clock()
            second = int(now)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            line = "%s,%03d%s%s\n" % (self._stamp, (now - second) * 1000, self._tag, line)
        else:
            line = self._tag + line + "\n"
        try:
            self._emit(line)
        except (OSError, ValueError):      # a full disk, a closed stream: never the request's problem
            pass

    def flush(self):
        """The file's buffered lines out, in one write() (a short write: the rest after it)."""
        if self.path is None or not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "backslashreplace")
        self._lines.clear()
        try:
            if self._fd is None:
                self._fd = _open(self.path)
            while data:
                data = data[os.write(self._fd, data):]
        except ConfigError as e:
            log.warning("%s; lines lost", e)
        except OSError as e:
            log.warning("access log %s: %s; lines lost", self.path, e.strerror or e)

    def start(self):
        """Flush the file every FLUSH_SECONDS (a greenlet; stop() ends it)."""
        if self.path is not None and self._flusher is None:
            import gevent

            def flush_forever():
                while True:
                    gevent.sleep(FLUSH_SECONDS)
                    self.flush()
            self._flusher = gevent.spawn(flush_forever)

    def reopen(self):
        """Open the file again (logrotate moved it away); keeps the old one if that fails."""
        if self.path is None:
            return
        self.flush()
        try:
            new = _open(self.path)
        except ConfigError as e:
            log.error("%s; access lines still go to the old file", e)
            return
        old, self._fd = self._fd, new
        if old is not None:
            os.close(old)
        log.info("access log %s reopened", self.path)

    def stop(self):
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        if self.path is not None:
            self.flush()
            if self._fd is not None:
                os.close(self._fd)
            self.path = None
            self._emit = _drop


def _drop(text):
    """Where lines go once the log is stopped."""


def _open(path):
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as e:
        raise ConfigError("cannot open access log %s: %s" % (path, e.strerror or e)) from None

"""bin/proxy as a child process for the operations tests (SIGHUP, --access-log, start-time
refusals): its stderr lines collected by a thread, waited for with a deadline."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import free_port  # noqa: F401 (the operations tests take it from here)

REPO = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 15.0


def wait_until(predicate, what):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class ProxyProcess:
    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bin" / "proxy"), *args],
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, predicate, what, start=0):
        """The first stderr line from index `start` on for which predicate holds."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            for line in list(self.lines)[start:]:
                if predicate(line):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("no %s in: %s" % (what, "\n".join(self.lines)))

    def signal(self, signum):
        os.kill(self.proc.pid, signum)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=DEADLINE_SECONDS)

"""bin/* launchers: any python3, any working directory, one line for Ctrl-C at any moment,
the command's own name in usage lines, --version, and the small argument checks."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import wait_for
from tomato_gevent import __version__

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
TOOLS = ("vpn", "ping", "proxy", "dlmerge")
SYSTEM_PYTHON = "/usr/bin/python3"
BARE_ENV = {"PATH": "/usr/bin:/bin"}

needs_system_python = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3")
# (`make coverage` runs these as nobody, who cannot run a .venv built from a Python under /root)
needs_runnable_venv = pytest.mark.skipif(not os.access(REPO / ".venv" / "bin" / "python", os.X_OK),
                                         reason="the checkout's .venv python is not runnable by this user")


def run(argv, env=None, cwd="/", **kw):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=BARE_ENV if env is None else env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, **kw)


def open_fifo_writer(path):
    """A write end of the FIFO once a reader has it open, else None (ENXIO: no reader yet)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def blocked_in_pipe_read(pid):
    """True when the process sleeps in a pipe's or FIFO's read (its wait channel says so)."""
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return "pipe_read" in f.read()
    except OSError:
        return False


def system_python_lacks_gevent():
    return run([SYSTEM_PYTHON, "-c", "import gevent"]).returncode != 0


@needs_system_python
@needs_runnable_venv
@pytest.mark.parametrize("tool", TOOLS)
def test_system_python_from_root_dir(tool):
    """No venv activated, cwd /, the system python3 (which lacks gevent): re-exec into .venv."""
    result = run([SYSTEM_PYTHON, BIN / tool, "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: %s " % tool)


@needs_runnable_venv
def test_shebang_in_a_bare_environment():
    result = run([BIN / "dlmerge", "--version"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "dlmerge %s\n" % __version__, "")


@needs_runnable_venv
@pytest.mark.skipif(os.geteuid() != 0, reason="ICMP from the root namespace needs root here")
def test_ping_in_a_bare_environment():
    result = run([BIN / "ping", "-c", "1", "-a", "127.0.0.1"])
    assert result.returncode == 0, result.stderr
    assert "1 packets transmitted, 1 received" in result.stderr


@needs_system_python
def test_without_a_venv_one_line_hint(tmp_path):
    """A checkout where `make` never ran: one line naming the fix, exit 1, no traceback."""
    if not system_python_lacks_gevent():
        pytest.skip("the system python3 has gevent: nothing is missing")
    (tmp_path / "bin").mkdir()
    shutil.copy(BIN / "vpn", tmp_path / "bin" / "vpn")
    (tmp_path / "tomato_gevent").symlink_to(REPO / "tomato_gevent")
    result = run([SYSTEM_PYTHON, tmp_path / "bin" / "vpn", "--help"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "vpn: tomato_gevent is not installed for %s: run `make` in %s first" % (SYSTEM_PYTHON, tmp_path)]


@needs_system_python
def test_unrunnable_venv_one_line(tmp_path):
    """A .venv whose python cannot be executed (here: not executable at all): one line, exit 1."""
    if not system_python_lacks_gevent():
        pytest.skip("the system python3 has gevent: nothing is missing")
    (tmp_path / "bin").mkdir()
    shutil.copy(BIN / "ping", tmp_path / "bin" / "ping")
    (tmp_path / "tomato_gevent").symlink_to(REPO / "tomato_gevent")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("not a program\n")
    result = run([SYSTEM_PYTHON, tmp_path / "bin" / "ping", "--help"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["ping: cannot run %s/.venv/bin/python: Permission denied" % tmp_path]


# -- a user who may not read the checkout, or its venv (issue 24 item 10) ------------------
needs_root_for_nobody = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                           reason="runs a launcher as nobody: needs root and setpriv")
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def open_dir():
    """A folder every user may enter (pytest's tmp_path lies under a 0700 folder of root's)."""
    path = Path(tempfile.mkdtemp(prefix="tomato-launch-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def checkout_copy(root, tool):
    """A checkout in root: bin/<tool> and the package (a link to this one's)."""
    (root / "bin").mkdir()
    (root / "bin").chmod(0o755)
    shutil.copy(BIN / tool, root / "bin" / tool)
    (root / "tomato_gevent").symlink_to(REPO / "tomato_gevent")
    return root / "bin" / tool


@needs_root_for_nobody
@needs_system_python
@pytest.mark.parametrize("closed", ["python's folder", "venv folder"])
def test_venv_closed_to_this_user_says_so(open_dir, closed):
    """A venv built from a Python under /root (or a .venv made 0700), started by another user:
    the venv is there, so "run `make` first" would send the user the wrong way."""
    if not system_python_lacks_gevent():
        pytest.skip("the system python3 has gevent: nothing is missing")
    script = checkout_copy(open_dir, "ping")
    venv, venv_bin = open_dir / ".venv", open_dir / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    venv.chmod(0o755)
    venv_bin.chmod(0o755)
    if closed == "python's folder":
        blocked = open_dir / "root-home"
        blocked.mkdir(mode=0o700)
        (blocked / "python3").symlink_to(sys.executable)
        (venv_bin / "python").symlink_to(blocked / "python3")
    else:
        blocked = venv
        (venv_bin / "python").symlink_to(sys.executable)
        venv.chmod(0o700)
    result = run(AS_NOBODY + [SYSTEM_PYTHON, script, "--help"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "ping: cannot run %s/.venv/bin/python as nobody: %s is closed to this user "
        "(`make install` installs the tools for every user)" % (open_dir, blocked)]


@needs_root_for_nobody
@needs_system_python
def test_checkout_closed_to_this_user_says_so(open_dir):
    """The launcher is readable but the package is not: one line, not an ImportError traceback."""
    script = checkout_copy(open_dir, "vpn")
    (open_dir / "tomato_gevent").unlink()
    (open_dir / "tomato_gevent").mkdir(mode=0o700)
    result = run(AS_NOBODY + [SYSTEM_PYTHON, script, "--help"])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "vpn: cannot read %s/tomato_gevent as nobody: the checkout is closed to this user "
        "(`make install` installs the tools for every user)" % open_dir]


@pytest.mark.parametrize("tool", TOOLS)
def test_ctrl_c_during_imports(tool, tmp_path):
    """SIGINT while `import gevent` runs (a stand-in gevent sends it to its own process): one
    line, 130, no traceback. Without the launcher's handler this is a KeyboardInterrupt traceback."""
    fake = tmp_path / "gevent"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
                                      "raise SystemExit('the interrupt was ignored')\n")
    env = dict(BARE_ENV, PYTHONPATH=str(tmp_path))
    result = run([sys.executable, BIN / tool, "--help"], env=env)
    assert (result.returncode, result.stderr, result.stdout) == (130, "%s: interrupted\n" % tool, "")


def test_ctrl_c_in_the_event_loop_prints_no_hub_traceback():
    """A KeyboardInterrupt raised while gevent's hub runs reaches the main greenlet, and the
    hub prints nothing on the way."""
    program = Path(__file__).with_name("programs") / "hub_interrupt.py"
    result = run([sys.executable, program], env=dict(BARE_ENV, PYTHONPATH=str(REPO)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "main greenlet interrupted\n", "")


def test_ctrl_c_while_loading_rules(tmp_path):
    """Interrupted while reading a rule file (a FIFO nobody writes): one log line, 130."""
    fifo = tmp_path / "rules.fifo"
    os.mkfifo(fifo)
    proxy = subprocess.Popen([sys.executable, str(BIN / "proxy"), "-a", "127.0.0.1:1", "-r", str(fifo)],
                             env=BARE_ENV, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = []

    def reading_or_gone():
        # A signal that lands between the eval loop's last check and the read() syscall is
        # only seen once read returns (CPython checks signals on EINTR), so wait until the
        # kernel shows the proxy asleep in the FIFO's read, where SIGINT interrupts it.
        if not writers or writers[-1] is None:
            writers.append(open_fifo_writer(fifo))
        return (writers[-1] is not None and blocked_in_pipe_read(proxy.pid)) or proxy.poll() is not None

    try:
        wait_for(reading_or_gone, timeout=30, what="the proxy reading its rule file")
        assert proxy.poll() is None, proxy.communicate()
        proxy.send_signal(signal.SIGINT)
        out, err = proxy.communicate(timeout=30)
    finally:
        for fd in filter(None, writers):
            os.close(fd)
        proxy.kill()
        proxy.wait()
    assert proxy.returncode == 130
    assert len(err.splitlines()) == 1 and err.rstrip().endswith("tomato_gevent.proxy.cli: interrupted"), err


@pytest.mark.parametrize("tool", TOOLS)
def test_usage_names_the_installed_command(tool, tmp_path):
    installed = tmp_path / ("tomato-" + tool)
    installed.symlink_to(BIN / tool)
    result = run([sys.executable, installed, "--bogus"])
    assert result.returncode == 2
    assert result.stderr.startswith("tomato-%s: error:" % tool), result.stderr
    version = run([sys.executable, installed, "--version"])
    assert version.stdout == "tomato-%s %s\n" % (tool, __version__)


@pytest.mark.parametrize("flags", [["-lp", "a", "--local-password-file", "/dev/null", "-pp", "b"],
                                   ["-lp", "a", "-pp", "b", "--peer-password-file", "/dev/null"]])
def test_vpn_password_twice_is_an_error(flags):
    result = run([sys.executable, BIN / "vpn", "-la", ":5000", "-d", *flags])
    assert result.returncode == 2
    assert result.stderr.startswith("vpn: error: argument ") and "not allowed with argument" in result.stderr


def test_vpn_bare_port_hint():
    result = run([sys.executable, BIN / "vpn", "-la", "5000", "-lp", "a", "-d", "-pp", "b"])
    assert result.returncode == 2 and "write :5000" in result.stderr, result.stderr


def test_proxy_prints_ipv6_in_brackets():
    try:
        taken = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        taken.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with taken:
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run([sys.executable, BIN / "proxy", "-a", "[::1]:%d" % port])
    assert result.returncode == 2
    assert "cannot listen on [::1]:%d: " % port in result.stderr, result.stderr


@pytest.mark.parametrize("where", ["checkout", "dlc root"])
def test_dlmerge_wants_the_data_folder(where, tmp_path):
    if where == "checkout":
        folder = REPO  # Makefile, README.md ...: files that are no lists
    else:
        folder = tmp_path  # domain-list-community's root holds data/
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "cn").write_text("baidu.com\n")
        (tmp_path / "README.md").write_text("# domain-list-community\n")
    result = run([sys.executable, BIN / "dlmerge", folder])
    assert result.returncode == 2
    assert "expected the data/ folder of domain-list-community" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr

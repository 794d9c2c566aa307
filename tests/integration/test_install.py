"""`make install PREFIX=...` gives working tomato-* commands that run outside the checkout, for
every user (a venv from the system python3), and `make uninstall` leaves nothing behind."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.netns.nsutil import Lab

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("vpn", "ping", "proxy", "dlmerge")
SYSTEM_PYTHON = "/usr/bin/python3"
BARE_ENV = {"PATH": "/usr/bin:/bin"}
NOBODY = 65534

pytestmark = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no system python3")


@pytest.fixture(scope="module")
def root():
    """A folder every user may traverse (pytest's own tmp_path is 0700), holding PREFIX=usr
    whose bin/ exists before the install, as /usr/local/bin does."""
    path = Path(tempfile.mkdtemp(prefix="tomato-install-"))
    path.chmod(0o755)
    (path / "usr" / "bin").mkdir(parents=True)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def prefix(root):
    prefix = root / "usr"
    result = subprocess.run(["make", "-C", str(REPO), "install", "PREFIX=%s" % prefix],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return prefix


def test_installed_tools_run_outside_the_checkout(prefix, tmp_path):
    env = dict(BARE_ENV, HOME=str(tmp_path))
    for tool in TOOLS:
        command = prefix / "bin" / ("tomato-" + tool)
        result = subprocess.run([str(command), "--help"], cwd="/", env=env, capture_output=True, text=True)
        assert result.returncode == 0, (tool, result.stderr)
        assert result.stdout.startswith("usage: tomato-%s " % tool)
    assert not (prefix / "bin" / "ping").exists()

    rules = prefix / "share" / "tomato" / "rules"
    assert (rules / "example.txt").is_file() and (rules / "dlc.txt").is_file()
    # The installed converter works on its own, outside the checkout.
    data = tmp_path / "data"
    data.mkdir()
    (data / "cn").write_text("baidu.com\n")
    (data / "geolocation-!cn").write_text("google.com\n")
    out = subprocess.run([str(prefix / "bin" / "tomato-dlmerge"), str(data)],
                         cwd="/", env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "direct\tbaidu.com" in out.stdout.splitlines()
    assert "forward\tgoogle.com" in out.stdout.splitlines()
    units = prefix / "lib" / "systemd" / "system"
    vpn_unit = (units / "tomato-vpn@.service").read_text()
    assert "ExecStart=%s/bin/tomato-vpn" % prefix in vpn_unit
    assert "/etc/tomato/vpn-%i.conf" in vpn_unit
    assert (units / "tomato-proxy@.service").is_file()
    example = (prefix / "share" / "tomato" / "examples" / "proxy-example.conf").read_text()
    assert "-r %s/dlc.txt" % rules in example and "@DATADIR@" not in example


def test_installed_ctrl_c_during_imports(prefix, tmp_path):
    """The tomato-* entry points keep the launchers' promise: SIGINT while gevent is imported
    (a stand-in gevent first on the path sends it) is one line and 130, no traceback."""
    fake = tmp_path / "gevent"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
                                      "raise SystemExit('the interrupt was ignored')\n")
    for tool in TOOLS:
        result = subprocess.run([str(prefix / "bin" / ("tomato-" + tool)), "--help"], cwd="/",
                                env=dict(BARE_ENV, PYTHONPATH=str(tmp_path)), capture_output=True, text=True)
        assert (result.returncode, result.stderr) == (130, "tomato-%s: interrupted\n" % tool)


def test_venv_comes_from_the_system_python(prefix):
    config = (prefix / "lib" / "tomato" / "venv" / "pyvenv.cfg").read_text().splitlines()
    assert "home = %s" % os.path.dirname(SYSTEM_PYTHON) in config


@pytest.mark.skipif(os.geteuid() != 0, reason="running as nobody needs root (and a namespace for ICMP)")
def test_nobody_runs_the_installed_tools(prefix):
    """A user without a home or privileges: the tools start, and tomato-ping pings (in a
    namespace whose ping_group_range allows unprivileged ICMP sockets, as systemd's default does)."""
    as_nobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
    lab = Lab()
    try:
        ns = lab.netns()
        lab.sh(ns, "sysctl -qw net.ipv4.ping_group_range='0 2147483647'")
        ping = lab.run(ns, as_nobody + [prefix / "bin" / "tomato-ping", "-c", "1", "-a", "127.0.0.1"],
                       cwd="/", env=BARE_ENV)
        assert ping.returncode == 0, ping.stderr
        assert "1 packets transmitted, 1 received" in ping.stderr
        for tool in ("vpn", "proxy", "dlmerge"):
            result = lab.run(ns, as_nobody + [prefix / "bin" / ("tomato-" + tool), "--help"], cwd="/", env=BARE_ENV)
            assert result.returncode == 0, (tool, result.stderr)
    finally:
        lab.close()


def test_uninstall_leaves_nothing(root, prefix):
    subprocess.run(["make", "-C", str(REPO), "uninstall", "PREFIX=%s" % prefix],
                   check=True, capture_output=True, text=True)
    # Only what was there before the install: the prefix and its bin/ folder, both empty.
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == [Path("usr"), Path("usr/bin")]


def test_refuses_a_python_in_a_home_directory(tmp_path):
    base = os.path.realpath(sys.base_prefix)
    if not base.startswith(("/root/", "/home/")):
        pytest.skip("the test interpreter is not under a home directory")
    result = subprocess.run(["sh", str(REPO / "scripts" / "install.sh"), "install", str(tmp_path / "p"),
                             sys.executable], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "a home directory" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "p").exists()

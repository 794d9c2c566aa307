"""contrib/systemd: the unit templates are valid, Type=notify, restart forever, the proxy is
ordered after its tunnel, and `systemd-analyze security` rates them well below the units
of before (6.7 vpn, 8.3 proxy)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"
# systemd-analyze's overall exposure, 0.0 (best) - 10.0, times ten (its --threshold= scale)
MAX_EXPOSURE = {"vpn": 25, "proxy": 15}

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")


def render(tool, folder):
    """The unit as make install writes it, for instance 'test', with /bin/true as the command
    (verify wants an existing ExecStart)."""
    text = (UNITS / ("tomato-%s@.service.in" % tool)).read_text()
    text = re.sub(r"@BINDIR@/tomato-\w+", "/bin/true", text).replace("@DATADIR@", "/usr/local/share/tomato")
    path = folder / ("tomato-%s@test.service" % tool)
    path.write_text(text)
    return path


def settings(tool):
    lines = (UNITS / ("tomato-%s@.service.in" % tool)).read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("tool", ["vpn", "proxy"])
def test_notify_and_restart_forever(tool):
    unit = settings(tool)
    for line in ("Type=notify", "Restart=always", "StartLimitIntervalSec=0", "ProtectSystem=strict",
                 "ProtectHome=yes", "NoNewPrivileges=yes", "SystemCallFilter=@system-service"):
        assert line in unit, line


@pytest.mark.parametrize("tool", ["vpn", "proxy"])
def test_reload_is_sighup(tool):
    # vpn: resolve -pa again; proxy: re-read the rule files. Both keep running.
    assert "ExecReload=/bin/kill -HUP $MAINPID" in settings(tool)


def test_vpn_keeps_tun_and_only_net_admin():
    unit = settings("vpn")
    assert "CapabilityBoundingSet=CAP_NET_ADMIN" in unit
    assert "DevicePolicy=closed" in unit and "DeviceAllow=/dev/net/tun rw" in unit
    assert "PrivateDevices=yes" not in unit  # it would hide /dev/net/tun
    assert "RuntimeDirectory=tomato" in unit and "RuntimeDirectoryPreserve=yes" in unit


def test_proxy_starts_after_its_tunnel():
    after = [line for line in settings("proxy") if line.startswith("After=")]
    assert after and "tomato-vpn@%i.service" in after[0].split()


@needs_analyze
@pytest.mark.parametrize("tool", ["vpn", "proxy"])
def test_units_verify(tool, tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(render(tool, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


@needs_analyze
@pytest.mark.parametrize("tool", ["vpn", "proxy"])
def test_security_exposure(tool, tmp_path):
    unit = render(tool, tmp_path)
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=%d" % MAX_EXPOSURE[tool],
                             str(unit)], capture_output=True, text=True, timeout=60)
    overall = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert result.returncode == 0, overall

"""`make install PREFIX=...` gives working tomato-* commands that run outside the checkout."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("vpn", "ping", "proxy", "dlmerge")


def test_install_and_uninstall(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "-C", str(REPO), "install", "PREFIX=%s" % prefix, "PYTHON=%s" % sys.executable],
                   check=True, capture_output=True, text=True, timeout=600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for tool in TOOLS:
        command = prefix / "bin" / ("tomato-" + tool)
        result = subprocess.run([str(command), "--help"], cwd="/", env=env, capture_output=True, text=True)
        assert result.returncode == 0, (tool, result.stderr)
        assert "usage:" in result.stdout.lower()
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

    subprocess.run(["make", "-C", str(REPO), "uninstall", "PREFIX=%s" % prefix],
                   check=True, capture_output=True, text=True)
    leftovers = [p for p in prefix.rglob("*") if p.is_file() or p.is_symlink()]
    assert leftovers == []

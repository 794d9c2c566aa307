"""--up/--down: the OpenVPN-style environment (pure) and running a hook."""
import ipaddress
import sys

import gevent.event

from tomato_gevent.vpn.hooks import hook_environment, run_hook


def addrs(*texts):
    return [ipaddress.ip_interface(t) for t in texts]


def test_environment_names_follow_openvpn():
    env = hook_environment("up", "tun0", 1412, addrs("fe80::1/64", "10.0.1.1/30", "fd01::1/64", "10.0.2.1/24"),
                           base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "script_type": "up", "dev": "tun0", "tun_mtu": "1412",
                   "ifconfig_local": "10.0.1.1", "ifconfig_netmask": "255.255.255.252",
                   "ifconfig_ipv6_local": "fd01::1", "ifconfig_ipv6_netbits": "64",
                   "TOMATO_ADDRS": "10.0.1.1/30 fd01::1/64 10.0.2.1/24"}


def test_no_addresses_no_address_names():
    env = hook_environment("down", "tun9", 1400, [])
    assert env == {"script_type": "down", "dev": "tun9", "tun_mtu": "1400", "TOMATO_ADDRS": ""}


def test_run_hook_returns_the_exit_status_and_passes_the_environment(tmp_path):
    out = tmp_path / "env"
    env = hook_environment("up", "tun0", 1412, addrs("10.0.1.1/30"), base={"OUT": str(out)})
    assert run_hook("--up", 'echo "$dev $tun_mtu $ifconfig_local" > "$OUT"; exit 3', env) == 3
    assert out.read_text() == "tun0 1412 10.0.1.1\n"


def test_a_stop_kills_a_hung_hook():
    stop = gevent.event.Event()
    stop.set()
    assert run_hook("--up", "exec %s -c 'import time; time.sleep(60)'" % sys.executable, {}, stop) is None

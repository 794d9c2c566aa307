"""--up CMD / --down CMD: commands run after the device is configured / before it goes away.

CMD is a shell command line (run with /bin/sh -c), for routes and firewall rules. Its
environment is vpn's own plus, by OpenVPN's names for the same things:
  script_type            up | down
  dev                    the tun device, e.g. tun0
  tun_mtu                its MTU
  ifconfig_local         its first IPv4 address (absent without one)
  ifconfig_netmask       that address's netmask, dotted (absent without one)
  ifconfig_ipv6_local    its first global IPv6 address (absent without one)
  ifconfig_ipv6_netbits  that address's prefix length
  TOMATO_ADDRS           every address on the device (link-local excluded), CIDR, space-separated
A failing --up (exit status != 0) stops the start; a failing --down is logged and the
stop goes on. hook_environment is pure; run_hook waits for the command, and gives up
waiting (killing it) when stop_event is set, so SIGTERM is never stuck behind a hung script.
"""
import logging
import subprocess

from ..errors import TomatoError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1


class HookFailed(TomatoError):
    """--up failed: the start is abandoned (exit status 1)."""


def hook_environment(script_type, device, mtu, addresses, base=None):
    """The environment for one hook: base (usually os.environ) plus the names above.

    addresses: ipaddress interfaces on the device, in the device's order.
    """
    env = dict(base or {})
    env.update(script_type=script_type, dev=device, tun_mtu=str(mtu))
    shown = [a for a in addresses if not a.ip.is_link_local]
    v4 = [a for a in shown if a.version == 4]
    v6 = [a for a in shown if a.version == 6]
    if v4:
        env["ifconfig_local"] = str(v4[0].ip)
        env["ifconfig_netmask"] = str(v4[0].netmask)
    if v6:
        env["ifconfig_ipv6_local"] = str(v6[0].ip)
        env["ifconfig_ipv6_netbits"] = str(v6[0].network.prefixlen)
    env["TOMATO_ADDRS"] = " ".join(str(a) for a in shown)
    return env


def run_hook(name, command, env, stop_event=None):
    """Run one hook to completion; returns its exit status (killed by a stop: None)."""
    log.info("running %s: %s", name, command)
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise HookFailed("cannot run %s: %s" % (name, e.strerror)) from None
    while True:
        try:
            return proc.wait(POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if stop_event is not None and stop_event.is_set():
                log.warning("stop requested while %s was running: killed it", name)
                proc.kill()
                proc.wait()
                return None


__all__ = ["HookFailed", "hook_environment", "run_hook"]

"""docs/operations.md's Gateway section works as written: its commands, read from the page,
run in namespaces shaped like the page's hosts, and B reaches a host behind A through the
tunnel; the commands for a silent tunnel bring B back to its own default route.

    B 192.168.8.131 --- 192.168.8.130 A 198.51.100.1 --- 198.51.100.2 C
      (default via 192.168.8.1,          (no route back to B or to the tunnel:
       a router that is not there)        only A's masquerade makes C's answers arrive)
"""
import re
import shlex

from .nsutil import REPO

DOC = REPO / "docs" / "operations.md"
C = "198.51.100.2"


def gateway_blocks():
    """{first comment line: (setup script, vpn argv or None)} of the section's sh blocks."""
    text = DOC.read_text()
    section = re.search(r"^## Gateway.*?(?=^## )", text, re.MULTILINE | re.DOTALL).group(0)
    blocks = {}
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        label, _, body = block.partition("\n")
        setup, vpn = [], None
        for line in body.splitlines():
            if line.startswith("bin/vpn "):
                vpn = shlex.split(line)[1:]
            else:
                setup.append(line)
        blocks[label] = ("\n".join(setup) + "\n", vpn)
    return blocks


def host_block(blocks, prefix):
    [(setup, vpn)] = [value for label, value in blocks.items() if label.startswith(prefix)]
    return setup, vpn


def route_to(lab, ns, address):
    return lab.run(ns, ["ip", "route", "get", address], check=True).stdout.split("\n")[0]


def test_the_page_has_the_three_steps():
    blocks = gateway_blocks()
    assert [label.split(":")[0] for label in blocks] == ["# on A", "# on B", "# on B, while the tunnel is silent"]
    assert "nft -f" in host_block(blocks, "# on A:")[0]
    assert not any("iptables" in setup for setup, _ in blocks.values())      # not on a stock Debian


def test_gateway_as_written(lab):
    blocks = gateway_blocks()
    a, b, c = lab.netns(), lab.netns(), lab.netns()
    lab.veth(a, "192.168.8.130/24", b, "192.168.8.131/24", name_a="ens33", name_b="ens33")
    lab.veth(a, "198.51.100.1/24", c, C + "/24", name_a="uplink", name_b="eth0")
    lab.sh(b, "ip route add default via 192.168.8.1 dev ens33")
    assert lab.run(b, ["ping", "-c", "1", "-W", "1", C]).returncode != 0      # no way to C yet

    vpns = {}
    for ns, prefix in ((a, "# on A:"), (b, "# on B:")):
        setup, argv = host_block(blocks, prefix)
        done = lab.run(ns, ["sh", "-ec", setup])
        assert done.returncode == 0, (prefix, done.stderr)
        vpns[ns] = lab.spawn(ns, lab.tool("vpn", *argv))
    for vpn in vpns.values():
        lab.wait_log(vpn, "tunnel tun0 up")

    assert lab.run(b, ["ip", "route", "show", "192.168.8.130"]).stdout.split()[:3] == ["192.168.8.130", "dev", "ens33"]
    assert " dev tun0 " in route_to(lab, b, C)
    ping = lab.run(b, ["ping", "-c", "3", "-i", "0.2", "-W", "2", C])
    assert ping.returncode == 0, ping.stdout + ping.stderr          # through the tunnel, masqueraded by A
    assert "masquerade" in lab.run(a, ["nft", "list", "table", "ip", "tomato_gateway"]).stdout

    # A goes silent; B's commands for that case put B back on its own default route.
    assert lab.stop(vpns[a]) == 0
    setup, argv = host_block(blocks, "# on B, while the tunnel is silent")
    assert argv is None
    done = lab.run(b, ["sh", "-ec", setup])
    assert done.returncode == 0, done.stderr
    assert " via 192.168.8.1 dev ens33 " in route_to(lab, b, C)
    # Stopping B's vpn instead removes the device it created, and the routes through it.
    lab.sh(b, "ip route replace 0.0.0.0/1 dev tun0 && ip route replace 128.0.0.0/1 dev tun0")
    assert " dev tun0 " in route_to(lab, b, C)
    assert lab.stop(vpns[b]) == 0
    assert " via 192.168.8.1 dev ens33 " in route_to(lab, b, C)


def test_peer_route_across_a_router(lab):
    """B's first two lines keep the way to A through B's router when the two share no network."""
    setup, _ = host_block(gateway_blocks(), "# on B:")
    b, r = lab.netns(), lab.netns()
    lab.veth(b, "10.77.0.2/24", r, "10.77.0.1/24", name_a="ens33")
    lab.sh(b, "ip route add default via 10.77.0.1 dev ens33")
    done = lab.run(b, ["sh", "-ec", setup])
    assert done.returncode == 0, done.stderr
    assert lab.run(b, ["ip", "route", "show", "192.168.8.130"]).stdout.split() == [
        "192.168.8.130", "via", "10.77.0.1", "dev", "ens33"]

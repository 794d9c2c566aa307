"""docs/protocol.md is enough to talk to bin/vpn: a peer written from the page alone
(tests/protocol_from_docs.py) exchanges an ICMP echo with a real bin/vpn through its tun
device, over UDP and over TCP, in a namespace of its own."""
import json
import sys

import pytest

from .nsutil import REPO

VPN_PASSWORD, DOC_PASSWORD = "vpn-side-password", "doc-side-password"


@pytest.mark.parametrize("mode", ["udp", "tcp"])
def test_a_peer_written_from_the_page_talks_to_bin_vpn(lab, mode):
    ns = lab.netns()
    # bin/vpn: tunnel address 10.0.1.1, the doc peer is 10.0.1.2 across the tunnel.
    peer = ["-pa", "127.0.0.1:5001"] if mode == "udp" else ["-d", "--transport", "tcp"]
    vpn = lab.spawn(ns, lab.tool("vpn", "-la", "127.0.0.1:5000", "-lp", VPN_PASSWORD, *peer, "-pp", DOC_PASSWORD,
                                 "--addr", "10.0.1.1/30", "--mtu", "1400", "--keepalive", "0"))
    lab.wait_log(vpn, "listening on")
    result = lab.run(ns, [sys.executable, "-m", "tests.protocol_from_docs", mode, "127.0.0.1:5000",
                          "127.0.0.1:5001", DOC_PASSWORD, VPN_PASSWORD], cwd=str(REPO), timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr, vpn.output())
    seen = json.loads(result.stdout)
    assert seen["echo_reply"]                       # the kernel behind bin/vpn's tun answered
    assert len(seen["sessions"]) == 1
    # bin/vpn greets a new peer session with a keepalive (the page's "Sending"), and counts up
    assert seen["keepalives"] >= 1
    assert seen["counters"] == sorted(seen["counters"]) and len(set(seen["counters"])) == len(seen["counters"])
    assert "tunnel tun0 up" in vpn.output()
    assert lab.stop(vpn) == 0

"""vpn under a service manager: READY=1 over $NOTIFY_SOCKET only once the device is up with
its address and the UDP socket bound (what Type=notify units ordered after it rely on)."""
import socket

PORT = 5000


def test_vpn_ready_once_device_up_and_socket_bound(lab):
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd
    notify_path = lab.tmpdir / "notify"
    manager.bind(str(notify_path))
    manager.settimeout(20)  # deadline for the datagram
    try:
        vpn = lab.spawn(a, lab.tool("vpn", "-la", ":%d" % PORT, "-pa", "10.9.0.2:%d" % PORT, "-I", "tmt0",
                                    "--addr", "10.0.1.1/30"),
                        env={"NOTIFY_SOCKET": str(notify_path), "TOMATO_LOCAL_PASSWORD": "pwd1",
                             "TOMATO_PEER_PASSWORD": "pwd2"})
        ready = manager.recv(4096).decode().splitlines()
        assert ready == ["READY=1", "STATUS=tmt0: listening on UDP 0.0.0.0:%d" % PORT], vpn.output()
        # Checked once, right after READY=1: no waiting, it must already hold.
        shown = lab.sh(a, "ip addr show dev tmt0").stdout
        assert "10.0.1.1/30" in shown and ",UP" in shown
        assert lab.run(a, ["ss", "-Hlun", "sport = :%d" % PORT]).stdout.strip()
        assert lab.stop(vpn) == 0
        assert manager.recv(4096) == b"STOPPING=1"
    finally:
        manager.close()

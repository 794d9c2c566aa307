"""End-to-end, issue 22 (protocol v3): what a recording of a whole session gives someone who
knows both passwords (nothing), traffic across rekeys (no stall), and the line an end of
another protocol version gets.

Namespaces a and b as in test_vpn.py (the `pair` fixture): veth 10.9.0.1 <-> 10.9.0.2,
tun0 10.0.1.1/30 <-> 10.0.1.2/30, -lp pwd1 / -pp pwd2 and the mirror image.
"""
import hashlib
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tests.netns.nsutil import program, wait_for
from tests.netns.vpn_support import PORT, assert_clean_stop, ping, ping_eventually, probe, start_vpn
from tomato_gevent.vpn import cpace, keyschedule, messages

MARKER = "marker-through-the-tunnel"
A_ARGS = ("-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2")
B_ARGS = ("-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1")


def v2_key(password):
    """Version 2's key of a password: scrypt with the v2 salt."""
    return Scrypt(salt=b"tomato-vpn v2 password", length=32, n=2 ** 15, r=8, p=1).derive(password.encode())


def keys_from_the_passwords(sids):
    """Every key someone who knows both passwords and has the recording can compute without
    the two ends' ephemeral scalars: the password keys of v3 and v2, the PRS in both orders
    and hashes of it, and, for every sid seen, the generator, as data keys or through the data
    key derivation."""
    kp = [keyschedule.derive_password_key(p) for p in ("pwd1", "pwd2")]
    prss = [keyschedule.password_related_string(kp[0], kp[1]), keyschedule.password_related_string(kp[1], kp[0])]
    secrets = kp + [v2_key(p) for p in ("pwd1", "pwd2")]
    for prs in prss:
        secrets += [hashlib.sha256(prs).digest(), hashlib.sha512(prs).digest()[:32]]
        secrets += list(keyschedule.data_keys(prs)) + list(keyschedule.data_keys(hashlib.sha512(prs).digest()))
        for sid in sids:
            generator = cpace.calculate_generator(prs, keyschedule.CHANNEL_ID, sid)
            secrets += [generator] + list(keyschedule.data_keys(generator))
    return secrets


def opens(key, datagram):
    """Does datagram open under key, as a v3 data datagram or as a v2 one?"""
    for nonce, aad, body in ((datagram[4:16], datagram[:16], datagram[16:]),     # v3
                             (datagram[:12], datagram[:12], datagram[12:])):     # v2
        try:
            AESGCM(key).decrypt(nonce, body, aad)
            return True
        except (InvalidTag, ValueError):
            pass
    return False


def test_a_recording_of_a_whole_session_does_not_open_with_both_passwords(lab, pair):
    a, b = pair
    recording = lab.tmpdir / "session.hex"
    recorder = lab.spawn(b, program("recorder.py", "veth0", PORT, recording))
    lab.wait_log(recorder, "recording")
    vpn_a, vpn_b = start_vpn(lab, a, *A_ARGS), start_vpn(lab, b, *B_ARGS)
    ping_eventually(lab, a, "10.0.1.2")
    sink = lab.spawn(b, probe("udp-sink", "10.0.1.2", 7000))
    lab.wait_log(sink, "listening")
    lab.run(a, probe("udp-send", "10.0.1.2", 7000, MARKER, 5), check=True)
    wait_for(lambda: sink.output().count(MARKER) == 5, what="the marked messages through the tunnel")
    assert ping(lab, b, "10.0.1.1", count=3)            # the live tunnel works both ways
    for proc in (vpn_a, vpn_b):
        assert_clean_stop(lab, proc)
    lab.stop(recorder)
    datagrams = [bytes.fromhex(line) for line in recording.read_text().split()]

    kinds = [d[0] for d in datagrams]
    for kind in (messages.INITIATION, messages.RESPONSE, messages.CONFIRMATION, messages.DATA):
        assert kind in kinds, "the recording holds the handshake and the data (%s)" % sorted(set(kinds))
    data = [d for d in datagrams if d[0] == messages.DATA]
    assert len(data) >= 10
    assert not any(MARKER.encode() in d for d in datagrams), "the payload travels in the clear"
    sids = [messages.parse_initiation(d).sid for d in datagrams if d[0] == messages.INITIATION]
    keys = keys_from_the_passwords(sids)
    opened = [(key.hex()[:8], d.hex()[:16]) for key in keys for d in data if opens(key, d)]
    assert opened == [], "data opened with keys computed from the passwords alone"


def test_iperf3_runs_across_several_rekeys_without_a_stall(lab, pair):
    a, b = pair
    # A rekey every 2 s (a hidden test-only flag); -v logs each completed handshake.
    vpn_a = start_vpn(lab, a, *A_ARGS, "--rekey-after", "2", "-v")
    vpn_b = start_vpn(lab, b, *B_ARGS, "--rekey-after", "2", "-v")
    ping_eventually(lab, a, "10.0.1.2")
    server = lab.spawn(b, ["iperf3", "-s", "-1", "-B", "10.0.1.2"])
    lab.wait_tcp_listening(b, 5201)
    result = lab.run(a, ["iperf3", "-c", "10.0.1.2", "-t", "9", "-i", "1", "-J"], timeout=60)
    assert result.returncode == 0, result.stderr
    intervals = [i["sum"]["bytes"] for i in json.loads(result.stdout)["intervals"]]
    median = sorted(intervals)[len(intervals) // 2]
    assert len(intervals) >= 9 and min(intervals) >= median / 10, "a stalled second: %s" % intervals
    wait_for(lambda: server.poll() is not None, timeout=10, what="iperf3 server to finish")
    out_a, out_b = assert_clean_stop(lab, vpn_a), assert_clean_stop(lab, vpn_b)
    handshakes = out_a.count("handshake with 10.9.0.2:%d complete" % PORT)
    assert handshakes >= 4, "only %d handshakes in ~12 s with a rekey every 2 s" % handshakes
    stop_line = [line for line in out_b.splitlines() if "stopped: " in line][-1]
    for reason in ("authentication failed", "expired keypair", "unknown receiver index", "no session"):
        assert reason not in stop_line, stop_line




def test_an_end_of_protocol_v2_gets_one_line_naming_both_versions(lab, pair):
    a, b = pair
    vpn_a = start_vpn(lab, a, *A_ARGS)
    lab.run(b, program("v2_peer.py", PORT), check=True)
    lab.wait_log(vpn_a, "10.9.0.2:%d speaks tomato-vpn v2, this end speaks tomato-vpn v3: run the same version "
                        "on both ends" % PORT)
    out = assert_clean_stop(lab, vpn_a)
    assert out.count("speaks tomato-vpn v2") == 1 and "protocol version 2: 5" in out

"""session.py: where the peer is -- fixed, or learned and forgotten (dynamic mode). The receive
rules of protocol v3 are keypair.py's and handshake.py's (test_vpn_keypair, test_vpn_handshake*)."""
from tomato_gevent.vpn.session import PeerEndpoint


def test_endpoint_dynamic_learns_and_forgets():
    endpoint = PeerEndpoint(fixed=None, forget_after=60.0)
    assert endpoint.dynamic and endpoint.address is None
    assert endpoint.learn(("10.9.0.2", 5000), 1.0)
    assert not endpoint.learn(("10.9.0.2", 5000), 30.0)
    assert endpoint.learn(("10.9.0.3", 5001), 40.0)
    assert not endpoint.expire(100.0)
    assert endpoint.expire(100.1)
    assert endpoint.address is None
    assert not endpoint.expire(200.0)


def test_endpoint_fixed_never_changes():
    endpoint = PeerEndpoint(fixed=("10.9.0.2", 5000))
    assert not endpoint.learn(("10.6.6.6", 1), 1.0)
    assert not endpoint.expire(1e9)
    assert endpoint.address == ("10.9.0.2", 5000)

import pytest

from .nsutil import Lab
from .proxy_site import Site


@pytest.fixture
def lab():
    """Namespaces, links and processes that are removed after the test, pass or fail."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def pair(lab):
    """Hosts A and B joined by a veth (10.9.0.1/24, 10.9.0.2/24), each with a pre-created
    tun0 (10.0.1.1/30, 10.0.1.2/30) as in the seed's README."""
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    return a, b


@pytest.fixture
def site(lab):
    s = Site(lab)
    yield s
    s.close()


@pytest.fixture
def two_sites(lab):
    """A (client side) and B (far side, e.g. across the VPN) joined by a veth.

    hidden.test is an origin on B's 127.0.0.1: only something running in B reaches it."""
    a = Site(lab, hosts="127.0.0.1 local.test\n")
    b = Site(lab, hosts="127.0.0.1 hidden.test bad.test\n")
    lab.veth(a.ns, "10.77.0.1/24", b.ns, "10.77.0.2/24")
    b.origin(name="B")
    yield a, b
    a.close()
    b.close()

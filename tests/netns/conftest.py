import pytest

from .nsutil import Lab


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

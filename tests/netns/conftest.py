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

"""The vpn with a short "peer silent" threshold, for tests that wait for a silent peer (the
real threshold, max(3 x keepalive, 60 s), is too long to wait for).

    python vpn_quick_silence.py SECONDS VPN-ARGUMENTS...

Started as bin/vpn starts it (monkey-patched first), through cli.main's silent_after seam.
"""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from tomato_gevent.vpn.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[2:], silent_after=float(sys.argv[1])))

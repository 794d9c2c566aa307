"""bin/vpn: point-to-point encrypted VPN over UDP between two tun devices.

Pure cores: packet (seal/open, key derivation), replay (anti-replay window),
session (peer sessions, dynamic address). I/O glue: tun, link, cli.
"""

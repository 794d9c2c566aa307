"""bin/vpn: point-to-point encrypted VPN over UDP (or TCP) between two tun devices.

The module map is in README.md ("Layout", and the vpn section's implementation notes).
"""

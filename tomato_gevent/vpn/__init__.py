"""bin/vpn: point-to-point encrypted VPN over UDP (or TCP) between two tun devices.

The module map is in docs/layout.md (its "vpn" section says what each module does).
"""

"""bin/ping: ICMP echo heartbeat for IPv4 and IPv6."""

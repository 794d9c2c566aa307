"""HTTP/1.x as an intermediary speaks it (pure, no I/O): heads (http), their field section
(fields), request targets (targets), the chunked coding (chunked). The proxy parses and
renders with it; the VPN's --http-proxy dialler (vpn/http_connect.py) sends its CONNECT and
reads the answer with it, so both tools read HTTP alike and neither imports the other.
"""

"""HTTP/1.x as an intermediary speaks it: heads (http), their field section (fields), request
targets (targets), the chunked coding (chunked), all pure; the credentials for an upstream
proxy (upstream_auth, which reads their file). The proxy parses and renders with it; the VPN's
--http-proxy dialler (vpn/http_connect.py) sends its CONNECT and reads the answer with it, so
both tools read HTTP alike and the vpn package imports nothing from the proxy's.
"""

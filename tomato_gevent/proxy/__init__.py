"""HTTP and SOCKS5 proxy: sessions, server and CLI (its rules: tomato_gevent/rules; HTTP/1.x: tomato_gevent/http1)."""

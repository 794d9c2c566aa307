"""HTTP proxy: rule engine (rules), request parsing (http), server and CLI."""

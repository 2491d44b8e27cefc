"""How bytes move between a socket, TLS and the sans-IO cores.

Today one engine: :mod:`tlsecho.engines.sslsocket` (OpenSSL on the socket).
"""

"""How bytes move between a socket, TLS and the sans-IO cores.

Two engines (``--engine``): :mod:`tlsecho.server.engines.sslsocket` (OpenSSL on the
socket, the default) and :mod:`tlsecho.server.engines.membio` (TLS over memory
BIOs, which the record-level faults need). What they share is in
:mod:`tlsecho.server.engines.base`; :mod:`tlsecho.server.engines.http` adds ``--mode http``
to either.
"""

"""How bytes move between a socket, TLS and the sans-IO cores.

Two engines (``--engine``): :mod:`tlsecho.engines.sslsocket` (OpenSSL on the
socket, the default) and :mod:`tlsecho.engines.membio` (TLS over memory
BIOs, which the record-level faults need). What they share is in
:mod:`tlsecho.engines.base`; :mod:`tlsecho.engines.http` adds ``--mode http``
to either.
"""

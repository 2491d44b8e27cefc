"""Sans-IO wire formats: bytes in, results out, a cap on every buffer.

The framings (``framing``), the PROXY protocol (``proxy_protocol``), the
ClientHello and ServerHello readers (``clienthello``, ``serverhello``), TLS
names and extension decoders (``tlsnames``, ``tlsext``), JA3/JA4
(``fingerprints``), golden ClientHellos (``golden``), the clock-injected
deadlines (``deadlines``) and the faults' shaping (``faults``). Nothing here
imports a socket, an event loop, ``ssl`` or anything above this package.
"""

"""Certificates: the one issuer (:mod:`tlsecho.pki.issuer`) that
``tlsecho.certs`` and ``tlsecho.labcerts`` sign with."""

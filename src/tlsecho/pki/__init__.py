"""Certificates: the one issuer (:mod:`tlsecho.pki.issuer`) that
``tlsecho.pki.certs`` and ``tlsecho.lab.certs`` sign with."""

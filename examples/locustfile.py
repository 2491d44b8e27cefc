"""Distributed load against tlsecho serve with Locust.

    TLSECHO_HOST=echo.example.test TLSECHO_CAFILE=ca.crt locust -f examples/locustfile.py --master
    TLSECHO_HOST=echo.example.test TLSECHO_CAFILE=ca.crt \\
        locust -f examples/locustfile.py --worker --master-host MASTER
"""

from tlsecho.locust import TLSEchoUser


class EchoUser(TLSEchoUser):
    """Pingpong on persistent sessions (4 in 5) and new connections (1 in 5)."""

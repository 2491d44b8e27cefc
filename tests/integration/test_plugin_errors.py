"""The pytest plugin's failures say what happened: an unknown bad kind is
named, a failing test shows the server's side."""

from __future__ import annotations

import pytest


def test_plugin_names_an_unknown_bad_kind(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
import pytest
from tlsecho import ConfigError

def test_kind(tlsecho_server_factory):
    with pytest.raises(ConfigError, match="not a bad certificate kind .*expired"):
        tlsecho_server_factory(bad="nope")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_a_failing_plugin_test_shows_the_server_side(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
import socket
import ssl


def test_wrong_ca(tlsecho_server_factory):
    server = tlsecho_server_factory(bad="unknown-ca")
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
        except ssl.SSLError:
            pass
    server.wait_outcome("handshake-failed")
    assert False, "the user's assertion"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [r".*Captured log call.*", r".*done peer=.*end=handshake-failed.*"]
    )

"""Config validation and the parsers of --listen and --sni values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsecho.config import ClientConfig, ServerConfig, SniCert, parse_listen, parse_sni
from tlsecho.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:10000", ("127.0.0.1", 10000)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8443", ("::1", 8443)),
        ("[fe80::1%lo]:1", ("fe80::1%lo", 1)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("::1:80", r"\[ADDRESS\]:PORT"),
        ("localhost", "expected HOST:PORT"),
        (":80", "host is missing"),
        ("host:http", "not a number"),
        ("host:70000", "0..65535"),
        ("[::1]80", r"\[ADDRESS\]:PORT"),
    ],
)
def test_parse_listen_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_listen(text)


def test_parse_listen_default_port() -> None:
    assert parse_listen("example.test", default_port=10000) == ("example.test", 10000)
    assert parse_listen("[::1]", default_port=443) == ("::1", 443)


def test_parse_sni() -> None:
    assert parse_sni("API.example.test=/a/b.crt:/a/b.key") == SniCert(
        "api.example.test", Path("/a/b.crt"), Path("/a/b.key")
    )
    with pytest.raises(ConfigError, match="NAME=CERT:KEY"):
        parse_sni("api.example.test=/a/b.crt")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "bogus"}, "mode must be one of"),
        ({"max_line": 0}, "max_line must be at least 1"),
        ({"cert": Path("a")}, "^cert and key go together"),
        (
            {"min_version": "1.3", "max_version": "1.2"},
            "^min_version 1.3 is above max_version 1.2$",
        ),
        ({"alpn_required": True}, "^alpn_required needs alpn$"),
        ({"alpn": ("",)}, "ALPN protocol names"),
        ({"session_tickets": 17}, "^session_tickets must be 0..16"),
        ({"client_auth": "required"}, "needs client_ca FILE"),
        ({"reload_interval": 0}, "reload interval"),
        ({"handshake_timeout": -1}, "handshake timeout"),
        ({"listen": (("h", 70000),)}, "0..65535"),
        ({"mode": "http", "max_header": 100}, "^max_header must be at least 256"),
        ({"max_body": -1}, "max_body 0 or more"),
        ({"request_timeout": 0}, "request timeout"),
    ],
)
def test_server_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_endpoints() -> None:
    assert ServerConfig().endpoints == (("localhost", 10000),)
    assert ServerConfig(listen=(("::1", 1),)).endpoints == (("::1", 1),)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"port": 0}, "1..65535"),
        ({"timeout": 0}, "timeout"),
        ({"key": Path("k")}, "go together"),
        ({"proxy_header": "v3"}, "^proxy_header must be v1 or v2$"),
    ],
)
def test_client_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClientConfig(**kwargs)  # type: ignore[arg-type]


def test_library_messages_name_settings_the_cli_names_flags() -> None:
    """A library user reads the field's name; the command line, its flag."""
    from tlsecho.cli.common import flag_of

    with pytest.raises(ConfigError) as info:
        ServerConfig(profile="old", cert=None)  # type: ignore[arg-type]
    assert str(info.value) == "profile must be intermediate or modern, not 'old'"
    assert info.value.render(flag_of) == "--tls-profile must be intermediate or modern, not 'old'"
    with pytest.raises(ConfigError) as info:
        ClientConfig(key=Path("k"))
    assert "--" not in str(info.value)
    assert info.value.render(flag_of).startswith("--cert and --key go together")


def test_group_names() -> None:
    from tlsecho._launch import _groups_argument
    from tlsecho.groups import GROUP_CODES, group_list

    assert group_list("x25519,P-384:secp256r1") == ["X25519", "P-384", "P-256"]
    assert GROUP_CODES[group_list("X25519MLKEM768")[0]] == 4588
    with pytest.raises(ValueError, match="unknown group 'p-999'"):
        group_list("p-999")
    assert _groups_argument(["serve", "--groups", "P-384"]) == "P-384"
    assert _groups_argument(["serve", "--groups=X25519"]) == "X25519"
    assert _groups_argument(["send", "--", "--groups", "x"]) is None


def test_mode_http_is_the_servers() -> None:
    from tlsecho.config import ClientConfig

    assert ServerConfig(mode="http").mode == "http"
    with pytest.raises(ConfigError, match="mode http is the server's"):
        ClientConfig(mode="http")


def test_bench_path_is_scenario_https() -> None:
    from tlsecho.bench import BenchConfig

    assert BenchConfig(scenario="http", path="/health").path == "/health"
    with pytest.raises(ConfigError, match="path is scenario http's"):
        BenchConfig(path="/health")
    with pytest.raises(ConfigError, match="starts with /"):
        BenchConfig(scenario="http", path="health")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("::1", ("::1", 443)), ("[::1]", ("::1", 443)), ("[::1]:8443", ("::1", 8443))],
)
def test_an_ipv6_target_without_a_port_takes_the_default(
    text: str, expected: tuple[str, int]
) -> None:
    """probe and bench take both spellings (issue 17), as --host does."""
    assert parse_listen(text, default_port=443) == expected

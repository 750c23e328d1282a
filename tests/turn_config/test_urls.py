from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turn_config.errors import TurnUrlError
from turn_config.urls import IceServerUrl, parse_ice_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("turn:turn.example.fi", IceServerUrl("turn", "turn.example.fi", 3478, "udp")),
        ("turn:192.0.2.1:3479?transport=tcp", IceServerUrl("turn", "192.0.2.1", 3479, "tcp")),
        (
            "turns:turn.example.fi:443?transport=tcp",
            IceServerUrl("turns", "turn.example.fi", 443, "tcp"),
        ),
        ("turns:turn.example.fi", IceServerUrl("turns", "turn.example.fi", 5349, "tcp")),
        ("TURN:[2001:db8::1]:3478?transport=UDP", IceServerUrl("turn", "2001:db8::1", 3478, "udp")),
        ("stun:stun.example.fi", IceServerUrl("stun", "stun.example.fi", 3478, None)),
        ("stuns:[::1]:5349", IceServerUrl("stuns", "::1", 5349, None)),
    ],
)
def test_parses_rfc7065_urls(url: str, expected: IceServerUrl) -> None:
    parsed = parse_ice_url(url)
    assert parsed == expected
    assert parse_ice_url(str(parsed)) == parsed


def test_labels_name_the_transport() -> None:
    assert parse_ice_url("turn:h").label == "UDP"
    assert parse_ice_url("turn:h?transport=tcp").label == "TCP"
    assert parse_ice_url("turns:h:443").label == "TLS"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty STUN/TURN URL"),
        ("http://turn.example.fi", "the scheme must be turn:, turns:, stun: or stuns:"),
        ("turn://turn.example.fi", "write turn:HOST, without '//'"),
        ("turn:", "the host is missing"),
        ("turn::3478", "the host is missing"),
        ("turn:turn.example.fi:99999", "port 99999 is outside 1–65535"),
        ("turn:turn.example.fi:0", "port 0 is outside 1–65535"),
        ("turn:turn.example.fi:34x8", "port '34x8' is not a number"),
        ("turn:turn.example.fi:", "port '' is not a number"),
        ("turn:2001:db8::1", "put an IPv6 address in brackets"),
        ("turn:[2001:db8::1", "unclosed '['"),
        ("turn:[not-v6]:3478", "'not-v6' is not an IPv6 address"),
        ("turn:[::1]x", "unexpected 'x' after the address"),
        ("turn:bad_host.example", "'bad_host.example' is not a valid host name"),
        ("turn:-bad.example", "is not a valid host name"),
        ("turn:999.1.1.1", "'999.1.1.1' is not a valid IPv4 address"),
        ("turn:h?transport=sctp", "transport must be udp or tcp, not 'sctp'"),
        ("turn:h?proto=udp", "the only query allowed is ?transport=udp|tcp"),
        ("turns:h?transport=udp", "turns: runs over TLS, so transport=tcp"),
        ("stun:h?transport=udp", "stun: URLs take no query"),
        ("turn: h", "it contains spaces or control characters"),
        ("turn:h\x00", "it contains spaces or control characters"),
    ],
)
def test_refuses_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(TurnUrlError) as caught:
        parse_ice_url(url)
    assert message in str(caught.value)


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    try:
        parsed = parse_ice_url(text)
    except TurnUrlError as exc:
        assert str(exc)
    else:
        assert parse_ice_url(str(parsed)) == parsed
        assert 1 <= parsed.port <= 65535


@given(
    scheme=st.sampled_from(["turn", "turns", "stun", "stuns"]),
    url=st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    port=st.integers(1, 65535),
)
def test_generated_urls_round_trip(scheme: str, url: str, port: int) -> None:
    parsed = parse_ice_url(f"{scheme}:{url}:{port}")
    assert (parsed.host, parsed.port) == (url, port)
    assert parse_ice_url(str(parsed)) == parsed


@given(st.text(alphabet="turns:[]?=0123456789.abcdef/%-_ ", max_size=40))
def test_url_shaped_garbage_is_refused_or_parsed(text: str) -> None:
    try:
        parse_ice_url(text)
    except TurnUrlError:
        pass


def test_a_bare_host_means_the_three_standard_urls() -> None:
    from turn_config.allocation_check import standard_urls

    assert standard_urls("turn.example.fi") == [
        "turn:turn.example.fi:3478?transport=udp",
        "turn:turn.example.fi:3478?transport=tcp",
        "turns:turn.example.fi:443?transport=tcp",
    ]
    assert [parse_ice_url(u).label for u in standard_urls("[2001:db8::1]")] == ["UDP", "TCP", "TLS"]

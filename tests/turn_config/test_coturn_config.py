from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.turn_config.conftest import NEW_SECRET, OLD_SECRET
from tests.turn_config.coturn_server import TlsFiles
from tests.turn_config.turn_cli import run_turn as main
from turn_config.coturn_config import CoturnOptions, render
from turn_config.errors import TurnConfigError
from turn_config.peer_ranges import DENIED_PEER_RANGES, parse_peer_range


def _options(tls: TlsFiles, **changes: object) -> CoturnOptions:
    values: dict[str, object] = {
        "realm": "turn.example.fi",
        "secrets": [NEW_SECRET, OLD_SECRET],
        "cert": tls.cert,
        "pkey": tls.key,
    }
    values.update(changes)
    return CoturnOptions(**values)  # type: ignore[arg-type]


def _settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_hardened_defaults(tls_files: TlsFiles) -> None:
    text = render(_options(tls_files, media_relay_peers=["10.1.2.3", "10.9.0.0/24"]))
    lines = _settings(text)
    for expected in [
        "listening-port=3478",
        "tls-listening-port=443",
        f"cert={tls_files.cert}",
        f"pkey={tls_files.key}",
        "use-auth-secret",
        f"static-auth-secret={NEW_SECRET}",
        f"static-auth-secret={OLD_SECRET}",
        "realm=turn.example.fi",
        "no-multicast-peers",
        "user-quota=12",
        "total-quota=1200",
        "fingerprint",
        "no-cli",
        "stale-nonce=600",
        "no-tlsv1",
        "no-tlsv1_1",
        "no-tcp-relay",
        "min-port=49152",
        "max-port=65535",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=100.64.0.0-100.127.255.255",
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "denied-peer-ip=::ffff:0:0-::ffff:ffff:ffff",
        "allowed-peer-ip=10.1.2.3",
        "allowed-peer-ip=10.9.0.0-10.9.0.255",
    ]:
        assert expected in lines, expected
    # The newest secret comes first: coturn and the signaling server agree on the order.
    assert lines.index(f"static-auth-secret={NEW_SECRET}") < lines.index(
        f"static-auth-secret={OLD_SECRET}"
    )
    assert "allow-loopback-peers" not in lines
    # Every setting sits right under a comment saying why (grouped settings share one).
    raw = text.splitlines()
    for index, line in enumerate(raw):
        if line and not line.startswith(("#", "static-auth-secret")):
            assert any(x.startswith("#") for x in raw[max(0, index - 3) : index]), line


def test_only_media_relay_peers_denies_everything_else(tls_files: TlsFiles) -> None:
    lines = _settings(
        render(_options(tls_files, media_relay_peers=["198.51.100.7"], only_media_relay_peers=True))
    )
    assert "denied-peer-ip=0.0.0.0-255.255.255.255" in lines
    assert "allowed-peer-ip=198.51.100.7" in lines


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"realm": "not a realm"}, "realm 'not a realm' must be a DNS-style name"),
        ({"realm": ""}, "must be a DNS-style name"),
        ({"secrets": []}, "at least one shared secret"),
        ({"secrets": ["short"]}, "too short"),
        ({"secrets": [NEW_SECRET, NEW_SECRET]}, "the same secret is listed twice"),
        (
            {"cert": Path("/nonexistent/cert.pem")},
            "certificate file /nonexistent/cert.pem does not",
        ),
        ({"port": 0}, "port 0 is not a port number"),
        ({"tls_port": 70000}, "tls-port 70000 is not a port number"),
        ({"port": 443}, "port and tls-port are both 443"),
        ({"min_port": 60000, "max_port": 50000}, "relay port range 60000-50000 runs backwards"),
        ({"port": 50000}, "listening port 50000 lies inside the relay port range"),
        ({"listening_ips": ["300.1.1.1"]}, "'300.1.1.1' is not an IP address"),
        ({"relay_ips": ["0.0.0.0"]}, "cannot be a listening, relay or external address"),
        ({"external_ips": ["203.0.113.5/10.0.0.x"]}, "'10.0.0.x' is not an IP address"),
        ({"media_relay_peers": ["10.0.0.9-10.0.0.1"]}, "runs backwards"),
        ({"media_relay_peers": ["sfu.example.fi"]}, "is not an address, CIDR block or range"),
        ({"only_media_relay_peers": True}, "needs at least one media relay address"),
        ({"user_quota": 0}, "user-quota must be an integer ≥ 1"),
        ({"user_quota": 50, "total_quota": 10}, "user-quota must not exceed total-quota"),
        ({"stale_nonce": 5}, "stale-nonce must be 60–3600 seconds"),
        ({"log_file": "relative.log"}, "log-file 'relative.log' must be syslog"),
    ],
)
def test_refuses_bad_values(tls_files: TlsFiles, changes: dict[str, object], message: str) -> None:
    with pytest.raises(TurnConfigError) as caught:
        render(_options(tls_files, **changes))
    assert message in str(caught.value)


def test_refuses_a_key_that_is_not_pem(tls_files: TlsFiles, tmp_path: Path) -> None:
    der = tmp_path / "key.der"
    der.write_bytes(b"\x30\x82\x01\x00garbage")
    with pytest.raises(TurnConfigError, match=r"private key file .* is not PEM"):
        render(_options(tls_files, pkey=der))


@given(st.ip_addresses())
def test_every_non_global_address_is_denied(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    denied = any(address in entry.network for entry in DENIED_PEER_RANGES)
    if not address.is_global or address.is_multicast:
        assert denied, address


@given(st.text(max_size=60))
def test_peer_range_parser_refuses_garbage_with_value_error(text: str) -> None:
    try:
        first, last = parse_peer_range(text)
    except ValueError:
        return
    assert int(ipaddress.ip_address(first)) <= int(ipaddress.ip_address(last))


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.write_text(f"{NEW_SECRET}\n{OLD_SECRET}\n")
    return path


def test_cli_writes_the_config_privately(tls_files: TlsFiles, tmp_path: Path) -> None:
    out = tmp_path / "turnserver.conf"
    status = main(
        [
            "turn", "config", "--realm", "turn.example.fi",
            "--secret-file", str(_secret_file(tmp_path)),
            "--cert", str(tls_files.cert), "--pkey", str(tls_files.key),
            "--media-relay-ip", "10.0.0.5", "-o", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = _settings(out.read_text())
    assert "allowed-peer-ip=10.0.0.5" in lines
    assert f"static-auth-secret={OLD_SECRET}" in lines


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--realm", "bad realm!"], "must be a DNS-style name"),
        (["--port", "70000"], "port 70000 is not a port number"),
        (["--cert", "/nonexistent/c.pem"], "does not exist"),
        (["--secret-file", "/nonexistent/s"], "cannot read secret file"),
        (["--listening-ip", "1.2.3"], "'1.2.3' is not an IP address"),
    ],
)
def test_cli_refuses_bad_values_with_status_2(
    tls_files: TlsFiles,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    base = {
        "--realm": "turn.example.fi",
        "--secret-file": str(_secret_file(tmp_path)),
        "--cert": str(tls_files.cert),
        "--pkey": str(tls_files.key),
    }
    args = ["turn", "config"]
    for key, value in base.items():
        if key not in extra:
            args += [key, value]
    assert main(args + extra) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_cli_credentials_prints_rest_api_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["turn", "credentials", "--secret-file", str(_secret_file(tmp_path)), "--user", "alice",
         "--ttl", "120", "--uri", "turns:turn.example.fi:443?transport=tcp"]
    )  # fmt: skip
    assert status == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) == {"username", "password", "ttl", "uris"}
    expiry, user = body["username"].split(":")
    assert user == "alice" and int(expiry) > 0 and body["ttl"] == 120
    assert body["uris"] == ["turns:turn.example.fi:443?transport=tcp"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--user", "a:b"], "no ':'"),
        (["--user", "alice", "--ttl", "-5"], "TTL -5 must be"),
        (["--user", "alice", "--uri", "turn:h:0"], "port 0 is outside"),
    ],
)
def test_cli_credentials_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["turn", "credentials", "--secret-file", str(_secret_file(tmp_path)), *extra]) == 2
    assert message in capsys.readouterr().err


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # files are read-only
@given(
    port=st.integers(-5, 70000),
    tls_port=st.integers(-5, 70000),
    min_port=st.integers(-5, 70000),
    max_port=st.integers(-5, 70000),
    user_quota=st.integers(-2, 50),
)
def test_numeric_values_render_or_are_refused(
    tls_files: TlsFiles, port: int, tls_port: int, min_port: int, max_port: int, user_quota: int
) -> None:
    options = _options(
        tls_files, port=port, tls_port=tls_port, min_port=min_port, max_port=max_port,
        user_quota=user_quota,
    )  # fmt: skip
    try:
        lines = _settings(render(options))
    except TurnConfigError as exc:
        assert str(exc)
        return
    assert f"listening-port={port}" in lines and f"tls-listening-port={tls_port}" in lines
    assert 1 <= min_port <= max_port <= 65535 and not min_port <= port <= max_port


# --- the server's own addresses (security review, finding 10) ---------------------------------


def test_own_addresses_are_denied(tls_files: TlsFiles) -> None:
    lines = _settings(
        render(
            _options(
                tls_files,
                listening_ips=["198.51.100.20", "2001:DB8::1"],
                relay_ips=["198.51.100.20", "10.0.0.7"],
                external_ips=["203.0.113.10/10.0.0.7"],
            )
        )
    )
    own = [x for x in lines if x.startswith("denied-peer-ip=") and "-" not in x.split("=")[1]]
    # Each once, canonical, in the order given: listening, relay, external public/private.
    assert own == [
        "denied-peer-ip=198.51.100.20",
        "denied-peer-ip=2001:db8::1",
        "denied-peer-ip=10.0.0.7",
        "denied-peer-ip=203.0.113.10",
    ]
    assert not any(x.startswith("allowed-peer-ip") for x in lines)


def test_own_address_inside_a_media_relay_range_is_cut_out(tls_files: TlsFiles) -> None:
    # coturn lets allowed-peer-ip win over denied-peer-ip: the allowance must skip the server.
    lines = _settings(
        render(
            _options(
                tls_files,
                relay_ips=["10.0.0.7"],
                external_ips=["198.51.100.10"],
                media_relay_peers=["10.0.0.0/24", "10.0.1.5"],
            )
        )
    )
    assert "denied-peer-ip=10.0.0.7" in lines and "denied-peer-ip=198.51.100.10" in lines
    assert [x for x in lines if x.startswith("allowed-peer-ip")] == [
        "allowed-peer-ip=10.0.0.0-10.0.0.6",
        "allowed-peer-ip=10.0.0.8-10.0.0.255",
        "allowed-peer-ip=10.0.1.5",
    ]


def test_own_address_given_as_media_relay_ip_stays_allowed(tls_files: TlsFiles) -> None:
    # The media relay on the TURN host itself: the operator said so explicitly.
    text = render(_options(tls_files, relay_ips=["10.0.1.5"], media_relay_peers=["10.0.1.5"]))
    lines = _settings(text)
    assert "denied-peer-ip=10.0.1.5" not in lines
    assert "allowed-peer-ip=10.0.1.5" in lines
    assert "# 10.0.1.5 is this server's own address but also a --media-relay-ip" in text


def test_unspecified_addresses(tls_files: TlsFiles) -> None:
    # 0.0.0.0 and :: are refused as listening/relay/external addresses: no own address to deny.
    for changes in ({"listening_ips": ["0.0.0.0"]}, {"external_ips": ["::"]}):
        with pytest.raises(TurnConfigError, match="cannot be a listening, relay or external"):
            render(_options(tls_files, **changes))
    text = render(_options(tls_files))
    lines = _settings(text)
    assert "denied-peer-ip=0.0.0.0-0.255.255.255" in lines
    # coturn reads a range starting at :: as "any address": "::-::" would deny every peer
    # (it refuses the peers :: and 0.0.0.0 by itself).
    assert not any(x.startswith("denied-peer-ip=::-") for x in lines)
    assert "# ::/128: unspecified address (RFC 4291). No line:" in text
    assert "# No listening-ip: addresses of this host not given" in text


def test_cli_denies_the_own_addresses(tls_files: TlsFiles, tmp_path: Path) -> None:
    out = tmp_path / "turnserver.conf"
    status = main(
        [
            "turn", "config", "--realm", "turn.example.fi",
            "--secret-file", str(_secret_file(tmp_path)),
            "--cert", str(tls_files.cert), "--pkey", str(tls_files.key),
            "--listening-ip", "198.51.100.20", "--relay-ip", "198.51.100.21",
            "--external-ip", "203.0.113.10", "--media-relay-ip", "198.51.100.0/24",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    lines = _settings(out.read_text())
    for address in ("198.51.100.20", "198.51.100.21", "203.0.113.10"):
        assert f"denied-peer-ip={address}" in lines
    assert [x for x in lines if x.startswith("allowed-peer-ip")] == [
        "allowed-peer-ip=198.51.100.0-198.51.100.19",
        "allowed-peer-ip=198.51.100.22-198.51.100.255",
    ]

"""`etapalvelu cluster-config`: the files it writes are accepted by HAProxy itself
(`haproxy -c`), and bad input stops it with exit status 2 and writes nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from signaling.cli.main import main

BASE = [
    "cluster-config",
    "--public-url", "https://etapalvelu.example.fi",
    "--database-url", "postgresql://etapalvelu@10.0.0.3:5432/etapalvelu",
    "--redis-url", "redis://10.0.0.2:6379/0",
]  # fmt: skip

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


def haproxy_check(config: Path) -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_haproxy
def test_plain_http_config_is_valid_and_complete(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    args = ["--signaling", "3", "--base-port", "9001", "--relay-nodes", "2", "--out", str(out)]
    assert main([*BASE, *args, "--stats-socket", str(tmp_path / "s.sock")]) == 0
    config = (out / "haproxy.cfg").read_text()
    haproxy_check(out / "haproxy.cfg")
    for line in (
        "balance leastconn",
        "option httpchk GET /readyz",
        "http-check expect status 200",
        "timeout tunnel 1h",
        "option forwardfor",
        "bind :80",
        "server signaling0 127.0.0.1:9001 check",
        "server signaling2 127.0.0.1:9003 check",
    ):
        assert line in config, line
    assert "ssl crt" not in config
    env = (out / "etapalvelu.env").read_text()
    assert "ETAPALVELU_RELAY_MODE=nodes" in env
    assert "ETAPALVELU_DATABASE_URL=postgresql://etapalvelu@10.0.0.3:5432/etapalvelu" in env
    assert "ETAPALVELU_REDIS_URL=redis://10.0.0.2:6379/0" in env
    assert "ETAPALVELU_RELAY_SECRET_FILE=" in env
    assert "--port %i" in (out / "etapalvelu-signaling@.service").read_text()
    assert "--control-port %i" in (out / "etapalvelu-relay@.service").read_text()
    # the UDP range split between the two nodes, without overlap
    assert (
        (out / "relay-7700.env")
        .read_text()
        .endswith("RELAY_PORT_MIN=40000\nRELAY_PORT_MAX=44999\n")
    )
    assert (
        (out / "relay-7701.env")
        .read_text()
        .endswith("RELAY_PORT_MIN=45000\nRELAY_PORT_MAX=49999\n")
    )
    assert "turn config" in (out / "DEPLOY.txt").read_text()


@needs_haproxy
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_termination_config_is_valid(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=etapalvelu.example.fi"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pem = tmp_path / "etapalvelu.pem"
    pem.write_text(cert.read_text() + key.read_text())
    out = tmp_path / "deploy"
    args = ["--tls-pem", str(pem), "--server", "10.0.0.11:8081", "--server", "10.0.0.12:8081"]
    assert main([*BASE, *args, "--stats-socket", str(tmp_path / "s.sock"), "--out", str(out)]) == 0
    config = (out / "haproxy.cfg").read_text()
    assert f"bind :443 ssl crt {pem}" in config
    assert "server signaling1 10.0.0.12:8081 check" in config
    assert "ETAPALVELU_RELAY_MODE=local" in (out / "etapalvelu.env").read_text()
    haproxy_check(out / "haproxy.cfg")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signaling", "0"], "--signaling 0: must be 1-64"),
        (["--base-port", "65535", "--signaling", "2"], "--base-port + --signaling - 1 65536"),
        (["--server", "10.0.0.1"], "--server '10.0.0.1': use HOST:PORT"),
        (["--server", "10.0.0.1:80", "--server", "10.0.0.1:80"], "given twice"),
        (["--relay-nodes", "2", "--relay-base-port", "8081"], "overlap the signaling ports"),
        (["--relay-nodes", "3", "--relay-port-min", "40000", "--relay-port-max", "40004"],
         "too small for 3 relay nodes"),
        (["--bind", "127.0.0.1"], "--bind '127.0.0.1': use ADDR:PORT"),
        (["--tls-pem", "relative.pem"], "--tls-pem 'relative.pem'"),
        (["--check-interval-ms", "5"], "--check-interval-ms 5"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "deploy"
    assert main([*BASE, *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--public-url", "etapalvelu.example.fi"),
        ("--database-url", "mysql://x@db/etapalvelu"),
        ("--redis-url", "http://10.0.0.2:6379"),
    ],
)
def test_bad_urls_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    args = list(BASE)
    args[args.index(option) + 1] = value
    out = tmp_path / "deploy"
    assert main([*args, "--out", str(out)]) == 2
    assert f"{option} {value!r}" in capsys.readouterr().err
    assert not out.exists()

"""`etapalvelu admin …` and `etapalvelu serve --demo` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.service import connect_socket, http_login

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def etapalvelu(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signaling", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def in_process(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> str:
    import io

    from signaling.cli.main import main

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        assert main(args) == 0
    finally:
        sys.stdin = saved
    return capsys.readouterr().out


def test_admin_cli_manages_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    # The console script as a real process for the main path ...
    added = etapalvelu(
        "admin", "office", "add", "--name", "Sello", "--municipality", "Espoo", "--json", *data
    )
    assert added.returncode == 0, added.stderr
    office = json.loads(added.stdout)[0]

    kiosk = etapalvelu("admin", "endpoint", "add", "--office", "Sello", "--name", "K1", *data)
    assert kiosk.returncode == 0, kiosk.stderr
    credential = re.search(r"credential: (\S+)", kiosk.stdout)
    assert credential and len(credential.group(1)) >= 40
    assert "shown only now" in kiosk.stdout

    user = etapalvelu(
        "admin", "user", "add", "--username", "vero1", "--display-name", "Veera Vero",
        "--role", "expert", "--authority", "vero", "--language", "fin", "--language", "fss",
        "--password-stdin", *data, stdin="hyvä salasana\n",
    )  # fmt: skip
    assert user.returncode == 0, user.stderr

    # ... and in-process (same code path) for the rest, to keep the suite quick.
    in_process(
        ["admin", "user", "add", "--username", "clerk1", "--display-name", "C", "--role",
         "clerk", "--office", str(office["id"]), "--password-stdin", *data],
        capsys,
        stdin="toinen salasana\n",
    )  # fmt: skip
    users = {
        u["username"]: u
        for u in json.loads(in_process(["admin", "user", "list", "--json", *data], capsys))
    }
    assert users["vero1"]["authorities"] == ["vero"]
    assert users["vero1"]["languages"] == ["fin", "fss"]
    assert users["clerk1"]["office_id"] == office["id"]
    table = in_process(["admin", "user", "list", *data], capsys)
    assert "USERNAME" in table and "vero1" in table and "fin,fss" in table
    authorities = json.loads(in_process(["admin", "authority", "list", "--json", *data], capsys))
    assert {"kela", "rakennusvalvonta", "migri"} <= {a["code"] for a in authorities}

    disabled = etapalvelu("admin", "user", "disable", str(users["vero1"]["id"]), *data)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    listed = json.loads(in_process(["admin", "user", "list", "--json", *data], capsys))
    assert not next(u for u in listed if u["username"] == "vero1")["enabled"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            [
                "user",
                "add",
                "--username",
                "x1",
                "--display-name",
                "X",
                "--role",
                "expert",
                "--authority",
                "nope",
                "--password-stdin",
            ],
            "salasana1\n",
            "no authority nope",
        ),
        (
            [
                "user",
                "add",
                "--username",
                "x1",
                "--display-name",
                "X",
                "--role",
                "expert",
                "--language",
                "FIN",
                "--password-stdin",
            ],
            "salasana1\n",
            "ISO 639-3",
        ),
        (
            [
                "user",
                "add",
                "--username",
                "x1",
                "--display-name",
                "X",
                "--role",
                "clerk",
                "--password-stdin",
            ],
            "salasana1\n",
            "clerk belongs to an office",
        ),
        (
            [
                "user",
                "add",
                "--username",
                "x1",
                "--display-name",
                "X",
                "--role",
                "admin",
                "--password-stdin",
            ],
            "short\n",
            "at least 8",
        ),
        (
            ["user", "add", "--username", "x1", "--display-name", "X", "--role", "admin"],
            "",
            "--password-stdin",
        ),
        (["endpoint", "add", "--office", "Nowhere", "--name", "K"], None, "no office 'Nowhere'"),
        (["user", "disable", "4242"], None, "no user 4242"),
        (
            ["user", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/none"],
            None,
            "cannot open the database",
        ),
    ],
)
def test_admin_cli_refusals_exit_2_with_one_line(
    tmp_path: Path,
    args: list[str],
    stdin: str | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In-process (the same code path as the console script) to keep the suite quick.
    import io

    from signaling.cli.main import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
    status = main(["admin", *args, "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("config", "env", "flags", "message"),
    [
        ("max_message_bytes = 'big'\n", {}, [], "max_message_bytes: Input should be a valid"),
        ("port = \n", {}, [], "is not valid TOML"),
        ("colour = 'blue'\n", {}, [], "colour: Extra inputs are not permitted"),
        (None, {"ETAPALVELU_MAX_MESSAGE_BYTES": "5"}, [], "max_message_bytes"),
        # a chat history page would not fit in one event
        (None, {"ETAPALVELU_MAX_MESSAGE_BYTES": "20000"}, [], "max_message_bytes"),
        # larger than the database's INTEGER columns that store document sizes
        (None, {"ETAPALVELU_MAX_DOCUMENT_BYTES": str(2**31)}, [], "max_document_bytes"),
        (None, {}, ["--ice-address", "not-an-ip"], "is not an IP address"),
        (None, {}, ["--tls-cert", "/nonexistent.pem"], "tls_cert and tls_key"),
        (None, {}, ["--database-url", "mysql://db/x"], "unsupported database"),
        (None, {}, ["--port", "70000"], "port"),
        (
            None,
            {},
            ["--database-url", "postgresql://nobody@127.0.0.1:1/none"],
            "cannot open the database postgresql://nobody@127.0.0.1:1/none",
        ),
    ],
)
def test_bad_configuration_exits_2_without_traceback(
    tmp_path: Path,
    config: str | None,
    env: dict[str, str],
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from signaling.cli.main import main

    # Each case is refused before anything listens (no --port: a flag would beat the file).
    args = ["serve", "--data-dir", str(tmp_path / "data"), *flags]
    if config is not None:
        path = tmp_path / "settings.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err
    assert "Traceback" not in err


def test_bad_configuration_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("port = [\n")
    result = etapalvelu("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("etapalvelu: config file") and "Traceback" not in result.stderr


class ServeProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.banner: list[str] = []

    async def read_banner(self) -> str:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), 60)
            if not line:
                raise AssertionError("serve exited: " + "".join(self.banner))
            self.banner.append(line.decode())
            if line.startswith(b"Press Ctrl+C"):
                return "".join(self.banner)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return int(self.process.returncode or 0)


@pytest_asyncio.fixture
async def start_serve(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[ServeProcess] = []

    async def start(*extra: str) -> tuple[ServeProcess, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signaling",
            "serve",
            "--demo",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(tmp_path / "data"),
            "--ice-address",
            "127.0.0.1",
            *extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        serve = ServeProcess(process)
        started.append(serve)
        return serve, await serve.read_banner()

    yield start
    for serve in started:
        await serve.stop()


def demo_logins(banner: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\S+)\s+password (\S+)", banner, re.MULTILINE))


@pytest.mark.slow
async def test_serve_demo_lets_each_role_in_and_shows_presence(start_serve: Any) -> None:
    serve, banner = await start_serve()
    base = re.search(r"running at (http://127\.0\.0\.1:\d+)/", banner)
    assert base, banner
    base_url = base.group(1)
    kiosk_url = re.search(r"kiosk:\s+(\S+)", banner)
    assert kiosk_url
    fragment = dict(p.split("=", 1) for p in kiosk_url.group(1).split("#", 1)[1].split("&"))
    logins = demo_logins(banner)
    assert set(logins) == {"kela", "rakennus", "tulkki", "sihteeri", "admin"}
    assert "DEMO MODE" in banner
    for path in ("/expert", "/interpreter", "/admin", "/kiosk", "/healthz"):
        async with aiohttp.ClientSession() as http, http.get(base_url + path) as response:
            assert response.status == 200, path

    kiosk = await connect_socket(
        base_url, {"endpoint_id": int(fragment["endpoint"]), "credential": fragment["credential"]}
    )
    clients = [kiosk]
    try:
        roles = {}
        for username, password in logins.items():
            body = await http_login(base_url, username, password)
            client = await connect_socket(base_url, {"token": body["token"]})
            clients.append(client)
            whoami = await client.call("session:whoami", {})
            roles[username] = whoami["principal"]["role"]
            if username != "admin" and roles[username] in ("expert", "interpreter"):
                assert (await client.call("presence:set", {"status": "available"}))["ok"]
        assert roles == {
            "kela": "expert",
            "rakennus": "expert",
            "tulkki": "interpreter",
            "sihteeri": "clerk",
            "admin": "admin",
        }
        for client in clients[1:]:
            snapshot = await client.call("presence:get", {})
            assert snapshot["ok"] is True
            users = {u["name"]: u for u in snapshot["users"]}
            assert len(users) == 3 and all(u["online"] for u in users.values())
            assert all(u["status"] == "available" for u in users.values())
            assert [e["presence"] for e in snapshot["endpoints"]] == ["online"]
        assert (await kiosk.call("session:whoami", {}))["principal"]["role"] == "endpoint"
    finally:
        for client in clients:
            await client.disconnect()
    assert await serve.stop() == 0

    # Demo mode is idempotent: a restart on the same data reuses the same rows.
    _serve2, banner2 = await start_serve()
    assert demo_logins(banner2) == logins
    assert re.search(r"kiosk:\s+\S+#endpoint=1&", banner2)


@pytest.mark.slow
def test_bench_signaling_prints_baseline_and_json() -> None:
    result = etapalvelu(
        "bench", "signaling", "--clients", "6", "--seconds", "1", "--workers", "2",
        "--interval", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("baseline: 1 client") for line in lines)
    figures = json.loads(lines[-1])
    assert figures["clients"] == 6 and figures["errors"] == 0
    assert figures["events"] > 0
    assert figures["rtt_ms"]["p50"] > 0 and figures["rtt_ms"]["p99"] >= figures["rtt_ms"]["p50"]
    assert figures["baseline_rtt_ms"]["clients"] == 1
    assert figures["server_rss_mb"] > 0


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.slow
async def test_serve_over_tls(start_serve: Any, tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    _serve, banner = await start_serve("--tls-cert", str(cert), "--tls-key", str(key))
    base = re.search(r"running at (https://127\.0\.0\.1:\d+)/", banner)
    assert base, banner
    context = ssl.create_default_context(cafile=str(cert))
    async with (
        aiohttp.ClientSession() as http,
        http.get(base.group(1) + "/healthz", ssl=context) as response,
    ):
        assert response.status == 200


def test_unusable_tls_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from signaling.cli.main import main

    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    assert main(["serve", "--tls-cert", str(bogus), "--tls-key", str(bogus)]) == 2
    assert "cannot load TLS certificate/key" in capsys.readouterr().err

"""Real coturn (Debian's /usr/bin/turnserver) on loopback, configured by `turn config`.

The generated configuration is used as is; only what a loopback test needs is appended:
peers on 127.0.0.1 (denied in production), a pid file and user database in the temporary
directory, and no stdout logging.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.net import LOOPBACK, free_port
from turn_config.coturn_config import CoturnOptions, render

TURNSERVER = "/usr/bin/turnserver"
REALM = "turn.etapalvelu.test"
TEST_ONLY_LINES = """
# --- test-only additions: peers on loopback ----------------------------------
allow-loopback-peers
allowed-peer-ip=127.0.0.1
no-stdout-log
verbose
"""
# coturn opens an SQLite user database even when every secret is in the file; two auth threads
# creating its schema at once answer the first requests with 401 ("database is locked").
# Debian ships the database ready-made; the tests make their own from the packaged schema.
COTURN_SCHEMA = Path("/usr/share/coturn/schema.sql")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Etäpalvelu test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _port_outside(low: int, high: int, taken: set[int], kind: int) -> int:
    while True:
        port = free_port(kind)
        if not low <= port <= high and port not in taken:
            return port


@dataclass
class Coturn:
    """One turnserver process; `start` and `stop` may be called again (e.g. for rotation)."""

    directory: Path
    tls: TlsFiles
    secrets: list[str]
    min_port: int = 40000
    max_port: int = 40999
    port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)
    # `--external-ip` values, and generated lines to leave out (a test that needs a denied
    # range open, e.g. loopback standing in for public addresses).
    external_ips: list[str] = field(default_factory=list)
    omit_lines: tuple[str, ...] = ()

    @property
    def log_path(self) -> Path:
        return self.directory / f"turn-{self.starts}.log"

    @property
    def conf_path(self) -> Path:
        return self.directory / f"turnserver-{self.starts}.conf"

    def urls(self) -> dict[str, str]:
        return {
            "UDP": f"turn:{LOOPBACK}:{self.port}?transport=udp",
            "TCP": f"turn:{LOOPBACK}:{self.port}?transport=tcp",
            "TLS": f"turns:{LOOPBACK}:{self.tls_port}?transport=tcp",
        }

    def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        if not self.port:
            taken: set[int] = set()
            # Both the UDP and the TCP side of the plain port must be free.
            while True:
                self.port = _port_outside(self.min_port, self.max_port, taken, socket.SOCK_STREAM)
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                        probe.bind((LOOPBACK, self.port))
                    break
                except OSError:
                    taken.add(self.port)
            taken.add(self.port)
            self.tls_port = _port_outside(self.min_port, self.max_port, taken, socket.SOCK_STREAM)
        options = CoturnOptions(
            realm=REALM,
            secrets=list(self.secrets),
            cert=self.tls.cert,
            pkey=self.tls.key,
            listening_ips=[LOOPBACK],
            relay_ips=[LOOPBACK],
            port=self.port,
            tls_port=self.tls_port,
            min_port=self.min_port,
            max_port=self.max_port,
            log_file=str(self.log_path),
            external_ips=list(self.external_ips),
        )
        kept = [line for line in render(options).splitlines() if line not in self.omit_lines]
        text = "\n".join(kept) + "\n" + TEST_ONLY_LINES
        text += f"pidfile={self.directory / 'turnserver.pid'}\n"
        text += f"userdb={self._user_database()}\n"
        self.conf_path.write_text(text)
        self.process = subprocess.Popen(
            [TURNSERVER, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
        )
        self._wait_listening()

    def _user_database(self) -> Path:
        path = self.directory / "turndb"
        if not path.exists():
            with sqlite3.connect(path) as db:
                db.executescript(COTURN_SCHEMA.read_text())
            db.close()
        return path

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited {self.process.returncode}:\n{self.log()}")
            if (
                _accepts(self.port)
                and _accepts(self.tls_port)
                and "Total General servers" in self.log()
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"turnserver did not start listening:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def peer_packets_sent(self, user: str, within: float = 10.0) -> int:
        """Packets coturn relayed to peers for `user` (from the usage line logged at session
        end; UDP sessions end a moment after their allocation is deleted)."""
        pattern = re.compile(
            r"peer usage: realm=<[^>]*>, username=<\d+:" + re.escape(user) + r">, "
            r"rp=\d+, rb=\d+, sp=(\d+)"
        )
        deadline = time.monotonic() + within
        while True:
            found = [int(m.group(1)) for m in pattern.finditer(self.log())]
            if found:
                return max(found)
            if time.monotonic() > deadline:
                raise AssertionError(f"coturn logged no usage for {user}:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False

"""Fixtures for the TURN suite: TLS files and a real coturn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.turn_config.coturn_server import TURNSERVER, Coturn, TlsFiles, make_tls_files

OLD_SECRET = "old-secret-0123456789abcdef"
NEW_SECRET = "new-secret-fedcba9876543210"


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
def coturn(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Coturn]:
    """coturn listing the new and the old secret (the middle of a rotation)."""
    if not Path(TURNSERVER).exists():
        pytest.fail("coturn is missing: run scripts/test, which installs it")
    server = Coturn(tmp_path, tls_files, [NEW_SECRET, OLD_SECRET])
    server.start()
    try:
        yield server
    finally:
        server.stop()

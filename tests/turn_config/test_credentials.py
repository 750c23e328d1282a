from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.config import Settings
from turn_config.credentials import (
    ice_servers_for,
    mint_credential,
    password_for,
    read_secret_file,
    safe_user_label,
)
from turn_config.errors import CredentialError, TurnUrlError

SECRET = "old-secret-0123456789abcdef"


def test_known_answer_matches_openssl() -> None:
    # printf '1700000600:alice' | openssl dgst -sha1 -hmac SECRET -binary | base64
    assert password_for(SECRET, "1700000600:alice") == "rqxMjgmEVNrJ2UCtqaHTthRHN40="


def test_username_carries_the_expiry() -> None:
    credential = mint_credential(SECRET, "alice", 600, now=1_700_000_000.7)
    assert credential.username == "1700000600:alice"
    assert credential.expires_at == 1_700_000_600
    assert credential.password == "rqxMjgmEVNrJ2UCtqaHTthRHN40="
    assert credential.rest_api_response(["turn:t.example.fi"]) == {
        "username": "1700000600:alice",
        "password": "rqxMjgmEVNrJ2UCtqaHTthRHN40=",
        "ttl": 600,
        "uris": ["turn:t.example.fi"],
    }


@pytest.mark.parametrize(
    ("secret", "user", "ttl", "message"),
    [
        ("", "alice", 60, "the TURN secret is empty"),
        ("short", "alice", 60, "the TURN secret is too short (5 characters"),
        ("has space 0123456789", "alice", 60, "must not contain spaces"),
        ("hash#0123456789abcdef", "alice", 60, "must not contain spaces, '#'"),
        (SECRET, "", 60, "is not usable in a TURN user name"),
        (SECRET, "kiosk:3", 60, "no ':', which separates the expiry"),
        (SECRET, "x" * 129, 60, "is not usable"),
        (SECRET, "alice", 0, "TTL 0 must be a whole number of seconds"),
        (SECRET, "alice", 10**9, "TTL 1000000000 must be"),
    ],
)
def test_refuses_bad_inputs(secret: str, user: str, ttl: int, message: str) -> None:
    with pytest.raises(CredentialError) as caught:
        mint_credential(secret, user, ttl)
    assert message in str(caught.value)


def test_secret_file_lists_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("# rotated 2026-11\nnew-secret-fedcba9876543210\n\n" + SECRET + "\n")
    assert read_secret_file(path) == ["new-secret-fedcba9876543210", SECRET]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no secret"),
        (b"# only a comment\n", "holds no secret"),
        (b"tiny\n", "too short"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
    ],
)
def test_bad_secret_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "secrets"
    path.write_bytes(content)
    with pytest.raises(CredentialError) as caught:
        read_secret_file(path)
    assert message in str(caught.value)


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="cannot read secret file"):
        read_secret_file(tmp_path / "absent")


def test_ice_servers_for_a_participant() -> None:
    settings = Settings(
        stun_urls=["stun:turn.example.fi:3478"],
        turn_urls=["turn:turn.example.fi:3478?transport=udp", "turns:turn.example.fi:443"],
        turn_secrets=["new-secret-fedcba9876543210", SECRET],
        turn_credential_ttl=300,
    )
    servers = ice_servers_for(settings, "kiosk:7", now=1_700_000_000)
    assert servers[0] == {"urls": ["stun:turn.example.fi:3478"]}
    turn = servers[1]
    assert turn["urls"] == settings.turn_urls
    assert turn["username"] == "1700000300:kiosk_7"
    expected = hmac.new(b"new-secret-fedcba9876543210", b"1700000300:kiosk_7", hashlib.sha1)
    assert turn["credential"] == base64.b64encode(expected.digest()).decode()


def test_ice_servers_without_turn_is_stun_only_or_empty() -> None:
    assert ice_servers_for(Settings(), "u") == []
    assert ice_servers_for(Settings(stun_urls=["stun:s.example.fi"]), "u") == [
        {"urls": ["stun:s.example.fi"]}
    ]


def test_ice_servers_refuses_misconfiguration() -> None:
    with pytest.raises(CredentialError, match="turn_secrets is empty"):
        ice_servers_for(Settings(turn_urls=["turn:t.example.fi"]), "u")
    with pytest.raises(CredentialError, match="turn_urls holds a STUN URL"):
        ice_servers_for(Settings(turn_urls=["stun:t.example.fi"], turn_secrets=[SECRET]), "u")
    with pytest.raises(CredentialError, match="stun_urls holds a TURN URL"):
        ice_servers_for(Settings(stun_urls=["turn:t.example.fi"]), "u")
    with pytest.raises(TurnUrlError, match="port 70000 is outside"):
        ice_servers_for(Settings(turn_urls=["turn:t:70000"], turn_secrets=[SECRET]), "u")
    with pytest.raises(CredentialError, match="too short"):
        ice_servers_for(Settings(turn_urls=["turn:t.example.fi"], turn_secrets=["abc"]), "u")


@given(st.text(max_size=200))
def test_any_participant_id_becomes_a_usable_label(user_id: str) -> None:
    label = safe_user_label(user_id)
    credential = mint_credential(SECRET, label, 60, now=0)
    assert credential.username.count(":") == 1

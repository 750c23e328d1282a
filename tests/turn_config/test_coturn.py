"""Against a real coturn on loopback, configured by `turn config`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aioice import stun, turn

from tests.support.net import LOOPBACK, free_port
from tests.turn_config.conftest import NEW_SECRET, OLD_SECRET
from tests.turn_config.coturn_server import Coturn
from tests.turn_config.turn_cli import run_turn as main
from turn_config.allocation_check import CheckResult, check_urls
from turn_config.credentials import mint_credential
from turn_config.urls import parse_ice_url


async def _check_all(server: Coturn, username: str, password: str) -> dict[str, CheckResult]:
    urls = [parse_ice_url(url) for url in server.urls().values()]
    results = await check_urls(urls, username, password, 5.0, str(server.tls.ca))
    return {r.transport: r for r in results}


def _secret_file(tmp_path: Path, *secrets: str) -> Path:
    path = tmp_path / f"secret-{len(list(tmp_path.iterdir()))}"
    path.write_text("\n".join(secrets) + "\n")
    return path


def test_turn_check_reports_udp_tcp_tls_ok(
    coturn: Coturn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["turn", "check", *coturn.urls().values(), "--secret-file",
         str(_secret_file(tmp_path, NEW_SECRET)), "--ca-file", str(coturn.tls.ca), "--json"]
    )  # fmt: skip
    results = json.loads(capsys.readouterr().out)
    assert status == 0, results
    assert [r["transport"] for r in results] == ["UDP", "TCP", "TLS"]
    for result in results:
        assert result["ok"] and result["outcome"] == "ok"
        assert result["relayed_address"].startswith(f"{LOOPBACK}:")
        port = int(result["relayed_address"].rsplit(":", 1)[1])
        assert coturn.min_port <= port <= coturn.max_port
    assert "username=<" in coturn.log() and ":turn-check>" in coturn.log()


def test_turn_check_human_output_names_failures(
    coturn: Coturn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed_udp = f"turn:{LOOPBACK}:{free_port()}?transport=udp"
    closed_tcp = f"turn:{LOOPBACK}:{free_port()}?transport=tcp"
    status = main(
        ["turn", "check", coturn.urls()["UDP"], coturn.urls()["TLS"], closed_udp, closed_tcp,
         "--secret-file", str(_secret_file(tmp_path, NEW_SECRET)), "--timeout", "1.5",
         "--user", "human"]
    )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0].startswith("ok   UDP")
    # No --ca-file: the test CA is not trusted, and the check says so.
    assert out[1].startswith("FAIL TLS") and "TLS certificate not trusted" in out[1]
    assert out[2].startswith("FAIL UDP") and "no answer within 1.5 s" in out[2]
    assert out[3].startswith("FAIL TCP") and "connection refused" in out[3]
    assert out[-1] == "working transports: UDP"


async def test_expired_credential_is_refused_by_coturn(coturn: Coturn) -> None:
    expired = mint_credential(NEW_SECRET, "late", 60, now=time.time() - 120)
    results = await _check_all(coturn, expired.username, expired.password)
    for result in results.values():
        assert not result.ok
        assert result.outcome == "unauthorized", result
        assert result.detail.startswith("401 Unauthorized")


async def test_wrong_secret_is_refused_by_coturn(coturn: Coturn) -> None:
    forged = mint_credential("not-the-secret-0123456789", "mallory", 600)
    results = await _check_all(coturn, forged.username, forged.password)
    assert {r.outcome for r in results.values()} == {"unauthorized"}
    # A valid credential presented under another user name is refused too.
    valid = mint_credential(NEW_SECRET, "alice", 600)
    swapped = await _check_all(coturn, valid.username.replace("alice", "bob"), valid.password)
    assert {r.outcome for r in swapped.values()} == {"unauthorized"}


async def test_rotation_old_secret_works_only_while_listed(coturn: Coturn) -> None:
    old = mint_credential(OLD_SECRET, "before-rotation", 600)
    new = mint_credential(NEW_SECRET, "after-rotation", 600)
    assert all(r.ok for r in (await _check_all(coturn, old.username, old.password)).values())
    assert all(r.ok for r in (await _check_all(coturn, new.username, new.password)).values())

    # Rotation's last step: the old secret leaves coturn's configuration.
    coturn.stop()
    coturn.secrets = [NEW_SECRET]
    await asyncio.to_thread(coturn.start)
    assert OLD_SECRET not in coturn.conf_path.read_text()
    results = await _check_all(coturn, old.username, old.password)
    assert {r.outcome for r in results.values()} == {"unauthorized"}
    new_again = mint_credential(NEW_SECRET, "after-rotation-2", 600)
    assert all(
        r.ok for r in (await _check_all(coturn, new_again.username, new_again.password)).values()
    )


async def test_generated_config_denies_private_peers(coturn: Coturn) -> None:
    """CreatePermission (via ChannelBind) towards denied ranges gets 403 from coturn."""
    credential = mint_credential(NEW_SECRET, "peer-probe", 600)
    loop = asyncio.get_running_loop()
    server = (LOOPBACK, coturn.port)
    transport, client = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(
            server, username=credential.username, password=credential.password,
            lifetime=600, channel_refresh_time=500,
        ),
        remote_addr=server,
    )  # fmt: skip
    try:
        await client.connect()
        channel = 0x4000
        for peer in ["10.1.2.3", "169.254.169.254", "192.168.1.1", "100.64.0.1", "224.0.0.1"]:
            with pytest.raises(stun.TransactionFailed) as caught:
                await client.channel_bind(channel, (peer, 9))
            assert caught.value.response.attributes["ERROR-CODE"][0] == 403, peer
            channel += 1
        # The test-only allowance: the loopback address of the test's own peers.
        await client.channel_bind(channel, (LOOPBACK, 9))
    finally:
        if client.refresh_task is not None:
            client.refresh_task.cancel()
        transport.close()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("turn:127.0.0.1:99999", "port 99999 is outside"),
        ("http://127.0.0.1", "the scheme must be"),
        ("stun:127.0.0.1", "turn check needs turn: or turns:"),
        ("turn:[::1", "unclosed '['"),
        ("turns:127.0.0.1?transport=udp", "turns: runs over TLS"),
    ],
)
def test_turn_check_refuses_malformed_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    status = main(
        ["turn", "check", target, "--secret-file", str(_secret_file(tmp_path, NEW_SECRET))]
    )
    assert status == 2
    assert message in capsys.readouterr().err


def test_turn_check_needs_a_password_with_username(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn", "check", "turn:127.0.0.1", "--username", "1:a"]) == 2
    assert "--username needs --password" in capsys.readouterr().err


def test_turn_check_with_a_given_credential(
    coturn: Coturn, capsys: pytest.CaptureFixture[str]
) -> None:
    credential = mint_credential(NEW_SECRET, "given", 600)
    base = ["turn", "check", coturn.urls()["UDP"], coturn.urls()["TCP"], "--json"]
    good = [*base, "--username", credential.username, "--password", credential.password]
    assert main(good) == 0
    assert all(r["ok"] for r in json.loads(capsys.readouterr().out))
    bad = [*base, "--username", credential.username, "--password", "x" + credential.password]
    assert main(bad) == 1
    assert {r["outcome"] for r in json.loads(capsys.readouterr().out)} == {"unauthorized"}


def test_coturn_understands_every_generated_line(coturn: Coturn) -> None:
    from turn_config.peer_ranges import DENIED_PEER_RANGES

    log = coturn.log()
    # coturn skips what it does not know with this message, and goes on running.
    assert "Bad configuration format" not in log
    assert "Wrong address format" not in log
    # The special-purpose ranges (::/128 as a comment only: coturn would read "::-::" as every
    # address) and the server's own address (127.0.0.1 here).
    denied = [x for x in coturn.conf_path.read_text().splitlines() if x.startswith("denied-")]
    assert denied[-1] == f"denied-peer-ip={LOOPBACK}"
    assert "denied-peer-ip=::-::" not in denied
    assert log.count("Black listing: ") == len(DENIED_PEER_RANGES) == len(denied)
    assert "TLS cipher suite: ECDHE-ECDSA-AES128-GCM-SHA256" in log
    assert "no-tcp-relay: TCP relay endpoints are not allowed" in log

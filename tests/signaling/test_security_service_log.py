"""Security finding 5: the service log's integrity.

A service record is filed only when signed with the expert's registered key, and the head of
the hash chain is anchored outside the database by checkpoints signed with the server's key
(signaling/records/log_checkpoints.py). Someone with write access to the database — here: direct SQL
on the real SQLite file or PostgreSQL database after the service has run — who removes the
newest entries, empties the log, or rewrites an entry and recomputes every hash after it is
caught by the real `etapalvelu admin log verify` (run as a subprocess), which exits non-zero
naming the problem; an authority's own copy of the checkpoints catches it even when the
server's checkpoint file was cut back too.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from signaling.db import create_engine
from signaling.records.log_checkpoints import Head, sign_checkpoint
from signaling.records.record_signing import sign_record
from signaling.records.service_log import entry_hash, record_document
from signaling.wire.canonical import canonical_json
from tests.signaling.flow_support import call
from tests.support.service import LiveService, make_live_service
from tests.support.signing import file_signed_over_socket, register_key_over_socket

ROOT = Path(__file__).resolve().parents[2]
FORM = {"service_type": "general_advice", "outcome": "resolved"}


async def count_entries(live: LiveService) -> int:
    async with live.services.sessions() as session:
        return int((await session.execute(text("SELECT count(*) FROM service_log"))).scalar_one())


async def ended_call(live: LiveService, kiosk: Any, expert: Any) -> int:
    taken = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    assert taken["ok"], taken
    took = await call(expert, "queue:take_next", {})
    assert took["ok"], took
    call_id = int(took["call"]["id"])
    assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]
    return call_id


def checkpoint_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- filing ------------------------------------------------------------------------------------


async def test_unsigned_records_are_refused_and_nothing_is_appended(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    call_id = await ended_call(live, kiosk, expert)
    form = {"call_id": call_id, **FORM}

    # No key registered: refused, with or without a signature, and told to register one.
    for payload in (
        form,
        {**form, "signature": sign_record({"x": 1}, Ed25519PrivateKey.generate())},
    ):
        refused = await call(expert, "record:file", payload)
        assert refused["error"]["reason"] == "no_signing_key", refused
        assert "register" in refused["error"]["message"]
    assert await count_entries(live) == 0

    key = await register_key_over_socket(expert, live.demo.user_ids["kela"])
    unsigned = await call(expert, "record:file", form)
    assert unsigned["error"]["reason"] == "signature_required", unsigned
    draft = await call(expert, "record:draft", form)
    foreign = sign_record(draft["body"], Ed25519PrivateKey.generate())
    forged = await call(expert, "record:file", {**form, "signature": foreign})
    assert forged["error"]["reason"] == "bad_signature", forged
    assert await count_entries(live) == 0
    synced = await call(expert, "flow:sync")
    assert [c["id"] for c in synced["unfiled_calls"]] == [call_id]

    filed = await file_signed_over_socket(expert, key, form)
    assert filed["ok"], filed
    entry = filed["entry"]
    assert entry["seq"] == 1 and entry["signature"] and entry["signer_public_key"]
    assert await count_entries(live) == 1

    # The ack came after the checkpoint of the new head was appended outside the database.
    settings = live.settings
    lines = checkpoint_lines(settings.checkpoint_file_path)
    assert lines[-1]["checkpoint"]["seq"] == 1
    assert lines[-1]["checkpoint"]["head_hash"] == entry["hash"]
    assert lines[-1]["checkpoint"]["log_id"] == settings.log_id
    assert stat.S_IMODE(settings.checkpoint_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.checkpoint_file_path.stat().st_mode) & 0o077 == 0


# --- tampering -----------------------------------------------------------------------------------


@dataclass
class BuiltLog:
    data_dir: Path
    url: str
    hashes: list[str]  # hash of entry 1, 2, ...

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real command line, as an operator or an authority runs it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETAPALVELU_")}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "signaling",
                "admin",
                "log",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--database-url",
                self.url,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


async def build_log(tmp_path: Path, url: str) -> BuiltLog:
    """Run the service and serve three customers, the second with a document received in the
    call: entries 1 (record), 2 (document receipt, unsigned: the server writes it), 3 and 4
    (records). The service stops at the end of the block (a final checkpoint)."""
    async with make_live_service(tmp_path, database_url=url) as live:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        key = await register_key_over_socket(expert, live.demo.user_ids["kela"])
        hashes: list[str] = []
        for number in range(3):
            if number == 1:
                taken = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
                assert taken["ok"], taken
                call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
                async with live.services.sessions() as session:
                    doc = await record_document(
                        session,
                        call_id=call_id,
                        sha256="ab" * 32,
                        size=1234,
                        type="application/pdf",
                        sender=f"endpoint-{live.demo.endpoint_id}",
                        receiver=f"user-{live.demo.user_ids['kela']}",
                        received_at=datetime.now(UTC),
                    )
                    await session.commit()
                hashes.append(doc["hash"])
                assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]
            else:
                call_id = await ended_call(live, kiosk, expert)
            filed = await file_signed_over_socket(expert, key, {"call_id": call_id, **FORM})
            assert filed["ok"], filed
            hashes.append(filed["entry"]["hash"])
        data_dir = live.settings.data_dir
    return BuiltLog(data_dir, url, hashes)


async def tamper(url: str, attack: str) -> None:
    """What someone with write access to the database does, in plain SQL."""
    engine = create_engine(url)
    try:
        async with engine.begin() as db:
            # The append-only triggers are the first thing he removes.
            if db.dialect.name == "sqlite":
                await db.execute(text("DROP TRIGGER service_log_no_update"))
                await db.execute(text("DROP TRIGGER service_log_no_delete"))
            else:
                await db.execute(text("DROP TRIGGER service_log_append_only ON service_log"))
            if attack == "truncate":
                await db.execute(text("UPDATE calls SET record_seq = NULL WHERE record_seq > 2"))
                await db.execute(text("DELETE FROM service_log WHERE seq > 2"))
            elif attack == "empty":
                await db.execute(text("UPDATE calls SET record_seq = NULL"))
                await db.execute(text("DELETE FROM service_log"))
            else:
                await rechain(db, attack)
    finally:
        await engine.dispose()


async def rechain(db: Any, attack: str) -> None:
    """Rewrite one entry and recompute every hash from it on, so the chain holds again."""
    rows = (await db.execute(text("SELECT * FROM service_log ORDER BY seq"))).all()
    rewritten, new_prev = False, None
    for row in rows:
        record = json.loads(row.record)
        signature, signer = row.signature, row.signer_public_key
        if attack == "rewrite-document" and row.seq == 2:
            assert row.kind == "document" and signature is None
            record["sha256"] = "cd" * 32  # another document than the one received
            rewritten = True
        elif attack == "rewrite-record" and row.seq == 3:
            assert row.kind == "service" and signature is not None
            record["outcome"] = "referred"
            signature = signer = None  # the expert's signature would no longer hold
            rewritten = True
        if not rewritten:
            continue  # entries before the rewritten one stay as they are
        prev_hash = row.prev_hash if new_prev is None else new_prev
        new_prev = entry_hash(
            seq=row.seq,
            kind=row.kind,
            filed_at=row.filed_at,
            record=record,
            signature=signature,
            signer_public_key=signer,
            prev_hash=prev_hash,
        )
        await db.execute(
            text(
                "UPDATE service_log SET record = :record, signature = :signature, "
                "signer_public_key = :signer, prev_hash = :prev_hash, hash = :hash "
                "WHERE seq = :seq"
            ),
            {
                "record": canonical_json(record).decode("utf-8"),
                "signature": signature,
                "signer": signer,
                "prev_hash": prev_hash,
                "hash": new_prev,
                "seq": row.seq,
            },
        )


async def test_untouched_log_verifies(tmp_path: Path, database_url: str) -> None:
    built = await build_log(tmp_path, database_url)
    result = await asyncio.to_thread(built.cli, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"service log OK: 4 entries, head hash {built.hashes[-1]}" in result.stdout
    assert "checkpoints OK" in result.stdout and "anchors entry 4" in result.stdout
    assert "not yet anchored" not in result.stdout


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("truncate", "BROKEN at entry 3: the log ends at entry 2, but the checkpoint of"),
        ("empty", "the log is empty, but the checkpoint of"),
        ("rewrite-document", "the log was rewritten"),
        ("rewrite-record", "the log was rewritten"),
    ],
)
async def test_tampering_fails_verify(
    tmp_path: Path, database_url: str, attack: str, expected: str
) -> None:
    built = await build_log(tmp_path, database_url)
    await tamper(database_url, attack)
    result = await asyncio.to_thread(built.cli, "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout
    if attack == "truncate":
        assert "entries 3..4 were removed" in result.stdout
    if attack == "empty":
        assert "the log was emptied" in result.stdout
    if attack.startswith("rewrite"):
        # The chain itself is whole again: only the checkpoints can tell.
        report = json.loads((await asyncio.to_thread(built.cli, "verify", "--json")).stdout)
        assert report["ok"] is False and report["first_broken"]["seq"] >= 2
        assert report["entries"] == 4


async def test_authority_copy_catches_what_the_server_no_longer_shows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    built = await build_log(tmp_path, url)

    # The authority fetches the checkpoints and pins the server's public key once.
    exported = await asyncio.to_thread(built.cli, "export-checkpoints", "--json")
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads(exported.stdout)
    public_key = bundle["public_key"]
    assert "BEGIN PUBLIC KEY" in bundle["public_key_pem"]
    assert max(c["checkpoint"]["seq"] for c in bundle["checkpoints"]) == 4
    archive = tmp_path / "authority-checkpoints.jsonl"
    jsonl = await asyncio.to_thread(built.cli, "export-checkpoints")
    assert public_key in jsonl.stderr
    archive.write_text(jsonl.stdout, encoding="utf-8")
    full_export = tmp_path / "apudiaari.json"
    assert (
        await asyncio.to_thread(
            built.cli, "export", "--format", "json", "--output", str(full_export)
        )
    ).returncode == 0
    good = await asyncio.to_thread(
        built.cli,
        "verify",
        "--checkpoints",
        str(archive),
        "--public-key",
        public_key,
        "--export",
        str(full_export),
    )
    assert good.returncode == 0, good.stdout + good.stderr

    # The operator removes the newest entries and cuts the server's checkpoint file back to
    # match: the server's own verify cannot see it ...
    await tamper(url, "truncate")
    server_file = built.data_dir / "log-checkpoints.jsonl"
    kept = [
        line
        for line in server_file.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["checkpoint"]["seq"] <= 2
    ]
    server_file.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    local = await asyncio.to_thread(built.cli, "verify")
    assert local.returncode == 0, local.stdout

    # ... the authority's copy does, against the database and against a fresh export.
    theirs = await asyncio.to_thread(
        built.cli, "verify", "--checkpoints", str(archive), "--public-key", public_key
    )
    assert theirs.returncode == 1 and "entries 3..4 were removed" in theirs.stdout, theirs.stdout
    truncated_export = tmp_path / "apudiaari-later.json"
    await asyncio.to_thread(
        built.cli, "export", "--format", "json", "--output", str(truncated_export)
    )
    offline = await asyncio.to_thread(
        built.cli,
        "verify",
        "--checkpoints",
        str(archive),
        "--public-key",
        public_key,
        "--export",
        str(truncated_export),
    )
    assert offline.returncode == 1 and "were removed" in offline.stdout, offline.stdout

    # Re-signing with a key of his own does not help against the pinned key.
    forger = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(
        forger, log_id="etapalvelu", head=Head(2, built.hashes[1], 2), at=datetime.now(UTC)
    )
    forged_archive = tmp_path / "forged.jsonl"
    forged_archive.write_text(canonical_json(forged).decode() + "\n", encoding="utf-8")
    refused = await asyncio.to_thread(
        built.cli, "verify", "--checkpoints", str(forged_archive), "--public-key", public_key
    )
    assert refused.returncode == 1 and "not the trusted checkpoint key" in refused.stdout


async def test_forged_checkpoint_in_the_server_file_is_reported(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    built = await build_log(tmp_path, url)
    forged = sign_checkpoint(
        Ed25519PrivateKey.generate(),
        log_id="etapalvelu",
        head=Head(4, built.hashes[-1], 4),
        at=datetime.now(UTC),
    )
    server_file = built.data_dir / "log-checkpoints.jsonl"
    server_file.write_text(
        server_file.read_text(encoding="utf-8") + canonical_json(forged).decode() + "\n",
        encoding="utf-8",
    )
    result = await asyncio.to_thread(built.cli, "verify")
    assert result.returncode == 1 and "not the trusted checkpoint key" in result.stdout


async def test_checkpoint_command_writes_and_prints_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    built = await build_log(tmp_path, url)
    before = len(checkpoint_lines(built.data_dir / "log-checkpoints.jsonl"))
    result = await asyncio.to_thread(built.cli, "checkpoint", "--json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["checkpoint"]["seq"] == 4 and line["checkpoint"]["head_hash"] == built.hashes[-1]
    after = checkpoint_lines(built.data_dir / "log-checkpoints.jsonl")
    assert len(after) == before + 1 and after[-1] == line


async def test_document_receipts_are_anchored_by_the_periodic_checkpoint(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, log_checkpoint_seconds=0.2) as live:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        assert (await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
        call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
        async with live.services.sessions() as session:
            doc = await record_document(
                session,
                call_id=call_id,
                sha256="ef" * 32,
                size=1,
                type="image/png",
                sender="a",
                receiver="b",
                received_at=datetime.now(UTC),
            )
            await session.commit()
        path = live.settings.checkpoint_file_path
        for _ in range(100):
            if path.exists() and any(
                line["checkpoint"]["head_hash"] == doc["hash"] for line in checkpoint_lines(path)
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no checkpoint of the document receipt within 5 s")


def test_checkpoint_file_survives_a_torn_write_but_not_a_bad_line(tmp_path: Path) -> None:
    from signaling.records.log_checkpoints import (
        CheckpointSource,
        append_line,
        load_or_create_key,
        public_key_b64u,
    )

    key = load_or_create_key(tmp_path / "key.pem")
    path = tmp_path / "checkpoints.jsonl"
    now = datetime.now(UTC)
    append_line(path, sign_checkpoint(key, log_id="x", head=Head(1, "a" * 64, 1), at=now))
    with open(path, "ab") as fh:
        fh.write(b'{"checkpoint": {"seq"')  # the machine lost power mid-write
    append_line(path, sign_checkpoint(key, log_id="x", head=Head(2, "b" * 64, 2), at=now))
    source = CheckpointSource(path, frozenset({public_key_b64u(key)}), "x")
    checkpoints, problems, notes = source.load()
    assert [c.seq for c in checkpoints] == [1, 2] and problems == []
    assert "line 2 is not JSON" in notes[0]

    # A line that is JSON but no valid checkpoint is reported, not skipped.
    line = sign_checkpoint(key, log_id="x", head=Head(3, "c" * 64, 3), at=now)
    line["checkpoint"]["seq"] = 30
    append_line(path, line)
    append_line(path, sign_checkpoint(key, log_id="other", head=Head(3, "c" * 64, 3), at=now))
    _checkpoints, problems, _notes = source.load()
    assert "signature does not verify" in problems[0]
    assert "belongs to the log 'other'" in problems[1]


def test_server_key_is_made_once_private_and_readable_as_a_public_key(tmp_path: Path) -> None:
    from signaling.records.log_checkpoints import (
        load_or_create_key,
        parse_public_key,
        public_key_b64u,
        public_key_pem,
    )

    path = tmp_path / "sub" / "key.pem"
    first = public_key_b64u(load_or_create_key(path))
    assert public_key_b64u(load_or_create_key(path)) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["key.pem"]  # no temporary left
    pem = tmp_path / "pub.pem"
    pem.write_text(public_key_pem(first), encoding="utf-8")
    assert parse_public_key(first) == first
    assert parse_public_key(str(pem)) == first
    assert parse_public_key(str(path)) == first
    with pytest.raises(ValueError, match="base64url"):
        parse_public_key("not-a-key")

"""The service log (apudiaari): filing, signatures, the hash chain, tampering, the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.cli.main import main as cli_main
from signaling.db import create_engine, migrate, session_factory
from signaling.flow.calls import end_call
from signaling.flow.flow_common import FlowError
from signaling.flow.queues import take_next, take_walk_in_ticket
from signaling.records.record_signing import public_key_b64u, sign_record
from signaling.records.service_log import (
    GENESIS_HASH,
    draft_record,
    file_record,
    record_document,
    verify_chain,
)
from signaling.store.flow_models import Call, ServiceLogEntry
from signaling.store.models import User
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    build_world,
    call,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.service import LiveService
from tests.support.signing import file_signed

SHA = "ab" * 32


async def ended_call(world: World, kiosk: str = "kiosk", minutes: int = 0) -> int:
    start = T0 + timedelta(minutes=minutes)
    async with world.sessions() as session:
        await take_walk_in_ticket(session, getattr(world, kiosk), "kela", "fin", start)
        await session.commit()
        _ticket, created = await take_next(
            session, world.expert, None, None, start + timedelta(minutes=2)
        )
        row = await session.get(Call, created.id)
        assert row is not None
        await end_call(session, row, start + timedelta(minutes=9))
        await session.commit()
        return created.id


async def count_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int((await session.execute(text("SELECT count(*) FROM service_log"))).scalar_one())


async def register_key(world: World) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    async with world.sessions() as session:
        await session.execute(
            update(User)
            .where(User.id == world.expert.id)
            .values(signing_public_key=public_key_b64u(key))
        )
        await session.commit()
    return key


async def test_signed_record_with_documents_chains_and_verifies(world: World) -> None:
    call_id = await ended_call(world)
    key = await register_key(world)
    async with world.sessions() as session:
        doc = await record_document(
            session,
            call_id=call_id,
            sha256=SHA,
            size=1234,
            type="application/pdf",
            sender=f"endpoint-{world.kiosk.id}",
            receiver=f"user-{world.expert.id}",
            received_at=T0 + timedelta(minutes=5),
        )
        await session.commit()
    assert doc["seq"] == 1 and doc["prev_hash"] == GENESIS_HASH
    assert doc["body"]["sha256"] == SHA and "content" not in doc["body"]
    async with world.sessions() as session:
        body = await draft_record(session, world.expert, call_id, "housing_allowance", "pending")
        signature = sign_record(body, key)
        entry = await file_record(
            session, world.expert, call_id, "housing_allowance", "pending", signature, T0
        )
    assert (entry.seq, entry.prev_hash) == (2, doc["hash"])
    record = json.loads(entry.record)
    assert record["documents"][0]["sha256"] == SHA and record["documents"][0]["seq"] == 1
    assert (record["wait_seconds"], record["duration_seconds"]) == (120, 420)
    assert record["kind"] == "walk_in" and record["authority_code"] == "kela"
    assert record["office_id"] == world.office and record["endpoint_id"] == world.kiosk.id
    assert entry.signer_public_key is not None
    async with world.sessions() as session:
        report = await verify_chain(session)
        row = await session.get(Call, call_id)
    assert report.ok and report.entries == 2 and report.head_hash == entry.hash
    assert row is not None and row.record_seq == 2


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("active", "conflict", "call_active"),
        ("not_yours", "forbidden", "not_your_call"),
        ("service_type", "invalid", "unknown_service_type"),
        ("outcome", "invalid", "unknown_outcome"),
        ("twice", "conflict", "already_filed"),
        ("bad_signature", "invalid", "bad_signature"),
        ("no_key", "invalid", "no_signing_key"),
        ("no_key_unsigned", "invalid", "no_signing_key"),
        ("unsigned", "invalid", "signature_required"),
        ("missing", "not_found", None),
    ],
)
async def test_refused_filings_change_nothing(
    world: World, case: str, code: str, reason: str | None
) -> None:
    call_id = await ended_call(world)
    expert, service_type, outcome, signature = world.expert, "general_advice", "resolved", None
    if case == "active":
        async with world.sessions() as session:
            await take_walk_in_ticket(session, world.kiosk2, "kela", "fin", T0)
            await session.commit()
            _t, active = await take_next(session, world.expert2, None, None, T0)
        call_id, expert = active.id, world.expert2
    elif case == "not_yours":
        expert = world.expert2
    elif case == "service_type":
        service_type = "tax_card"  # the Tax Administration's, not Kela's
    elif case == "outcome":
        outcome = "great"
    elif case == "twice":
        key = await register_key(world)
        async with world.sessions() as session:
            body = await draft_record(session, expert, call_id, service_type, outcome)
        signature = sign_record(body, key)
        async with world.sessions() as session:
            await file_record(session, expert, call_id, service_type, outcome, signature, T0)
    elif case == "bad_signature":
        key = await register_key(world)
        async with world.sessions() as session:
            body = await draft_record(session, expert, call_id, service_type, outcome)
        body["outcome"] = "pending"  # signed something else than what is filed
        signature = sign_record(body, key)
    elif case == "no_key":
        signature = sign_record({"x": 1}, Ed25519PrivateKey.generate())
    elif case == "unsigned":
        await register_key(world)
    elif case == "missing":
        call_id = 999
    before = await count_entries(world.sessions)
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await file_record(session, expert, call_id, service_type, outcome, signature, T0)
    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert await count_entries(world.sessions) == before


async def test_document_receipts_are_validated(world: World) -> None:
    call_id = await ended_call(world)
    good: dict[str, Any] = {
        "call_id": call_id,
        "sha256": SHA,
        "size": 1,
        "type": "image/jpeg",
        "sender": "a",
        "receiver": "b",
        "received_at": T0,
    }
    for bad in (
        {"sha256": "AB" * 32},
        {"sha256": "ab"},
        {"size": -1},
        {"size": True},
        {"call_id": 999},
        {"received_at": T0.replace(tzinfo=None)},
        {"verdict": "maybe"},
    ):
        async with world.sessions() as session:
            with pytest.raises(ValueError):
                await record_document(session, **{**good, **bad})
    assert await count_entries(world.sessions) == 0


async def test_concurrent_appends_form_one_chain(world: World) -> None:
    call_id = await ended_call(world)

    async def append(i: int) -> int:
        async with world.sessions() as session:
            entry = await record_document(
                session,
                call_id=call_id,
                sha256=f"{i:064x}",
                size=i,
                type="image/png",
                sender="a",
                receiver="b",
                received_at=T0,
            )
            await session.commit()
            return int(entry["seq"])

    seqs = await asyncio.gather(*(append(i) for i in range(8)))
    assert sorted(seqs) == list(range(1, 9))
    async with world.sessions() as session:
        report = await verify_chain(session)
    assert report.ok and report.entries == 8


async def _three_entries(world: World) -> None:
    key = await register_key(world)
    for minutes, kiosk in ((0, "kiosk"), (20, "kiosk2"), (40, "kiosk3")):
        call_id = await ended_call(world, kiosk, minutes)
        async with world.sessions() as session:
            await file_signed(session, key, world.expert, call_id, "general_advice", "resolved", T0)


async def _tamper(world: World, *statements: str) -> None:
    async with world.sessions() as session:
        # Someone with write access to the database file removes the append-only guard first.
        await session.execute(text("DROP TRIGGER service_log_no_update"))
        await session.execute(text("DROP TRIGGER service_log_no_delete"))
        for statement in statements:
            await session.execute(text(statement))
        await session.commit()


async def test_the_database_refuses_updates_and_deletes(world: World) -> None:
    await _three_entries(world)
    for statement in (
        "UPDATE service_log SET month = '2020-01' WHERE seq = 2",
        "DELETE FROM service_log WHERE seq = 3",
    ):
        async with world.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
    assert await count_entries(world.sessions) == 3


@pytest.mark.parametrize(
    ("statements", "seq", "problem"),
    [
        (
            [
                "UPDATE service_log SET record = replace(record, "
                '\'"outcome":"resolved"\', \'"outcome":"referred"\') WHERE seq = 2'
            ],
            2,
            "hash mismatch",
        ),
        (["UPDATE service_log SET month = '2020-01' WHERE seq = 1"], 1, "month column"),
        (["DELETE FROM service_log WHERE seq = 2"], 3, "sequence gap"),
        (["UPDATE service_log SET signature = 'x' WHERE seq = 3"], 3, "hash mismatch"),
        (["UPDATE service_log SET signature = NULL WHERE seq = 3"], 3, "hash mismatch"),
        (["UPDATE service_log SET record = record || ' ' WHERE seq = 1"], 1, "canonical"),
    ],
    ids=[
        "edit-record",
        "edit-column",
        "delete",
        "forge-signature",
        "strip-signature",
        "whitespace",
    ],
)
async def test_tampering_is_reported_at_the_first_broken_entry(
    world: World, statements: list[str], seq: int, problem: str
) -> None:
    await _three_entries(world)
    await _tamper(world, *statements)
    async with world.sessions() as session:
        report = await verify_chain(session)
    assert not report.ok
    assert report.broken_seq == seq and problem in (report.problem or ""), report


def test_cli_verify_and_export(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def prepare() -> int:
        engine = create_engine(url)
        await migrate(engine)
        try:
            world = await build_world(session_factory(engine))
            call_id = await ended_call(world)
            key = await register_key(world)
            async with world.sessions() as session:
                body = await draft_record(
                    session, world.expert, call_id, "general_advice", "resolved"
                )
                await file_record(
                    session,
                    world.expert,
                    call_id,
                    "general_advice",
                    "resolved",
                    sign_record(body, key),
                    T0,
                )
            return call_id
        finally:
            await engine.dispose()

    asyncio.run(prepare())

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            status = cli_main(
                ["admin", "log", *args, "--database-url", url, "--data-dir", str(tmp_path)]
            )
        return status, out.getvalue()

    # Run outside the server: nothing anchors the head yet, so verify says so and fails.
    status, output = run("verify")
    assert status == 1 and "no checkpoint anchors the log" in output, output
    status, output = run("checkpoint")
    assert status == 0 and "checkpoint appended" in output, output
    status, output = run("verify")
    assert status == 0 and "service log OK: 1 entries" in output, output
    assert "checkpoints OK: 1 checked" in output, output
    status, output = run("export", "--format", "json")
    exported = json.loads(output)
    assert status == 0 and exported[0]["signature"] and exported[0]["signer_public_key"]
    # Anyone with the public key verifies the exported record without the server.
    from signaling.records.record_signing import verify_record

    verify_record(exported[0]["record"], exported[0]["signature"], exported[0]["signer_public_key"])
    status, output = run("export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert status == 0 and rows[0]["service_type"] == "general_advice"
    assert rows[0]["signature"] == exported[0]["signature"]
    assert rows[0]["hash"] == exported[0]["hash"]

    async def tamper() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP TRIGGER service_log_no_update"))
                await connection.execute(
                    text("UPDATE service_log SET record = replace(record, 'resolved', 'pending')")
                )
        finally:
            await engine.dispose()

    asyncio.run(tamper())
    status, output = run("verify")
    assert status == 1 and "BROKEN at entry 1" in output and "hash mismatch" in output


async def test_filing_over_socketio(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    assert (await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    took = await call(expert, "queue:take_next", {})
    call_id = took["call"]["id"]
    early = await call(
        expert,
        "record:file",
        {"call_id": call_id, "service_type": "general_advice", "outcome": "resolved"},
    )
    assert early["error"]["reason"] == "call_active"
    assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]
    synced = await call(expert, "flow:sync")
    assert [c["id"] for c in synced["unfiled_calls"]] == [call_id]
    kela = next(a for a in synced["authorities"] if a["code"] == "kela")
    assert "housing_allowance" in [t["code"] for t in kela["service_types"]]

    key = Ed25519PrivateKey.generate()
    async with live_service.services.sessions() as session:
        await session.execute(
            update(User)
            .where(User.id == live_service.demo.user_ids["kela"])
            .values(signing_public_key=public_key_b64u(key))
        )
        await session.commit()
    form = {"call_id": call_id, "service_type": "housing_allowance", "outcome": "resolved"}
    draft = await call(expert, "record:draft", form)
    assert draft["ok"], draft
    signature = sign_record(draft["body"], key)
    filed = await call(expert, "record:file", {**form, "signature": signature})
    assert filed["ok"], filed
    assert filed["entry"]["signature"] == signature and filed["entry"]["seq"] == 1
    again = await call(expert, "record:file", form)
    assert again["error"]["reason"] == "already_filed"
    history = await call(expert, "record:history", {})
    assert [e["seq"] for e in history["entries"]] == [1]
    async with live_service.services.sessions() as session:
        assert (await verify_chain(session)).ok
        entry = await session.get(ServiceLogEntry, 1)
        assert entry is not None and entry.call_id == call_id


@pytest.mark.postgres
async def test_chain_and_append_only_guard_on_postgresql(fresh_postgres_url: str) -> None:
    engine = create_engine(fresh_postgres_url)
    await migrate(engine)
    try:
        world = await build_world(session_factory(engine))
        call_id = await ended_call(world)

        async def append(i: int) -> None:
            async with world.sessions() as session:
                await record_document(
                    session,
                    call_id=call_id,
                    sha256=f"{i:064x}",
                    size=i,
                    type="image/png",
                    sender="a",
                    receiver="b",
                    received_at=T0,
                )
                await session.commit()

        await asyncio.gather(*(append(i) for i in range(6)))
        key = await register_key(world)
        async with world.sessions() as session:
            await file_signed(session, key, world.expert, call_id, "general_advice", "resolved", T0)
        async with world.sessions() as session:
            report = await verify_chain(session)
        assert report.ok and report.entries == 7
        async with world.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text("UPDATE service_log SET month = '2020-01'"))
    finally:
        await engine.dispose()

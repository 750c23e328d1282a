"""Documents with the participants on two signaling processes sharing a database and Redis.

Two in-process servers, one database (an SQLite file, then PostgreSQL) and a real Redis on a
channel of our own: the kiosk on the first, the expert on the second. Keys cross through the
database and the Redis manager, the ciphertext through `document_chunks` rows, and pushes to
one participant through his socket.io room (issue 14).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from endpoint.document_channel import DocumentChannel
from signaling.in_call.documents import sweep_expired
from signaling.store.flow_models import DocumentCallKey, DocumentChunk, DocumentTransfer
from tests.signaling.test_redis import REDIS_URL, redis_reachable
from tests.support.service import LiveService, make_live_service

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 9000  # ~2.3 MB: several chunk rows
PNG = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"png").digest() * 5000


async def count(live: LiveService, model: Any, **where: Any) -> int:
    async with live.services.sessions() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(await session.scalar(query) or 0)


async def logged_documents(live: LiveService, call_id: int) -> list[dict[str, Any]]:
    from signaling.records.service_log import documents_of_call

    async with live.services.sessions() as session:
        return await documents_of_call(session, call_id)


async def run_documents_across(tmp_path: Path, database_url: str) -> None:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    shared = {
        "redis_url": REDIS_URL,
        "redis_channel": f"etapalvelu-test-{secrets.token_hex(6)}",
        "database_url": database_url,
        "relay_mode": "local",
    }
    async with (
        make_live_service(tmp_path / "a", **shared) as first,
        make_live_service(tmp_path / "b", **shared) as second,
    ):
        kiosk_sio = await first.connect_kiosk()
        expert_sio = await second.connect_user("kela")
        for client in (kiosk_sio, expert_sio):
            assert (await client.call("flow:sync", {}))["ok"]
        taken = await kiosk_sio.call("ticket:take", {"authority": "kela", "language": "fin"})
        assert taken["ok"], taken
        ack = await expert_sio.call("queue:take_next", {})
        assert ack["ok"], ack
        call_id = int(ack["call"]["id"])

        kiosk = DocumentChannel(kiosk_sio, first.base_url, call_id)
        expert = DocumentChannel(expert_sio, second.base_url, call_id)
        try:
            await kiosk.start()
            await expert.start()
            async with asyncio.timeout(10):
                # The expert read the kiosk's key from the database (his ack); the kiosk got
                # the expert's through Redis (documents:keys published on the second server).
                await expert.wait_for_peer(kiosk.participant_id)
                await kiosk.wait_for_peer(expert.participant_id)
            assert kiosk.peers[expert.participant_id][1].public_key == expert.keys[1].public_bytes
            assert expert.peers[kiosk.participant_id][1].public_key == kiosk.keys[1].public_bytes
            assert await count(second, DocumentCallKey, call_id=call_id) == 4  # 2 suites each

            # Kiosk (first server) -> expert (second server).
            sent = await kiosk.send("todistus.pdf", PDF, chunk_size=65536)
            transfer_id = sent.transfer_id
            assert await count(second, DocumentTransfer, id=transfer_id) == 1
            assert await count(second, DocumentChunk, transfer_id=transfer_id) >= 2
            async with second.services.sessions() as session:
                stored = b"".join(
                    (
                        await session.scalars(
                            select(DocumentChunk.data)
                            .where(DocumentChunk.transfer_id == transfer_id)
                            .order_by(DocumentChunk.seq)
                        )
                    ).all()
                )
            # The database holds ciphertext only, all of it.
            assert stored.startswith(b"ETDOC") and len(stored) == sent.ciphertext_bytes
            assert PDF[:64] not in stored and PDF[5000:5064] not in stored
            # A resumed download (Range) from the other server reads the chunk rows.
            async with asyncio.timeout(10):
                incoming = await expert.incoming.get()
            download = second.base_url + incoming["download_url"]
            async with aiohttp.ClientSession() as http:
                async with http.get(download, headers={"Range": "bytes=70000-"}) as response:
                    assert response.status == 206
                    assert await response.read() == stored[70000:]
                async with http.get(download, headers={"Range": "bytes=-10"}) as response:
                    assert response.status == 206
                    assert await response.read() == stored[-10:]
            await expert.incoming.put(incoming)
            async with asyncio.timeout(30):
                got = await expert.receive()
                verdicts = await kiosk.wait_delivered(transfer_id)
            assert got.verified and got.content == PDF
            assert got.sender.participant_id == kiosk.participant_id
            assert verdicts == {expert.participant_id: ("received", None)}
            # The content is deleted once its one recipient has it, and no data folder was used;
            # the rows (no content) stay until the sender's next documents:key, which replays
            # the answer to him, has told him.
            assert await count(first, DocumentChunk, transfer_id=transfer_id) == 0
            assert await count(first, DocumentTransfer, id=transfer_id) == 1
            await kiosk.start()
            assert await count(first, DocumentTransfer, id=transfer_id) == 0
            for live in (first, second):
                assert list((live.settings.data_dir / "documents").glob("*.bin")) == []

            # Expert (second server) -> kiosk (first server).
            back = await expert.send("paatos.png", PNG)
            async with asyncio.timeout(30):
                returned = await kiosk.receive()
                back_verdicts = await expert.wait_delivered(back.transfer_id)
            assert returned.verified and returned.content == PNG
            assert back_verdicts == {kiosk.participant_id: ("received", None)}
            assert await count(first, DocumentChunk, transfer_id=back.transfer_id) == 0
            await expert.start()  # the replay to the sender, on the other server, finishes it
            assert await count(first, DocumentTransfer, id=back.transfer_id) == 0

            # Both receipts are in the service log, as either server reads it.
            logged = await logged_documents(first, call_id)
            pairs = {(e["sender"], e["receiver"], e["sha256"]) for e in logged}
            assert (
                kiosk.participant_id,
                expert.participant_id,
                hashlib.sha256(PDF).hexdigest(),
            ) in pairs, logged
            assert (
                expert.participant_id,
                kiosk.participant_id,
                hashlib.sha256(PNG).hexdigest(),
            ) in pairs, logged

            # A transfer left undelivered is swept by the other server once it expired.
            late = await kiosk.send("late.pdf", PDF[:50_000])
            retention = second.settings.document_retention_seconds
            assert await sweep_expired(second.services) == []
            assert await count(second, DocumentTransfer, id=late.transfer_id) == 1
            later = time.time() + retention + 1
            assert await sweep_expired(second.services, now=later) == [late.transfer_id]
            assert await sweep_expired(first.services, now=later) == []  # deleted once only
            assert await count(first, DocumentChunk, transfer_id=late.transfer_id) == 0

            # Keys outlive nothing: once the call has ended a sweep drops them.
            assert await count(first, DocumentCallKey, call_id=call_id) == 4
            assert (await expert_sio.call("call:end", {"call_id": call_id}))["ok"]
            await sweep_expired(first.services)
            assert await count(second, DocumentCallKey, call_id=call_id) == 0
        finally:
            await kiosk.close()
            await expert.close()


async def test_documents_between_processes_sqlite(tmp_path: Path) -> None:
    await run_documents_across(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")


async def test_documents_between_processes_postgresql(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    await run_documents_across(tmp_path, fresh_postgres_url)

"""Documents through the running service: keys, ciphertext transfer, receipts, refusals.

Everything real: the whole service on loopback, python-socketio clients, HTTP over aiohttp, the
endpoint's DocumentChannel on both sides.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from endpoint.document_channel import DocumentChannel, TransferError
from endpoint.document_crypto import (
    CallKeyPair,
    DocumentError,
    DocumentMetadata,
    encrypt_document,
)
from signaling.in_call.documents import registration_statement, sweep_expired
from signaling.records.record_signing import public_key_b64u, sign_record
from signaling.store.flow_models import DocumentTransfer
from signaling.wire.canonical import b64u_encode
from tests.signaling.document_support import DocumentCall, document_call

__all__ = ["document_call"]  # the fixture, used by name below

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4000  # ~1 MB
PNG = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"png").digest() * 5000


@pytest_asyncio.fixture
async def channels(document_call: DocumentCall) -> AsyncIterator[tuple[DocumentChannel, ...]]:
    base = document_call.live.base_url
    kiosk = DocumentChannel(document_call.kiosk, base, document_call.call_id)
    expert = DocumentChannel(document_call.expert, base, document_call.call_id)
    await kiosk.start()
    await expert.start()
    async with asyncio.timeout(5):
        await kiosk.wait_for_peer()
    try:
        yield kiosk, expert
    finally:
        await kiosk.close()
        await expert.close()


def stored_files(call: DocumentCall) -> list[Path]:
    return sorted((call.live.settings.data_dir / "documents").glob("*.bin"))


async def logged_documents(call: DocumentCall) -> list[dict[str, object]]:
    from signaling.records.service_log import documents_of_call

    async with call.live.services.sessions() as session:
        return await documents_of_call(session, call.call_id)


async def test_keys_are_attested_with_identity(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    assert kiosk.participant_id == f"endpoint-{document_call.live.demo.endpoint_id}"
    assert expert.participant_id.startswith("user-")
    seen = kiosk.peers[expert.participant_id][1]
    assert seen.role == "expert" and seen.kind == "user"
    assert seen.public_key == expert.keys[1].public_bytes
    # The fingerprint the kiosk is shown is the one the expert computes for his own key.
    assert seen.fingerprint == expert.fingerprint(1)


async def test_document_there_and_back(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    sent = await kiosk.send("todistus.pdf", PDF, chunk_size=16384)
    # While it waits for the expert, the server holds ciphertext only.
    files = stored_files(document_call)
    assert len(files) == 1
    stored = files[0].read_bytes()
    assert stored.startswith(b"ETDOC") and len(stored) == sent.ciphertext_bytes
    assert PDF[:64] not in stored and PDF[5000:5064] not in stored
    async with asyncio.timeout(20):
        got = await expert.receive()
        verdicts = await kiosk.wait_delivered(sent.transfer_id)
    assert got.verified and got.content == PDF
    assert got.metadata.name == "todistus.pdf" and got.sender.participant_id == kiosk.participant_id
    assert verdicts == {expert.participant_id: ("received", None)}
    assert stored_files(document_call) == []  # deleted after delivery

    back = await expert.send("paatos.png", PNG)
    async with asyncio.timeout(20):
        returned = await kiosk.receive()
        await expert.wait_delivered(back.transfer_id)
    assert hashlib.sha256(returned.content).hexdigest() == hashlib.sha256(PNG).hexdigest()

    logged = await logged_documents(document_call)
    assert [
        (d["sha256"], d["size"], d["type"], d["sender"], d["receiver"], d["verdict"])
        for d in logged
    ] == [
        (
            hashlib.sha256(PDF).hexdigest(),
            len(PDF),
            "application/pdf",
            kiosk.participant_id,
            expert.participant_id,
            "received",
        ),
        (
            hashlib.sha256(PNG).hexdigest(),
            len(PNG),
            "image/png",
            expert.participant_id,
            kiosk.participant_id,
            "received",
        ),
    ]
    assert all(d["received_at"] for d in logged)
    assert "todistus" not in repr(logged)  # never the name, never the content


async def test_an_answer_that_came_while_the_sender_was_away_is_replayed(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    sent = await kiosk.send("hakemus.pdf", PDF[:40_000])
    # The kiosk's connection drops (its page reconnects on a new socket) before the expert
    # answers: the documents:delivered push has nobody to reach.
    again = await document_call.live.connect_kiosk()
    await document_call.kiosk.disconnect()
    async with asyncio.timeout(20):
        got = await expert.receive()
    assert got.verified
    assert stored_files(document_call) == []  # the content goes once everyone has answered
    assert not kiosk.delivered(sent.transfer_id)
    returned = DocumentChannel(again, document_call.live.base_url, document_call.call_id)
    returned.expect_delivery(sent.transfer_id, [expert.participant_id])
    try:
        await returned.start()  # publishing its keys again is what a reconnected page does
        assert returned.delivered(sent.transfer_id)
        async with asyncio.timeout(5):
            verdicts = await returned.wait_delivered(sent.transfer_id)
        assert verdicts == {expert.participant_id: ("received", None)}
        # Told once: the transfer is finished, a later reconnect replays nothing.
        ack = await again.call("documents:key", {
            "call_id": document_call.call_id,
            "keys": [{"suite": 1, "public_key": b64u_encode(returned.keys[1].public_bytes)}],
        })
        assert ack["ok"] and ack["delivered"] == [], ack
    finally:
        await returned.close()
        await again.disconnect()


async def test_tampered_ciphertext_is_refused_and_logged(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    meta = DocumentMetadata.describe("a.pdf", PDF)
    ciphertext = bytearray(
        encrypt_document(PDF, meta, kiosk.keys[1], [expert.keys[1].public_bytes])
    )
    ciphertext[-5000] ^= 0x01  # a bit in the middle of a chunk
    ack = await document_call.kiosk.call(
        "documents:offer",
        {
            "call_id": document_call.call_id,
            "recipients": [expert.participant_id],
            "suite": 1,
            "ciphertext_bytes": len(ciphertext),
            "sha256": meta.sha256,
            "size": meta.size,
            "type": meta.type,
        },
    )
    assert ack["ok"], ack
    kiosk.expect_delivery(ack["transfer_id"], [expert.participant_id])
    await kiosk.upload_bytes(ack["transfer_id"], ack["upload_url"], bytes(ciphertext))
    async with asyncio.timeout(20):
        with pytest.raises(DocumentError) as caught:
            await expert.receive()
        verdicts = await kiosk.wait_delivered(ack["transfer_id"])
    assert caught.value.code == "chunk_auth"
    assert verdicts == {expert.participant_id: ("refused", "chunk_auth")}
    logged = await logged_documents(document_call)
    assert [(d["verdict"], d["reason"]) for d in logged] == [("refused", "chunk_auth")]
    assert stored_files(document_call) == []


async def test_sender_key_must_be_the_attested_one(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    impostor = CallKeyPair.generate(1)  # not the key the server attested for the kiosk
    meta = DocumentMetadata.describe("a.pdf", PDF)
    ciphertext = encrypt_document(PDF, meta, impostor, [expert.keys[1].public_bytes])
    ack = await document_call.kiosk.call(
        "documents:offer",
        {
            "call_id": document_call.call_id,
            "recipients": [expert.participant_id],
            "suite": 1,
            "ciphertext_bytes": len(ciphertext),
            "sha256": meta.sha256,
            "size": meta.size,
            "type": meta.type,
        },
    )
    await kiosk.upload_bytes(ack["transfer_id"], ack["upload_url"], ciphertext)
    async with asyncio.timeout(20):
        with pytest.raises(DocumentError) as caught:
            await expert.receive()
    assert caught.value.code == "sender_mismatch"


async def test_upload_resumes_and_download_ranges(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    meta = DocumentMetadata.describe("a.pdf", PDF)
    ciphertext = encrypt_document(PDF, meta, kiosk.keys[1], [expert.keys[1].public_bytes])
    ack = await document_call.kiosk.call(
        "documents:offer",
        {
            "call_id": document_call.call_id,
            "recipients": [expert.participant_id],
            "suite": 1,
            "ciphertext_bytes": len(ciphertext),
            "sha256": meta.sha256,
            "size": meta.size,
            "type": meta.type,
        },
    )
    url = document_call.live.base_url + ack["upload_url"]
    async with aiohttp.ClientSession() as http:
        async with http.put(url + "&offset=0", data=ciphertext[:300_000]) as response:
            assert response.status == 200
        # A reconnecting sender asks where the upload stands and goes on from there.
        status = await document_call.kiosk.call(
            "documents:status", {"transfer_id": ack["transfer_id"]}
        )
        assert status["received_bytes"] == 300_000 and status["state"] == "uploading"
        async with http.put(url + "&offset=0", data=ciphertext[:10]) as response:
            assert response.status == 409
            assert (await response.json())["received_bytes"] == 300_000
        async with http.put(url + "&offset=300000", data=ciphertext[300_000:]) as response:
            assert response.status == 200 and (await response.json())["state"] == "ready"
        async with http.put(url + f"&offset={len(ciphertext)}", data=b"x") as response:
            assert response.status == 409
        async with asyncio.timeout(10):
            incoming = await expert.incoming.get()
        download = document_call.live.base_url + incoming["download_url"]
        async with http.get(download, headers={"Range": "bytes=1000-"}) as response:
            assert response.status == 206
            assert await response.read() == ciphertext[1000:]
        async with http.get(download.replace("token=", "token=x")) as response:
            assert response.status == 403
        async with http.get(url) as response:  # the upload token cannot download
            assert response.status == 403
    await expert.incoming.put(incoming)
    async with asyncio.timeout(10):
        assert (await expert.receive()).content == PDF


async def test_refusals(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    base = {
        "call_id": document_call.call_id,
        "recipients": [expert.participant_id],
        "suite": 1,
        "ciphertext_bytes": 2000,
        "sha256": "00" * 32,
        "size": 1000,
        "type": "application/pdf",
    }
    limit = document_call.live.settings.max_document_bytes
    cases = [
        ({"size": limit + 1, "ciphertext_bytes": limit + 5000}, "too_large"),
        ({"type": "application/x-msdownload"}, "type_not_allowed"),
        ({"ciphertext_bytes": 10_000_000}, "bad_length"),
        ({"recipients": [kiosk.participant_id]}, "bad_recipients"),
        ({"recipients": ["user-999"]}, "no_key"),
        ({"call_id": 999}, None),
    ]
    for change, reason in cases:
        ack = await document_call.kiosk.call("documents:offer", {**base, **change})
        assert not ack["ok"], change
        assert ack["error"].get("reason") == reason or reason is None, ack
    # Someone outside the call cannot publish a key in it, nor see its transfers.
    stranger = await document_call.live.connect_user("rakennus")
    ack = await stranger.call(
        "documents:key",
        {"call_id": document_call.call_id, "keys": [{"suite": 1, "public_key": "A" * 43}]},
    )
    assert not ack["ok"] and ack["error"]["code"] == "forbidden"
    sent = await document_call.kiosk.call("documents:offer", base)
    ack = await stranger.call("documents:status", {"transfer_id": sent["transfer_id"]})
    assert not ack["ok"] and ack["error"]["code"] == "forbidden"
    # Malformed keys are refused.
    ack = await document_call.kiosk.call(
        "documents:key",
        {"call_id": document_call.call_id, "keys": [{"suite": 2, "public_key": "A" * 87}]},
    )
    assert not ack["ok"] and ack["error"]["reason"] == "bad_key"
    # More bytes than declared.
    async with aiohttp.ClientSession() as http:
        url = document_call.live.base_url + sent["upload_url"]
        async with http.put(url + "&offset=0", data=bytes(2001)) as response:
            assert response.status == 413
    # A receipt that does not match what the sender declared is refused.
    ack = await document_call.expert.call(
        "documents:receipt",
        {
            "transfer_id": sent["transfer_id"],
            "verdict": "received",
            "sha256": "11" * 32,
            "size": 1000,
            "type": "application/pdf",
        },
    )
    assert not ack["ok"]


async def test_cancel_and_retention(
    document_call: DocumentCall, channels: tuple[DocumentChannel, DocumentChannel]
) -> None:
    kiosk, expert = channels
    sent = await kiosk.send("a.pdf", PDF)
    assert len(stored_files(document_call)) == 1
    await kiosk.cancel(sent.transfer_id)
    assert stored_files(document_call) == []
    for _ in range(250):  # the push may trail the ack
        if sent.transfer_id in expert.cancelled:
            break
        await asyncio.sleep(0.02)
    assert sent.transfer_id in expert.cancelled

    second = await kiosk.send("b.pdf", PDF)
    services = document_call.live.services
    assert await sweep_expired(services) == []
    async with services.sessions() as session:
        row = await session.get(DocumentTransfer, second.transfer_id)
        assert row is not None
        created = row.created
    retention = services.settings.document_retention_seconds
    assert await sweep_expired(services, now=created + retention + 1) == [second.transfer_id]
    assert stored_files(document_call) == []


async def test_register_signing_key(document_call: DocumentCall) -> None:
    from signaling.store.models import User

    key = Ed25519PrivateKey.generate()
    public = public_key_b64u(key)
    whoami = await document_call.expert.call("session:whoami", {})
    user_id = whoami["principal"]["id"]
    forged = sign_record(registration_statement(user_id + 1, public), key)
    ack = await document_call.expert.call(
        "signing:register_key", {"public_key": public, "proof": forged}
    )
    assert not ack["ok"] and ack["error"]["reason"] == "bad_proof"
    proof = sign_record(registration_statement(user_id, public), key)
    ack = await document_call.expert.call(
        "signing:register_key", {"public_key": public, "proof": proof}
    )
    assert ack["ok"], ack
    async with document_call.live.services.sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None and user.signing_public_key == public
    ack = await document_call.kiosk.call(
        "signing:register_key", {"public_key": public, "proof": proof}
    )
    assert not ack["ok"] and ack["error"]["code"] == "forbidden"


async def test_oversized_file_refused_by_sender(
    channels: tuple[DocumentChannel, DocumentChannel],
) -> None:
    kiosk, _expert = channels
    kiosk.max_bytes = 1000
    with pytest.raises(DocumentError) as caught:
        await kiosk.send("big.pdf", PDF)
    assert caught.value.code == "too_large"
    with pytest.raises(DocumentError) as caught:
        await kiosk.send("x.exe", b"MZ" + bytes(100))
    assert caught.value.code == "type_not_allowed"
    with pytest.raises(TransferError):
        await kiosk.send("a.pdf", b"%PDF-1", recipients=["user-999"])

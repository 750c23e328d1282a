"""Service records are filed only when signed by the expert's registered key: helpers for tests
that file them.

    key = await register_key(sessions, user_id)                 # straight into the database
    key = await register_key_over_socket(expert_client, user_id)  # signing:register_key + proof
    entry = await file_signed(session, key, expert, call_id, "general_advice", "resolved", now)
    ack = await file_signed_over_socket(expert_client, key, {call_id, service_type, outcome})
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import socketio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.directory.principals import Principal
from signaling.records.record_signing import public_key_b64u, sign_record
from signaling.records.service_log import draft_record, file_record
from signaling.store.flow_models import ServiceLogEntry
from signaling.store.models import User

__all__ = ["file_signed", "file_signed_over_socket", "register_key", "register_key_over_socket"]


async def register_key(
    sessions: async_sessionmaker[AsyncSession], user_id: int
) -> Ed25519PrivateKey:
    """A new Ed25519 key whose public half is stored as the user's signing key."""
    key = Ed25519PrivateKey.generate()
    async with sessions() as session:
        await session.execute(
            update(User).where(User.id == user_id).values(signing_public_key=public_key_b64u(key))
        )
        await session.commit()
    return key


async def register_key_over_socket(client: socketio.AsyncClient, user_id: int) -> Ed25519PrivateKey:
    """Register a new key the way the expert console does (`signing:register_key` with a proof
    of possession)."""
    from signaling.in_call.documents import registration_statement

    key = Ed25519PrivateKey.generate()
    public = public_key_b64u(key)
    proof = sign_record(registration_statement(user_id, public), key)
    ack: dict[str, Any] = await client.call(
        "signing:register_key", {"public_key": public, "proof": proof}, timeout=10
    )
    assert ack.get("ok"), ack
    return key


async def file_signed(
    session: AsyncSession,
    key: Ed25519PrivateKey,
    expert: Principal,
    call_id: int,
    service_type: str,
    outcome: str,
    now: datetime,
) -> ServiceLogEntry:
    """Draft the record, sign it with `key` and file it (as the console does)."""
    body = await draft_record(session, expert, call_id, service_type, outcome)
    return await file_record(
        session, expert, call_id, service_type, outcome, sign_record(body, key), now
    )


async def file_signed_over_socket(
    client: socketio.AsyncClient, key: Ed25519PrivateKey, form: dict[str, Any]
) -> dict[str, Any]:
    """`record:draft`, sign the body, `record:file` with the signature; returns the file ack."""
    draft: dict[str, Any] = await client.call("record:draft", form, timeout=10)
    assert draft.get("ok"), draft
    filed: dict[str, Any] = await client.call(
        "record:file", {**form, "signature": sign_record(draft["body"], key)}, timeout=10
    )
    return filed

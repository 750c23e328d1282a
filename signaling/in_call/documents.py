"""Documents in a call: key exchange, ciphertext transfer and receipts (server side).

docs/document-protocol.md §1 and §5. The server never sees a document in the clear: it relays
the participants' call keys — attaching the identity of the authenticated socket, so a key is
bound to who sent it — stores the ciphertext a sender uploads, hands it to the recipients and
deletes it once each has answered, on cancel, or after `document_retention_seconds`. Each
receipt goes to the service log (hash, size, type, sender, receiver, time; never content).

Call keys, transfers and answers are database rows, and pushes to one participant go to his
socket.io room (`docs:<call>:<participant>`, carried across processes by the Redis manager), so
the participants may be on different signaling processes. The ciphertext is in
`document_chunks` rows when several processes share the database (redis_url set), else in
files under `data_dir/documents/`.

Also here: `signing:register_key`, an expert registering the public half of his record-signing
key (signaling/records/record_signing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from endpoint.document_crypto import (
    ALLOWED_TYPES,
    ERROR_MESSAGES,
    SUITE_P256,
    SUITE_X25519,
    fingerprint,
    max_ciphertext_bytes,
)
from signaling.db import DB_INT_MAX, DbId
from signaling.directory.principals import Principal, Role
from signaling.flow.flow_common import FlowError, conflict, forbidden, invalid, not_found
from signaling.records.record_signing import RecordSignatureError, verify_record
from signaling.store.flow_models import (
    DocumentCallKey,
    DocumentChunk,
    DocumentRecipient,
    DocumentTransfer,
    ParticipantRole,
)
from signaling.transport.http import services_of
from signaling.transport.protocol import ErrorCode, EventContext, EventModel, on_event
from signaling.transport.services import Services
from signaling.wire.canonical import b64u_decode

log = logging.getLogger(__name__)

# Role.CUSTOMER: the customer at home, in his own call only (signaling/flow/remote_customer.py).
PARTICIPANT_ROLES = {Role.ENDPOINT, Role.EXPERT, Role.INTERPRETER, Role.CUSTOMER}
PUBLIC_KEY_BYTES = {SUITE_X25519: 32, SUITE_P256: 65}
STILL_TYPES = frozenset({"image/png", "image/jpeg"})  # what a document camera may send
UPLOAD_READ = 1 << 20
SWEEP_SECONDS = 30.0


# --- state ---------------------------------------------------------------------------------


@dataclass
class CallKey:
    """A participant's public call key as the server attests it (§1)."""

    participant_id: str
    kind: str
    principal_id: int
    role: str
    name: str
    suite: int
    public_key: str  # b64u
    sid: str

    def view(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "kind": self.kind,
            "principal_id": self.principal_id,
            "role": self.role,
            "name": self.name,
            "suite": self.suite,
            "public_key": self.public_key,
            "fingerprint": fingerprint(self.suite, b64u_decode(self.public_key)),
        }


@dataclass
class Transfer:
    """A transfer as read from its database rows (document_transfers, document_recipients)."""

    id: str
    call_id: int
    sender: str  # participant id
    sender_principal: tuple[str, int]
    recipients: dict[str, tuple[str, int]]  # participant id -> principal (kind, id)
    suite: int
    ciphertext_bytes: int
    sha256: str
    size: int
    type: str
    upload_token: str
    download_tokens: dict[str, str]
    path: Path
    created: float  # epoch seconds
    received_bytes: int = 0
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.received_bytes == self.ciphertext_bytes

    @property
    def state(self) -> str:
        return "ready" if self.complete else "uploading"

    def upload_url(self) -> str:
        return f"/api/documents/{self.id}/content?token={self.upload_token}"

    def download_url(self, recipient: str) -> str:
        return f"/api/documents/{self.id}/content?token={self.download_tokens[recipient]}"

    def incoming(self, recipient: str) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "transfer_id": self.id,
            "sender": self.sender,
            "suite": self.suite,
            "ciphertext_bytes": self.ciphertext_bytes,
            "download_url": self.download_url(recipient),
        }


@dataclass
class DocumentExchange:
    """This process's side of the document exchange; the database holds the truth.

    Call keys, transfers and recipients' answers are rows, so any signaling process serves any
    participant; nothing about them is kept in this process's memory. The ciphertext is in
    `document_chunks` rows when several processes share the database (`shared`: redis_url is
    set), else in files under `root` (one process). What stays here is only local: the upload
    locks of transfers this process is writing.
    """

    root: Path
    shared: bool = False
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, transfer_id: str) -> asyncio.Lock:
        return self.locks.setdefault(transfer_id, asyncio.Lock())

    def forget(self, transfer_id: str) -> None:
        """Drop this process's lock and file of a transfer (its rows are deleted apart)."""
        self.locks.pop(transfer_id, None)
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{transfer_id}.bin").unlink()


def exchange_of(services: Services) -> DocumentExchange:
    found = services.extras.get("documents")
    if not isinstance(found, DocumentExchange):
        found = DocumentExchange(services.settings.data_dir / "documents",
                                 shared=bool(services.settings.redis_url))
        services.extras["documents"] = found
    return found


def documents_room(call_id: int) -> str:
    return f"documents:{call_id}"


def participant_room(call_id: int, participant_id: str) -> str:
    """One participant's sockets in a call (entered on documents:key): pushes meant for him
    reach whichever process his socket is on through the socket.io manager (Redis)."""
    return f"docs:{call_id}:{participant_id}"


# --- database access ---------------------------------------------------------------------------


async def load_keys(session: AsyncSession, call_id: int) -> dict[tuple[str, int], CallKey]:
    rows = (await session.scalars(
        select(DocumentCallKey).where(DocumentCallKey.call_id == call_id)
    )).all()
    return {
        (r.participant_id, r.suite): CallKey(r.participant_id, r.kind, r.principal_id, r.role,
                                             r.name, r.suite, r.public_key, r.sid)
        for r in rows
    }


def key_views(keys: dict[tuple[str, int], CallKey]) -> list[dict[str, Any]]:
    return [k.view() for k in sorted(keys.values(), key=lambda k: (k.participant_id, k.suite))]


def _transfer_of(root: Path, row: DocumentTransfer,
                 recipients: Sequence[DocumentRecipient]) -> Transfer:
    return Transfer(
        id=row.id,
        call_id=row.call_id,
        sender=row.sender,
        sender_principal=(row.sender_kind, row.sender_principal_id),
        recipients={r.participant_id: (r.kind, r.principal_id) for r in recipients},
        suite=row.suite,
        ciphertext_bytes=row.ciphertext_bytes,
        sha256=row.sha256,
        size=row.size,
        type=row.type,
        upload_token=row.upload_token,
        download_tokens={r.participant_id: r.download_token for r in recipients},
        path=root / f"{row.id}.bin",
        created=row.created,
        received_bytes=row.received_bytes,
        verdicts={r.participant_id: r.verdict for r in recipients if r.verdict is not None},
    )


async def load_transfer(services: Services, transfer_id: str) -> Transfer | None:
    exchange = exchange_of(services)
    async with services.sessions() as session:
        row = await session.get(DocumentTransfer, transfer_id)
        if row is None:
            exchange.forget(transfer_id)
            return None
        recipients = (await session.scalars(
            select(DocumentRecipient).where(DocumentRecipient.transfer_id == transfer_id)
        )).all()
        return _transfer_of(exchange.root, row, recipients)


async def drop_ciphertext(services: Services, transfer_id: str) -> None:
    """Delete a transfer's ciphertext (every recipient has answered); its rows stay."""
    async with services.sessions() as session:
        await session.execute(
            delete(DocumentChunk).where(DocumentChunk.transfer_id == transfer_id))
        await session.commit()
    with contextlib.suppress(FileNotFoundError):
        (exchange_of(services).root / f"{transfer_id}.bin").unlink()


async def _answers_for_sender(
    session: AsyncSession, call_id: int, sender: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The answers to this sender's transfers in the call (the pushes he may have missed), and
    the transfers every recipient has answered (done once he has them)."""
    rows = (await session.execute(
        select(DocumentRecipient)
        .join(DocumentTransfer, DocumentRecipient.transfer_id == DocumentTransfer.id)
        .where(DocumentTransfer.call_id == call_id, DocumentTransfer.sender == sender)
        .order_by(DocumentTransfer.created)
    )).scalars().all()
    answers: list[dict[str, Any]] = []
    answered: set[str] = set()
    open_ids: set[str] = set()
    for row in rows:
        if row.verdict is None:
            open_ids.add(row.transfer_id)
        else:
            answered.add(row.transfer_id)
            answers.append({"transfer_id": row.transfer_id, "recipient": row.participant_id,
                            "verdict": row.verdict, "reason": row.reason})
    done = sorted(answered - open_ids)
    return answers, done


async def delete_transfer(services: Services, transfer_id: str,
                          older_than: float | None = None) -> bool:
    """Delete a transfer's rows and ciphertext; False when another process was first (or, with
    `older_than`, when it is not that old). Any process may do it: the delete is conditional."""
    exchange = exchange_of(services)
    async with services.sessions() as session:
        query = delete(DocumentTransfer).where(DocumentTransfer.id == transfer_id)
        if older_than is not None:
            query = query.where(DocumentTransfer.created < older_than)
        result = await session.execute(query)
        deleted = bool(getattr(result, "rowcount", 0))
        if deleted:
            # Also where the database does not cascade.
            await session.execute(
                delete(DocumentChunk).where(DocumentChunk.transfer_id == transfer_id))
            await session.execute(
                delete(DocumentRecipient).where(DocumentRecipient.transfer_id == transfer_id))
        await session.commit()
    exchange.forget(transfer_id)
    return deleted


# --- who is in the call ------------------------------------------------------------------------


@dataclass(frozen=True)
class CallMember:
    participant_id: str
    kind: str
    principal_id: int
    role: str
    name: str


async def call_member(
    services: Services, call_id: int, principal: Principal, device: str = "kiosk"
) -> CallMember:
    """This principal's place in an active call, as the call feature decides it."""
    from signaling.flow.calls import load_call, participant_for
    from signaling.store.flow_models import CallStatus

    async with services.sessions() as session:
        call = await load_call(session, call_id)
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call_id} has ended", "call_ended")
        # A document camera must have joined (call:join) and be in the call: only the call's
        # own kiosk may have one (participant_for), and its documents are its stills.
        row = await participant_for(session, call, principal, device)
        if row.role == ParticipantRole.DOCUMENT_CAMERA and not row.connected:
            raise forbidden("the document camera is not in the call", "not_joined")
        member = CallMember(row.participant_id, row.kind, row.principal_id, row.role, row.name)
    return member


def is_device(role: str) -> bool:
    """A device of the call (the document camera): it sends stills, never receives documents."""
    return role == ParticipantRole.DOCUMENT_CAMERA


# --- events: keys ------------------------------------------------------------------------------


class PublicKeyIn(EventModel):
    suite: Literal[1, 2]
    public_key: str = Field(min_length=40, max_length=100)


class KeyPayload(EventModel):
    call_id: DbId
    device: Literal["kiosk", "document_camera"] = "kiosk"
    keys: list[PublicKeyIn] = Field(min_length=1, max_length=2)


def _check_public_key(suite: int, text: str) -> None:
    try:
        raw = b64u_decode(text)
    except ValueError:
        raise invalid("public_key is not base64url", "bad_key") from None
    if len(raw) != PUBLIC_KEY_BYTES[suite]:
        raise invalid(f"a suite {suite} public key has {PUBLIC_KEY_BYTES[suite]} bytes", "bad_key")
    if suite == SUITE_P256:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise invalid("not a point on P-256", "bad_key") from None


# The office's clerk publishes call keys too, for the call's chat only (signaling/in_call/chat.py).
@on_event("documents:key", KeyPayload, roles=PARTICIPANT_ROLES | {Role.CLERK})
async def publish_key(ctx: EventContext, data: KeyPayload) -> dict[str, Any]:
    """Publish this participant's call keys; everyone in the call gets the attested list.

    A document camera publishes a key only to send its stills (the others check the still's
    sender against it); it is never a recipient, so nothing is ever wrapped to it.
    """
    suites = [k.suite for k in data.keys]
    if len(set(suites)) != len(suites):
        raise invalid("one key per suite", "bad_key")
    for key in data.keys:
        _check_public_key(key.suite, key.public_key)
    device = data.device if ctx.principal.kind == "endpoint" else "kiosk"
    if ctx.principal.role == Role.CLERK:
        from signaling.in_call.chat import clerk_member

        member = await clerk_member(ctx.services, data.call_id, ctx.principal)
    else:
        member = await call_member(ctx.services, data.call_id, ctx.principal, device)
    exchange = exchange_of(ctx.services)
    mine = [
        CallKey(member.participant_id, member.kind, member.principal_id, member.role,
                member.name, key.suite, key.public_key, ctx.sid)
        for key in data.keys
    ]
    async with ctx.services.sessions() as session:
        earlier = set((await session.scalars(
            select(DocumentCallKey.sid).where(
                DocumentCallKey.call_id == data.call_id,
                DocumentCallKey.participant_id == member.participant_id,
            )
        )).all())
        await session.execute(delete(DocumentCallKey).where(
            DocumentCallKey.call_id == data.call_id,
            DocumentCallKey.participant_id == member.participant_id,
        ))
        session.add_all([
            DocumentCallKey(call_id=data.call_id, participant_id=k.participant_id,
                            suite=k.suite, kind=k.kind, principal_id=k.principal_id,
                            role=k.role, name=k.name, public_key=k.public_key, sid=k.sid)
            for k in mine
        ])
        await session.commit()
        keys = await load_keys(session, data.call_id)
        pending_rows = [] if is_device(member.role) else (await session.execute(
            select(DocumentTransfer, DocumentRecipient)
            .join(DocumentRecipient, DocumentRecipient.transfer_id == DocumentTransfer.id)
            .where(
                DocumentTransfer.call_id == data.call_id,
                DocumentTransfer.received_bytes == DocumentTransfer.ciphertext_bytes,
                DocumentRecipient.participant_id == member.participant_id,
                DocumentRecipient.verdict.is_(None),
            )
            .order_by(DocumentTransfer.created)
        )).all()
        answers, done = (([], []) if is_device(member.role) else
                         await _answers_for_sender(session, data.call_id, member.participant_id))
    # He has them now (in this ack): the answered transfers are finished.
    for transfer_id in done:
        await delete_transfer(ctx.services, transfer_id)
    room = participant_room(data.call_id, member.participant_id)
    # An earlier socket of the same participant on this process stops getting pushes.
    for sid in earlier - {"", ctx.sid}:
        with contextlib.suppress(Exception):
            await ctx.services.sio.leave_room(sid, room)
    await ctx.services.sio.enter_room(ctx.sid, room)
    await ctx.services.sio.enter_room(ctx.sid, documents_room(data.call_id))
    views = key_views(keys)
    await ctx.services.sio.emit(
        "documents:keys", {"call_id": data.call_id, "keys": views},
        room=documents_room(data.call_id), skip_sid=ctx.sid,
    )
    pending = [
        _transfer_of(exchange.root, row, [recipient]).incoming(member.participant_id)
        for row, recipient in pending_rows
    ]
    return {"participant_id": member.participant_id, "keys": views, "pending": pending,
            "delivered": answers,
            "max_document_bytes": ctx.services.settings.max_document_bytes}


# --- events: transfers -------------------------------------------------------------------------


class OfferPayload(EventModel):
    call_id: DbId
    device: Literal["kiosk", "document_camera"] = "kiosk"
    recipients: list[str] = Field(min_length=1, max_length=16)
    suite: Literal[1, 2]
    # Within the INTEGER columns they are stored in; the handler checks the real limit
    # (max_document_bytes, answered `too_large`).
    ciphertext_bytes: int = Field(gt=0, le=DB_INT_MAX)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=DB_INT_MAX)
    type: str = Field(max_length=64)


@on_event("documents:offer", OfferPayload, roles=PARTICIPANT_ROLES)
async def offer_document(ctx: EventContext, data: OfferPayload) -> dict[str, Any]:
    """Announce a document; the sender then uploads its ciphertext to `upload_url`."""
    settings = ctx.services.settings
    if data.type not in ALLOWED_TYPES:
        raise invalid(f"type {data.type} is not allowed (PDF, JPEG, PNG, TIFF)",
                      "type_not_allowed")
    if data.size > settings.max_document_bytes:
        raise _too_large(data.size, settings.max_document_bytes)
    if data.ciphertext_bytes > max_ciphertext_bytes(data.size):
        raise invalid("ciphertext_bytes is larger than any document of that size", "bad_length")
    if len(set(data.recipients)) != len(data.recipients):
        raise invalid("a recipient is listed twice", "bad_recipients")
    device = data.device if ctx.principal.kind == "endpoint" else "kiosk"
    member = await call_member(ctx.services, data.call_id, ctx.principal, device)
    if is_device(member.role) and data.type not in STILL_TYPES:
        raise forbidden("a document camera sends stills (PNG, JPEG) only", "stills_only")
    exchange = exchange_of(ctx.services)
    async with ctx.services.sessions() as session:
        keys = await load_keys(session, data.call_id)
    if (member.participant_id, data.suite) not in keys:
        raise conflict("publish your call key first (documents:key)", "no_key")
    recipients: dict[str, tuple[str, int]] = {}
    for pid in data.recipients:
        if pid == member.participant_id:
            raise invalid("you cannot send a document to yourself", "bad_recipients")
        entry = keys.get((pid, data.suite))
        if entry is None:
            raise not_found(f"{pid} has no suite {data.suite} key in this call", "no_key")
        if is_device(entry.role):
            # Documents go to people only: never wrapped to a device of the call.
            raise forbidden(f"{pid} is a device; documents go to people only",
                            "device_recipient")
        if entry.role == "clerk":
            # The office's clerk holds call keys for the chat only (signaling/in_call/chat.py).
            raise forbidden(f"{pid} is the office's clerk; documents go to the call's people",
                            "chat_only")
        recipients[pid] = (entry.kind, entry.principal_id)
    transfer_id = secrets.token_urlsafe(12)
    transfer = Transfer(
        id=transfer_id,
        call_id=data.call_id,
        sender=member.participant_id,
        sender_principal=(ctx.principal.kind, ctx.principal.id),
        recipients=recipients,
        suite=data.suite,
        ciphertext_bytes=data.ciphertext_bytes,
        sha256=data.sha256,
        size=data.size,
        type=data.type,
        upload_token=secrets.token_urlsafe(32),
        download_tokens={pid: secrets.token_urlsafe(32) for pid in recipients},
        path=exchange.root / f"{transfer_id}.bin",
        created=time.time(),
    )
    if not exchange.shared:
        exchange.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        transfer.path.touch(mode=0o600)
    async with ctx.services.sessions() as session:
        session.add(DocumentTransfer(
            id=transfer.id, call_id=transfer.call_id, sender=transfer.sender,
            sender_kind=ctx.principal.kind, sender_principal_id=ctx.principal.id,
            suite=transfer.suite, ciphertext_bytes=transfer.ciphertext_bytes,
            sha256=transfer.sha256, size=transfer.size, type=transfer.type,
            upload_token=transfer.upload_token, received_bytes=0, created=transfer.created,
        ))
        await session.flush()
        session.add_all([
            DocumentRecipient(transfer_id=transfer.id, participant_id=pid, kind=kind,
                              principal_id=principal_id,
                              download_token=transfer.download_tokens[pid])
            for pid, (kind, principal_id) in recipients.items()
        ])
        await session.commit()
    return {"transfer_id": transfer_id, "upload_url": transfer.upload_url(), "received_bytes": 0}


def _too_large(size: int, limit: int) -> FlowError:
    return FlowError(ErrorCode.TOO_LARGE, f"{size} bytes is over the limit of {limit}",
                     "too_large")


class TransferRef(EventModel):
    transfer_id: str = Field(min_length=1, max_length=64)


async def _transfer_for(ctx: EventContext, transfer_id: str) -> tuple[Transfer, str | None]:
    """The transfer and the caller's recipient participant id (None for its sender).

    The kiosk and its document camera are one principal (the agent logs in with the kiosk's
    credential), so a still from the camera to the kiosk has the same principal on both
    ends: the socket that published a participant's key tells which of the two is asking.
    """
    transfer = await load_transfer(ctx.services, transfer_id)
    if transfer is None:
        raise not_found("no such document transfer (finished, cancelled or expired)")
    me = (ctx.principal.kind, ctx.principal.id)
    async with ctx.services.sessions() as session:
        keys = await load_keys(session, transfer.call_id)
    mine = {pid for (pid, _suite), key in keys.items() if key.sid and key.sid == ctx.sid}
    if transfer.sender_principal == me and transfer.sender in mine:
        return transfer, None
    for pid, principal in transfer.recipients.items():
        if principal == me and pid in mine:
            return transfer, pid
    if transfer.sender_principal == me:
        return transfer, None
    for pid, principal in transfer.recipients.items():
        if principal == me:
            return transfer, pid
    raise forbidden("not your document transfer")


@on_event("documents:status", TransferRef, roles=PARTICIPANT_ROLES)
async def transfer_status(ctx: EventContext, data: TransferRef) -> dict[str, Any]:
    """Where a transfer stands: lets an upload or download resume after a reconnect."""
    transfer, recipient = await _transfer_for(ctx, data.transfer_id)
    status: dict[str, Any] = {
        "state": transfer.state,
        "received_bytes": transfer.received_bytes,
        "ciphertext_bytes": transfer.ciphertext_bytes,
    }
    if recipient is None:
        status["upload_url"] = transfer.upload_url()
        status["verdicts"] = dict(transfer.verdicts)
    elif transfer.complete:
        status["download_url"] = transfer.download_url(recipient)
    return status


class ReceiptPayload(EventModel):
    transfer_id: str = Field(min_length=1, max_length=64)
    verdict: Literal["received", "refused"]
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(None, ge=0, le=DB_INT_MAX)
    type: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=32)


@on_event("documents:receipt", ReceiptPayload, roles=PARTICIPANT_ROLES)
async def document_receipt(ctx: EventContext, data: ReceiptPayload) -> dict[str, Any]:
    """A recipient reports the document verified (received) or refused; both are logged."""
    transfer, recipient = await _transfer_for(ctx, data.transfer_id)
    if recipient is None:
        raise forbidden("only a recipient answers for a document")
    if recipient in transfer.verdicts:
        raise conflict("already answered", "already_answered")
    if data.verdict == "received":
        if not transfer.complete:
            raise conflict("the upload is not complete", "not_ready")
        declared = (transfer.sha256, transfer.size, transfer.type)
        if (data.sha256, data.size, data.type) != declared:
            raise invalid("the document differs from what the sender declared", "mismatch")
        reason = None
    else:
        if data.reason not in ERROR_MESSAGES and data.reason != "cancelled":
            raise invalid("reason must be one of the protocol's error codes", "bad_reason")
        reason = data.reason
    async with ctx.services.sessions() as session:
        # Conditional: two sockets (or processes) answering at once record one answer.
        result = await session.execute(
            update(DocumentRecipient)
            .where(DocumentRecipient.transfer_id == transfer.id,
                   DocumentRecipient.participant_id == recipient,
                   DocumentRecipient.verdict.is_(None))
            .values(verdict=data.verdict, reason=reason)
        )
        await session.commit()
    if not getattr(result, "rowcount", 0):
        raise conflict("already answered", "already_answered")
    transfer.verdicts[recipient] = data.verdict
    entry = await _log_document(ctx.services, transfer, recipient, data.verdict, reason)
    await ctx.services.sio.emit(
        "documents:delivered",
        {"transfer_id": transfer.id, "recipient": recipient, "verdict": data.verdict,
         "reason": reason},
        room=participant_room(transfer.call_id, transfer.sender),
    )
    async with ctx.services.sessions() as session:
        unanswered = await session.scalar(
            select(func.count()).select_from(DocumentRecipient).where(
                DocumentRecipient.transfer_id == transfer.id,
                DocumentRecipient.verdict.is_(None)))
    if not unanswered:
        # The content goes at once; the rows stay until the sender has been told (his next
        # documents:key replays the verdicts: he may have been away for this push), the call
        # ends or the retention time passes.
        await drop_ciphertext(ctx.services, transfer.id)
    return {"log_seq": entry.get("seq") if entry else None}


async def _log_document(
    services: Services, transfer: Transfer, recipient: str, verdict: str, reason: str | None
) -> dict[str, Any] | None:
    """Append the receipt to the service log: hash, size, type, who, when — no content."""
    try:
        from signaling.records.service_log import record_document
    except ImportError:
        log.error("service log unavailable: document %s receipt not logged", transfer.id)
        return None
    async with services.sessions() as session:
        entry: dict[str, Any] = await record_document(
            session,
            call_id=transfer.call_id,
            sha256=transfer.sha256,
            size=transfer.size,
            type=transfer.type,
            sender=transfer.sender,
            receiver=recipient,
            received_at=datetime.now(UTC),
            verdict=verdict,
            reason=reason,
        )
        await session.commit()
    return entry


@on_event("documents:cancel", TransferRef, roles=PARTICIPANT_ROLES)
async def cancel_transfer(ctx: EventContext, data: TransferRef) -> dict[str, Any]:
    """The sender withdraws a document: the ciphertext is deleted, recipients are told."""
    transfer, recipient = await _transfer_for(ctx, data.transfer_id)
    if recipient is not None:
        raise forbidden("only the sender cancels; a recipient refuses with documents:receipt")
    await delete_transfer(ctx.services, transfer.id)
    for pid in transfer.recipients:
        await ctx.services.sio.emit("documents:cancelled", {"transfer_id": transfer.id},
                                    room=participant_room(transfer.call_id, pid))
    return {}


# --- events: signing keys ----------------------------------------------------------------------


class SigningKeyPayload(EventModel):
    public_key: str = Field(min_length=43, max_length=43)
    # Proof of possession: a signature over canonical_json(registration_statement(...)).
    proof: str = Field(min_length=86, max_length=86)


def registration_statement(user_id: int, public_key: str) -> dict[str, Any]:
    """What an expert signs to show he holds the key he registers."""
    return {"purpose": "etapalvelu.register_signing_key", "public_key": public_key,
            "user_id": user_id}


@on_event("signing:register_key", SigningKeyPayload, roles={Role.EXPERT, Role.CLERK})
async def register_signing_key(ctx: EventContext, data: SigningKeyPayload) -> dict[str, Any]:
    """Store the expert's (or the clerk's, for his desk entries) Ed25519 public key
    (users.signing_public_key)."""
    from signaling.store.models import User

    statement = registration_statement(ctx.principal.id, data.public_key)
    try:
        verify_record(statement, data.proof, data.public_key)
    except RecordSignatureError as exc:
        raise invalid(f"proof of key possession failed: {exc}", "bad_proof") from None
    async with ctx.services.sessions() as session:
        user = await session.get(User, ctx.principal.id)
        if user is None:
            raise not_found("no such user")
        replaced = user.signing_public_key not in (None, data.public_key)
        user.signing_public_key = data.public_key
        await session.commit()
    log.info("user %s registered signing key %s", ctx.principal.id, data.public_key)
    return {"public_key": data.public_key, "replaced": replaced}


# --- HTTP: ciphertext upload and download --------------------------------------------------


class _Refusal(Exception):
    """An HTTP refusal, answered as JSON `{ok: false, error: {code, message}, ...}`."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"ok": False, "error": {"code": code, "message": message}, **extra}


def _http_error(status: int, code: str, message: str, **extra: Any) -> _Refusal:
    return _Refusal(status, code, message, **extra)


def _answering_refusals(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refusal as refusal:
            return web.json_response(refusal.body, status=refusal.status)

    return wrapped


async def _authorised(request: web.Request) -> tuple[Services, Transfer, str | None]:
    services = services_of(request.app)
    transfer = await load_transfer(services, request.match_info["transfer_id"])
    token = request.query.get("token", "")
    if transfer is None:
        raise _http_error(404, "not_found", "no such document transfer")
    if hmac.compare_digest(token, transfer.upload_token):
        return services, transfer, None
    for pid, candidate in transfer.download_tokens.items():
        if hmac.compare_digest(token, candidate):
            return services, transfer, pid
    raise _http_error(403, "forbidden", "wrong token for this transfer")


async def upload_content(request: web.Request) -> web.Response:
    """PUT ciphertext bytes at `offset` (= bytes already received): append, resumable."""
    services, transfer, recipient = await _authorised(request)
    if recipient is not None:
        raise _http_error(403, "forbidden", "a download token cannot upload")
    try:
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise _http_error(400, "invalid", "offset must be an integer") from None
    if not 0 <= offset <= DB_INT_MAX:  # received_bytes is an INTEGER column
        raise _http_error(400, "invalid", f"offset must be from 0 to {DB_INT_MAX}")
    exchange = exchange_of(services)
    async with exchange.lock(transfer.id):
        fresh = await load_transfer(services, transfer.id)
        if fresh is None:
            raise _http_error(410, "gone", "the transfer was cancelled")
        transfer = fresh
        if offset != transfer.received_bytes:
            raise _http_error(409, "conflict", "offset is not where the upload stands",
                              received_bytes=transfer.received_bytes)
        if transfer.complete:
            raise _http_error(409, "conflict", "the upload is already complete",
                              received_bytes=transfer.received_bytes)
        declared = request.content_length
        if declared is not None and offset + declared > transfer.ciphertext_bytes:
            raise _http_error(413, "too_large", "more bytes than the offer declared")
        sink = _ChunkSink(services, transfer) if exchange.shared else _FileSink(services,
                                                                              transfer)
        async with sink:
            # Browsers deliver the body in small pieces: gather ~1 MiB per write, so the
            # thread or database hand-off happens per megabyte, not per TCP segment.
            pending: list[bytes] = []
            pending_bytes = 0
            async for piece in request.content.iter_chunked(UPLOAD_READ):
                if transfer.received_bytes + pending_bytes + len(piece) > transfer.ciphertext_bytes:
                    raise _http_error(413, "too_large", "more bytes than the offer declared",
                                      received_bytes=transfer.received_bytes)
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= UPLOAD_READ:
                    await sink.write(b"".join(pending))
                    pending, pending_bytes = [], 0
            if pending:
                await sink.write(b"".join(pending))
        if transfer.complete:
            await _announce(services, transfer)
    return web.json_response({"ok": True, "received_bytes": transfer.received_bytes,
                              "state": transfer.state})


class _Gone(Exception):
    pass


async def _advance(services: Services, transfer: Transfer, added: int,
                   chunk: tuple[int, bytes] | None = None) -> None:
    """Count `added` bytes (and store `chunk`) only if the row is where this upload left it:
    a cancel, expiry or upload on another process in between makes it fail."""
    async with services.sessions() as session:
        result = await session.execute(
            update(DocumentTransfer)
            .where(DocumentTransfer.id == transfer.id,
                   DocumentTransfer.received_bytes == transfer.received_bytes)
            .values(received_bytes=transfer.received_bytes + added)
        )
        if not getattr(result, "rowcount", 0):
            await session.rollback()
            raise _Gone
        if chunk is not None:
            session.add(DocumentChunk(transfer_id=transfer.id, seq=chunk[0], data=chunk[1]))
        await session.commit()
    transfer.received_bytes += added


class _FileSink:
    """One process: the ciphertext goes to data_dir/documents/<id>.bin."""

    def __init__(self, services: Services, transfer: Transfer) -> None:
        self.services, self.transfer = services, transfer
        self.fh: Any = None

    async def __aenter__(self) -> _FileSink:
        if not self.transfer.path.exists():
            raise _http_error(410, "gone", "the transfer was cancelled")
        self.fh = open(self.transfer.path, "r+b")  # noqa: ASYNC230 - writes in a thread
        self.fh.truncate(self.transfer.received_bytes)
        self.fh.seek(self.transfer.received_bytes)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.fh.close()

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self.fh.write, data)
        await asyncio.to_thread(self.fh.flush)
        try:
            await _advance(self.services, self.transfer, len(data))
        except _Gone:
            raise _http_error(410, "gone", "the transfer was cancelled") from None


class _ChunkSink:
    """Several processes: each piece is a `document_chunks` row every process can read."""

    def __init__(self, services: Services, transfer: Transfer) -> None:
        self.services, self.transfer = services, transfer
        self.seq = 0

    async def __aenter__(self) -> _ChunkSink:
        async with self.services.sessions() as session:
            last = await session.scalar(
                select(func.max(DocumentChunk.seq))
                .where(DocumentChunk.transfer_id == self.transfer.id))
        self.seq = 0 if last is None else last + 1
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def write(self, data: bytes) -> None:
        try:
            await _advance(self.services, self.transfer, len(data), (self.seq, data))
        except _Gone:
            raise _http_error(410, "gone", "the transfer was cancelled "
                              "(or is being uploaded elsewhere)") from None
        self.seq += 1


async def _announce(services: Services, transfer: Transfer) -> None:
    for pid in transfer.recipients:
        await services.sio.emit("documents:incoming", transfer.incoming(pid),
                                room=participant_room(transfer.call_id, pid))


async def download_content(request: web.Request) -> web.StreamResponse:
    """GET the ciphertext (a `Range: bytes=N-` header resumes); recipients only."""
    services, transfer, recipient = await _authorised(request)
    if recipient is None:
        raise _http_error(403, "forbidden", "an upload token cannot download")
    if not transfer.complete:
        raise _http_error(409, "conflict", "the upload is not complete yet")
    if recipient in transfer.verdicts:
        # answered: when all have, the content is already gone
        raise _http_error(409, "already_answered", "this document has been answered")
    headers = {"Content-Type": "application/octet-stream", "Cache-Control": "no-store"}
    if not exchange_of(services).shared:
        # FileResponse answers Range requests with 206 and streams with sendfile.
        return web.FileResponse(transfer.path, headers=headers)
    return await _stream_chunks(request, services, transfer, headers)


async def _stream_chunks(request: web.Request, services: Services, transfer: Transfer,
                         headers: dict[str, str]) -> web.StreamResponse:
    total = transfer.ciphertext_bytes
    start, end = 0, total - 1
    if request.headers.get("Range"):
        try:
            ranged = request.http_range
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        start = ranged.start or 0
        if start < 0:  # `bytes=-N`: the last N bytes
            start = max(0, total + start)
        end = total - 1 if ranged.stop is None else min(ranged.stop, total) - 1
        if start > end:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
    response = web.StreamResponse(status=206 if request.headers.get("Range") else 200,
                                  headers=headers)
    response.content_length = end - start + 1
    if request.headers.get("Range"):
        response.headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    response.headers["Accept-Ranges"] = "bytes"
    await response.prepare(request)
    position, seq = 0, 0
    while position <= end:
        # One chunk (~1 MiB) at a time, so a download never holds the whole document.
        async with services.sessions() as session:
            data = await session.scalar(
                select(DocumentChunk.data).where(DocumentChunk.transfer_id == transfer.id,
                                                 DocumentChunk.seq == seq))
        if data is None:
            break  # deleted meanwhile (cancel, expiry): the client sees a short body
        piece_end = position + len(data)
        if piece_end > start:
            await response.write(data[max(0, start - position):end + 1 - position])
        position, seq = piece_end, seq + 1
    await response.write_eof()
    return response


async def sweep_expired(services: Services, now: float | None = None) -> list[str]:
    """Delete every expired transfer, whichever process took it; deletes are conditional, so
    processes sweeping at once delete each transfer once."""
    retention = services.settings.document_retention_seconds
    cutoff = (time.time() if now is None else now) - retention
    async with services.sessions() as session:
        ids = (await session.scalars(
            select(DocumentTransfer.id).where(DocumentTransfer.created < cutoff))).all()
    gone = []
    for transfer_id in ids:
        if await delete_transfer(services, transfer_id, older_than=cutoff):
            log.info("document transfer %s expired", transfer_id)
            gone.append(transfer_id)
    await _drop_keys_of_ended_calls(services)
    return gone


async def _drop_keys_of_ended_calls(services: Services) -> None:
    """Call keys and transfers are of no use once the call has ended (documents need an active
    call); the ciphertext of an unanswered transfer goes with it."""
    from signaling.store.flow_models import Call, CallStatus

    async with services.sessions() as session:
        ended = select(Call.id).where(Call.status == CallStatus.ENDED)
        await session.execute(delete(DocumentCallKey).where(DocumentCallKey.call_id.in_(ended)))
        finished = (await session.scalars(
            select(DocumentTransfer.id).where(DocumentTransfer.call_id.in_(ended)))).all()
        await session.commit()
    for transfer_id in finished:
        await delete_transfer(services, transfer_id)


async def _sweep(services: Services) -> None:
    while True:
        await asyncio.sleep(min(SWEEP_SECONDS, services.settings.document_retention_seconds / 2))
        try:
            await sweep_expired(services)
        except Exception:
            log.exception("document expiry sweep failed")


async def _forget_socket(services: Services, sid: str, _principal: Principal) -> None:
    async with services.sessions() as session:
        await session.execute(
            update(DocumentCallKey).where(DocumentCallKey.sid == sid).values(sid=""))
        await session.commit()


def setup(app: web.Application, services: Services) -> None:
    exchange = exchange_of(services)
    app.router.add_put("/api/documents/{transfer_id}/content",
                       _answering_refusals(upload_content))
    app.router.add_get("/api/documents/{transfer_id}/content",
                       _answering_refusals(download_content))
    services.connections.on_disconnect(_forget_socket)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        if not exchange.shared:
            # One process owns every transfer: what an earlier run left has no ciphertext
            # file any more (or no transfer), so both go.
            if exchange.root.exists():
                for stale in exchange.root.glob("*.bin"):
                    stale.unlink(missing_ok=True)
            async with services.sessions() as session:
                await session.execute(delete(DocumentChunk))
                await session.execute(delete(DocumentRecipient))
                await session.execute(delete(DocumentTransfer))
                await session.commit()
        task = asyncio.create_task(_sweep(services))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not exchange.shared:
            # One process: no transfer outlives it (a restart could not finish it anyway), so
            # no ciphertext stays in the data folder after a stop.
            async with services.sessions() as session:
                left = (await session.scalars(select(DocumentTransfer.id))).all()
            for transfer_id in left:
                with contextlib.suppress(Exception):
                    await delete_transfer(services, transfer_id)

    app.cleanup_ctx.append(lifecycle)

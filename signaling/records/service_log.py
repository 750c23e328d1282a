"""The service log (apudiaari): append-only, hash-chained records of service events and
received documents.

Each entry's hash is SHA-256 over the canonical JSON (signaling.records.record_signing, RFC 8785
subset) of `{seq, kind, filed_at, record, signature, signer_public_key, prev_hash}`, and
`prev_hash` is the previous entry's hash (64 zeros for the first). Changing, removing or
reordering any entry breaks every hash after it; `verify_chain` finds the first break.
Sequence numbers are the primary key and assigned as previous + 1, so two writers can never
both append after the same entry: the second gets an integrity error and retries on top.
Removing entries at the end, emptying the log or rewriting an entry and recomputing every
hash after it cannot be seen from inside the chain: the head is therefore anchored outside the
database by checkpoints signed with the server's key (signaling/records/log_checkpoints.py), and
`admin log verify` checks the chain against them.

A service record must carry the expert's Ed25519 signature over the canonical JSON of its
record body, verified on filing against his registered public key and again by `verify`.
Document receipts are written by the server and are not signed; the checkpoints cover them.

Kinds of entry: "service" (an expert's record of a call, signed), "document" (a document
received in a call, by the server), "desk" (a clerk's desk service, signed by the clerk;
signaling/records/desk_services.py) and "receipt" (the customer's receipt issued at the end of a
call,
by the server; signaling/records/receipts.py). The `expert_id` column holds the signing user of the
signed kinds (the expert of a service record, the clerk of a desk entry).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.flow_common import (
    OUTCOMES,
    authority_code,
    conflict,
    forbidden,
    invalid,
    iso,
    not_found,
    office_name,
    participants_of,
    seconds_between,
    service_types_for,
    user_name,
)
from signaling.records.record_signing import RecordSignatureError, verify_record
from signaling.store.flow_models import Call, CallStatus, ParticipantRole, ServiceLogEntry
from signaling.store.models import User
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.wire.canonical import CanonicalJSONError, canonical_json

if TYPE_CHECKING:
    from signaling.transport.services import Services

GENESIS_HASH = "0" * 64
APPEND_ATTEMPTS = 20
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
KIND_SERVICE = "service"
KIND_DOCUMENT = "document"
KIND_DESK = "desk"
KIND_RECEIPT = "receipt"
# The record field each kind's month (and period filters) come from.
_MONTH_FIELD = {
    KIND_SERVICE: "ended_at",
    KIND_DOCUMENT: "received_at",
    KIND_DESK: "served_at",
    KIND_RECEIPT: "issued_at",
}


def entry_hash(
    *,
    seq: int,
    kind: str,
    filed_at: str,
    record: dict[str, Any],
    signature: str | None,
    signer_public_key: str | None,
    prev_hash: str,
) -> str:
    material = {
        "seq": seq,
        "kind": kind,
        "filed_at": filed_at,
        "record": record,
        "signature": signature,
        "signer_public_key": signer_public_key,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(material)).hexdigest()


def entry_view(entry: ServiceLogEntry) -> dict[str, Any]:
    """LogEntry as sent over socket.io (`body` is the record; exports call it `record`)."""
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "filed_at": entry.filed_at,
        "body": json.loads(entry.record),
        "signature": entry.signature,
        "signer_public_key": entry.signer_public_key,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def month_of(record: dict[str, Any], kind: str) -> str:
    stamp = record.get(_MONTH_FIELD.get(kind, "received_at"))
    return str(stamp or "")[:7]


def filer_id(record: dict[str, Any], kind: str) -> int | None:
    """The user who signed a signed kind's record (its `expert_id` column), else None."""
    field_name = {KIND_SERVICE: "expert_id", KIND_DESK: "clerk_id"}.get(kind)
    value = record.get(field_name) if field_name else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def last_entry(session: AsyncSession) -> Any:
    """(seq, hash) of the newest entry, or None for an empty log."""
    return (
        await session.execute(
            select(ServiceLogEntry.seq, ServiceLogEntry.hash)
            .order_by(ServiceLogEntry.seq.desc())
            .limit(1)
        )
    ).first()


async def append_entry(
    session: AsyncSession,
    *,
    kind: str,
    record: dict[str, Any],
    now: datetime,
    signature: str | None = None,
    signer_public_key: str | None = None,
) -> ServiceLogEntry:
    """Append one entry on top of the chain inside a savepoint; the caller commits."""
    text = canonical_json(record).decode("utf-8")
    filed_at = iso(now) or ""
    call_id = record.get("call_id")
    expert_id = filer_id(record, kind)
    for _attempt in range(APPEND_ATTEMPTS):
        last = await last_entry(session)
        seq = last[0] + 1 if last else 1
        prev = last[1] if last else GENESIS_HASH
        entry = ServiceLogEntry(
            seq=seq,
            kind=kind,
            filed_at=filed_at,
            month=month_of(record, kind),
            call_id=call_id if isinstance(call_id, int) else None,
            expert_id=expert_id,
            record=text,
            signature=signature,
            signer_public_key=signer_public_key,
            prev_hash=prev,
            hash=entry_hash(
                seq=seq,
                kind=kind,
                filed_at=filed_at,
                record=record,
                signature=signature,
                signer_public_key=signer_public_key,
                prev_hash=prev,
            ),
        )
        try:
            async with session.begin_nested():
                session.add(entry)
            return entry
        except IntegrityError:
            continue  # someone appended after the same entry first; go on top of his
    raise conflict("the service log is busy; try again", "log_busy")


async def record_document(
    session: AsyncSession,
    *,
    call_id: int,
    sha256: str,
    size: int,
    type: str,
    sender: str,
    receiver: str,
    received_at: datetime,
    verdict: str = "received",
    reason: str | None = None,
) -> dict[str, Any]:
    """Log a document received in a call (never its content or name); the caller commits.

    Returns the LogEntry view. Raises ValueError for a malformed hash or size, an unknown
    call, or a naive time.
    """
    if not isinstance(sha256, str) or not SHA256_HEX.match(sha256):
        raise ValueError("sha256 must be 64 lower-case hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("size must be a non-negative integer")
    if verdict not in ("received", "refused"):
        raise ValueError("verdict must be 'received' or 'refused'")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    call = await session.get(Call, call_id)
    if call is None:
        raise ValueError(f"no call {call_id}")
    record = {
        "call_id": call_id,
        "authority_id": call.authority_id,
        "office_id": call.office_id,
        "sha256": sha256,
        "size": size,
        "type": str(type)[:200],
        "sender": str(sender)[:64],
        "receiver": str(receiver)[:64],
        "received_at": iso(received_at),
        "verdict": verdict,
        "reason": None if reason is None else str(reason)[:64],
    }
    entry = await append_entry(session, kind=KIND_DOCUMENT, record=record, now=utcnow())
    return entry_view(entry)


async def documents_of_call(session: AsyncSession, call_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(ServiceLogEntry)
        .where(ServiceLogEntry.call_id == call_id, ServiceLogEntry.kind == KIND_DOCUMENT)
        .order_by(ServiceLogEntry.seq)
    )
    documents = []
    for entry in rows.scalars():
        body = json.loads(entry.record)
        documents.append(
            {
                "seq": entry.seq,
                **{
                    k: body.get(k)
                    for k in (
                        "sha256",
                        "size",
                        "type",
                        "sender",
                        "receiver",
                        "received_at",
                        "verdict",
                        "reason",
                    )
                },
            }
        )
    return documents


async def build_record(
    session: AsyncSession, call: Call, service_type: str, outcome: str
) -> dict[str, Any]:
    """The service record body of an ended call (what the expert signs)."""
    assert call.ended_at is not None
    interpreters = [
        {"id": p.principal_id, "name": p.name, "language": p.language}
        for p in await participants_of(session, call.id)
        if p.role == ParticipantRole.INTERPRETER and p.joined_at is not None
    ]
    return {
        "call_id": call.id,
        "office_id": call.office_id,
        "office_name": await office_name(session, call.office_id),
        "endpoint_id": call.endpoint_id,
        "authority_id": call.authority_id,
        "authority_code": await authority_code(session, call.authority_id),
        "expert_id": call.expert_id,
        "expert_name": await user_name(session, call.expert_id),
        "interpreters": interpreters,
        "language": call.language,
        "kind": call.kind,
        "appointment_id": call.appointment_id,
        "service_type": service_type,
        "outcome": outcome,
        "queued_at": iso(call.queued_at),
        "started_at": iso(call.started_at),
        "ended_at": iso(call.ended_at),
        "wait_seconds": seconds_between(call.queued_at, call.started_at),
        "duration_seconds": seconds_between(call.started_at, call.ended_at),
        "documents": await documents_of_call(session, call.id),
        # The customer's receipt code, when the kiosk issued one at the end of the call: the
        # signed record binds the code the customer holds to this call
        # (signaling/records/receipts.py).
        **await _receipt_field(session, call.id),
        # The chat transcript's SHA-256, when the expert attached it (signaling/in_call/chat.py).
        **await _chat_transcript_field(session, call.id),
    }


async def _chat_transcript_field(session: AsyncSession, call_id: int) -> dict[str, Any]:
    from signaling.records.chat_transcripts import transcript_field

    return await transcript_field(session, call_id)


async def _receipt_field(session: AsyncSession, call_id: int) -> dict[str, Any]:
    from signaling.store.desk_models import Receipt

    code = (
        await session.execute(select(Receipt.code).where(Receipt.call_id == call_id))
    ).scalar_one_or_none()
    return {"receipt_code": code} if code else {}


async def _fileable_call(
    session: AsyncSession, expert: Principal, call_id: int, service_type: str, outcome: str
) -> Call:
    call = await session.get(Call, call_id, populate_existing=True)
    if call is None:
        raise not_found(f"no call {call_id}")
    if call.expert_id != expert.id:
        raise forbidden(f"call {call_id} is not yours", "not_your_call")
    if call.status == CallStatus.ACTIVE or call.ended_at is None:
        raise conflict("end the call before filing its record", "call_active")
    if call.record_seq is not None:
        raise conflict("the record of this call was already filed", "already_filed")
    code = await authority_code(session, call.authority_id)
    if service_type not in {t.code for t in service_types_for(code)}:
        raise invalid(f"{service_type!r} is not a service type of {code}", "unknown_service_type")
    if outcome not in OUTCOMES:
        raise invalid(f"outcome must be one of {', '.join(OUTCOMES)}", "unknown_outcome")
    return call


async def draft_record(
    session: AsyncSession, expert: Principal, call_id: int, service_type: str, outcome: str
) -> dict[str, Any]:
    call = await _fileable_call(session, expert, call_id, service_type, outcome)
    return await build_record(session, call, service_type, outcome)


async def file_record(
    session: AsyncSession,
    expert: Principal,
    call_id: int,
    service_type: str,
    outcome: str,
    signature: str | None,
    now: datetime,
) -> ServiceLogEntry:
    """File the service record of an ended call (committed here).

    The record must be signed by the expert's registered key: an expert without one is
    refused (`no_signing_key`), an unsigned record too (`signature_required`)."""
    call = await _fileable_call(session, expert, call_id, service_type, outcome)
    record = await build_record(session, call, service_type, outcome)
    user = await session.get(User, expert.id)
    public_key = user.signing_public_key if user is not None else None
    if not public_key:
        raise invalid(
            "you have no registered signing key: register one first (the expert console does "
            "it at login; event signing:register_key), then sign the record",
            "no_signing_key",
        )
    if not signature:
        raise invalid(
            "a service record must be signed: ask for it with record:draft, sign its canonical "
            "JSON with your registered key and send the signature",
            "signature_required",
        )
    try:
        verify_record(record, signature, public_key)
    except RecordSignatureError as exc:
        raise invalid(f"the signature does not verify: {exc}", "bad_signature") from exc
    entry = await append_entry(
        session,
        kind=KIND_SERVICE,
        record=record,
        now=now,
        signature=signature,
        signer_public_key=public_key,
    )
    result = await session.execute(
        update(Call)
        .where(Call.id == call.id, Call.record_seq.is_(None))
        .values(record_seq=entry.seq)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        await session.rollback()
        raise conflict("the record of this call was already filed", "already_filed")
    await session.commit()
    return entry


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None
    # Entry hashes at the sequence numbers `verify_entries` was asked to watch (checkpoints).
    watched: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    # Service records filed without a signature (before signatures were required).
    unsigned_service: tuple[int, ...] = ()
    # Set by signaling.records.log_checkpoints.verify_log: the latest checkpoint the log was checked
    # against, how many checkpoints were checked, entries after the latest one, and notes.
    checkpoint: dict[str, Any] | None = None
    checkpoints_checked: int = 0
    unanchored: int = 0
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "first_broken": None if self.ok else {"seq": self.broken_seq, "problem": self.problem},
            "checkpoint": self.checkpoint,
            "checkpoints_checked": self.checkpoints_checked,
            "unanchored_entries": self.unanchored,
            "unsigned_service_records": list(self.unsigned_service),
            "notes": list(self.notes),
        }


async def iter_entries(session: AsyncSession, batch: int = 500) -> AsyncIterator[ServiceLogEntry]:
    after = 0
    while True:
        rows = list(
            (
                await session.execute(
                    select(ServiceLogEntry)
                    .where(ServiceLogEntry.seq > after)
                    .order_by(ServiceLogEntry.seq)
                    .limit(batch)
                )
            ).scalars()
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq
        session.expunge_all()


def check_entry(entry: ServiceLogEntry, expected_seq: int, prev_hash: str) -> str | None:
    """What is wrong with this entry given the one before it, or None."""
    if entry.seq != expected_seq:
        return f"sequence gap: expected entry {expected_seq}, found {entry.seq}"
    if entry.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash (entry removed or reordered)"
    try:
        record = json.loads(entry.record)
        canonical = canonical_json(record).decode("utf-8")
    except (ValueError, CanonicalJSONError) as exc:
        return f"record is not canonical JSON: {exc}"
    if not isinstance(record, dict):
        return "record is not a JSON object"
    if canonical != entry.record:
        return "record text is not in canonical form (edited by hand?)"
    computed = entry_hash(
        seq=entry.seq,
        kind=entry.kind,
        filed_at=entry.filed_at,
        record=record,
        signature=entry.signature,
        signer_public_key=entry.signer_public_key,
        prev_hash=entry.prev_hash,
    )
    if computed != entry.hash:
        return f"hash mismatch: stored {entry.hash[:16]}…, computed {computed[:16]}…"
    if entry.month != month_of(record, entry.kind):
        return f"month column {entry.month!r} disagrees with the record"
    if entry.call_id != record.get("call_id"):
        return "call_id column disagrees with the record"
    expected_expert = (
        record.get("expert_id") if entry.kind == KIND_SERVICE else filer_id(record, entry.kind)
    )
    if entry.expert_id != expected_expert:
        return "expert_id column disagrees with the record"
    if entry.signature is not None:
        if not entry.signer_public_key:
            return "signature without a signer public key"
        try:
            verify_record(record, entry.signature, entry.signer_public_key)
        except RecordSignatureError as exc:
            return f"signature does not verify: {exc}"
    return None


async def verify_entries(
    entries: AsyncIterable[ServiceLogEntry], watch: Collection[int] = ()
) -> VerifyReport:
    """Walk the chain from entry 1; stops at the first broken entry. The hashes of the entries
    numbered in `watch` are returned in `watched` (for the checkpoints)."""
    expected, prev, count = 1, GENESIS_HASH, 0
    wanted = set(watch)
    watched: dict[int, str] = {}
    unsigned: list[int] = []
    async for entry in entries:
        problem = check_entry(entry, expected, prev)
        if problem is not None:
            return VerifyReport(False, count, prev, entry.seq, problem, watched, tuple(unsigned))
        if entry.seq in wanted:
            watched[entry.seq] = entry.hash
        if entry.kind == KIND_SERVICE and entry.signature is None:
            unsigned.append(entry.seq)
        count += 1
        expected, prev = entry.seq + 1, entry.hash
    return VerifyReport(True, count, prev, watched=watched, unsigned_service=tuple(unsigned))


async def verify_chain(session: AsyncSession, watch: Collection[int] = ()) -> VerifyReport:
    """The hash chain and every signature, from inside the database only: removing the newest
    entries or re-chaining is not visible here (signaling.records.log_checkpoints.verify_log is)."""
    return await verify_entries(iter_entries(session), watch)


# --- events -----------------------------------------------------------------------------------


class RecordPayload(EventModel):
    call_id: DbId
    service_type: str = Field(min_length=1, max_length=64)
    outcome: str = Field(min_length=1, max_length=32)


class FilePayload(RecordPayload):
    signature: str | None = Field(default=None, min_length=16, max_length=200)


class HistoryPayload(EventModel):
    limit: int = Field(default=50, ge=1, le=200)


@on_event("record:draft", RecordPayload, roles={Role.EXPERT})
async def record_draft(ctx: EventContext, data: RecordPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        body = await draft_record(
            session, ctx.principal, data.call_id, data.service_type, data.outcome
        )
    return {"body": body, "canonical": canonical_json(body).decode("utf-8")}


@on_event("record:file", FilePayload, roles={Role.EXPERT})
async def record_file(ctx: EventContext, data: FilePayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        entry = await file_record(
            session,
            ctx.principal,
            data.call_id,
            data.service_type,
            data.outcome,
            data.signature,
            utcnow(),
        )
        view = entry_view(entry)
    # Committed: anchor the new head outside the database before answering.
    from signaling.records.log_checkpoints import checkpoint_after_append

    await checkpoint_after_append(ctx.services)
    from signaling.flow.flow_metrics import flow_metrics

    metrics = flow_metrics(ctx.services)
    if metrics is not None:
        metrics.records.inc()
    return {"entry": view}


@on_event("record:history", HistoryPayload, roles={Role.EXPERT})
async def record_history(ctx: EventContext, data: HistoryPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        rows = await session.execute(
            select(ServiceLogEntry)
            .where(
                ServiceLogEntry.expert_id == ctx.principal.id,
                ServiceLogEntry.kind == KIND_SERVICE,
            )
            .order_by(ServiceLogEntry.seq.desc())
            .limit(data.limit)
        )
        entries = [entry_view(e) for e in rows.scalars()]
    return {"entries": entries}


def setup(app: Any, services: Services) -> None:
    """Run the checkpoint writer while the app runs (signaling/records/log_checkpoints.py)."""
    from signaling.records.log_checkpoints import checkpointer_context

    app.cleanup_ctx.append(checkpointer_context)

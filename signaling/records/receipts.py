"""The customer's receipt of a call, and its verification against the service log.

The service log proves when a matter became pending (*vireille tulo*, seed 004), but the
customer leaves the kiosk with nothing. At the end of a call the kiosk asks for a receipt
(`receipt:issue`); the server gives the call one short code and appends a "receipt" entry to
the hash-chained log with what the receipt says: office, authority, the time the matter became
pending (the call's start), the issuing time and the log entries (number and SHA-256) of the
documents received in the call. The kiosk shows and prints it.

The expert files the call's service record later. The record's body then carries the
receipt's code (`receipt_code`, signaling/service_log.build_record) under the expert's
signature, so code, call and record are bound in the log itself; the receipt shows the
record's entry number once filed (a reprint, or the verification, has it).

An authority verifies a code the customer quotes (`GET /api/receipts/{code}`, admin;
`etapalvelu admin receipt verify CODE`): the whole chain with its signatures and signed
checkpoints must hold, the receipt entry must say this code and call, every document on it must
be that call's entry with the same hash (and none received before it missing), and a filed
record must name the same code, start time and documents.

Nothing personal is on a receipt: no customer (the kiosk has none), only the expert's name,
which the kiosk showed during the call.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Role
from signaling.flow.flow_common import conflict, forbidden, iso, not_found, office_name, user_name
from signaling.records.service_log import (
    KIND_DOCUMENT,
    KIND_RECEIPT,
    KIND_SERVICE,
    VerifyReport,
    append_entry,
    documents_of_call,
)
from signaling.store.desk_models import Receipt
from signaling.store.flow_models import Call, CallStatus, EndReason, ServiceLogEntry
from signaling.store.models import Authority
from signaling.transport.http import ApiError, json_ok, require_principal, services_of
from signaling.transport.protocol import EventContext, EventModel, on_event

# Crockford-like: no I, O, 0, 1, so a code read aloud or typed from paper is not misread.
RECEIPT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8  # 40 bits: guessing one of a million issued codes takes ~10^6 tries
CODE_PATTERN = re.compile(f"^[{RECEIPT_ALPHABET}]{{{CODE_LENGTH}}}$")
# A kiosk may ask for a call's receipt this long after the call ended (it was offline).
RECEIPT_WINDOW = timedelta(hours=1)
# Calls that gave the customer no service (nobody connected) or continue in another line.
NO_RECEIPT_REASONS = (EndReason.ABANDONED.value, EndReason.TRANSFERRED.value)
ISSUE_ATTEMPTS = 5


def new_code() -> str:
    return "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """As printed and read aloud: ABCD-EFGH."""
    return f"{code[:4]}-{code[4:]}"


def normalize_code(text: str) -> str:
    """A code as typed (any case, dashes or spaces) → stored form; ValueError if malformed."""
    if not isinstance(text, str) or len(text) > 32:
        raise ValueError("a receipt code is 8 letters and digits, e.g. ABCD-EFGH")
    code = re.sub(r"[\s-]", "", text).upper()
    if not CODE_PATTERN.match(code):
        raise ValueError("a receipt code is 8 letters and digits, e.g. ABCD-EFGH")
    return code


async def _received_documents(session: AsyncSession, call_id: int) -> list[dict[str, Any]]:
    """The documents the call's people received (not refused): log number and hash."""
    return [
        {"seq": d["seq"], "sha256": d["sha256"]}
        for d in await documents_of_call(session, call_id)
        if (d.get("verdict") or "received") == "received"
    ]


async def receipt_record(
    session: AsyncSession, call: Call, code: str, now: datetime
) -> dict[str, Any]:
    """The body of the receipt's log entry (what the receipt says)."""
    authority = await session.get(Authority, call.authority_id)
    return {
        "receipt_code": code,
        "call_id": call.id,
        "office_id": call.office_id,
        "office_name": await office_name(session, call.office_id),
        "authority_id": call.authority_id,
        "authority_code": authority.code if authority is not None else "",
        # The moment the matter became pending: the call's start.
        "pending_at": iso(call.started_at),
        "issued_at": iso(now),
        "documents": await _received_documents(session, call.id),
    }


async def _existing(session: AsyncSession, call_id: int) -> Receipt | None:
    found = await session.execute(select(Receipt).where(Receipt.call_id == call_id))
    return found.scalar_one_or_none()


async def issue_receipt(
    session: AsyncSession, endpoint_id: int, call_id: int, now: datetime
) -> tuple[Receipt, bool]:
    """The call's receipt, issued now if it has none (committed). Returns (receipt, new)."""
    call = await session.get(Call, call_id, populate_existing=True)
    if call is None:
        raise not_found(f"no call {call_id}")
    if call.endpoint_id != endpoint_id:
        raise forbidden(f"call {call_id} was not at this kiosk", "not_your_call")
    existing = await _existing(session, call_id)
    if existing is not None:
        return existing, False
    if call.status == CallStatus.ACTIVE or call.ended_at is None:
        raise conflict("the call has not ended", "call_active")
    if call.end_reason in NO_RECEIPT_REASONS:
        raise conflict(f"a call that ended {call.end_reason} has no receipt", "no_receipt")
    if now - call.ended_at > RECEIPT_WINDOW:
        raise conflict("the call ended too long ago for a receipt", "receipt_window_closed")
    for _attempt in range(ISSUE_ATTEMPTS):
        code = new_code()
        receipt = Receipt(code=code, call_id=call_id, issued_at=now)
        try:
            async with session.begin_nested():
                session.add(receipt)
        except IntegrityError:
            existing = await _existing(session, call_id)
            if existing is not None:  # another request of the same kiosk won
                return existing, False
            continue  # the code was taken: draw another
        entry = await append_entry(
            session,
            kind=KIND_RECEIPT,
            record=await receipt_record(session, call, code, now),
            now=now,
        )
        receipt.log_seq = entry.seq
        await session.commit()
        return receipt, True
    raise conflict("could not draw a free receipt code; try again", "receipt_busy")


async def receipt_view(session: AsyncSession, receipt: Receipt) -> dict[str, Any]:
    """What the kiosk shows and prints."""
    call = await session.get(Call, receipt.call_id)
    entry = await session.get(ServiceLogEntry, receipt.log_seq) if receipt.log_seq else None
    body = json.loads(entry.record) if entry is not None else {}
    authority = await session.get(Authority, call.authority_id) if call is not None else None
    return {
        "code": format_code(receipt.code),
        "office_name": body.get("office_name", ""),
        "authority_id": body.get("authority_id"),
        "authority_code": body.get("authority_code", ""),
        "authority_name": (
            {"fi": authority.name_fi, "sv": authority.name_sv, "en": authority.name_en}
            if authority is not None
            else None
        ),
        "expert_name": await user_name(session, call.expert_id) if call is not None else "",
        "pending_at": body.get("pending_at"),
        "issued_at": iso(receipt.issued_at),
        "log_seq": receipt.log_seq,
        "record_seq": call.record_seq if call is not None else None,
        "documents": body.get("documents", []),
    }


# --- verification -----------------------------------------------------------------------------


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


async def _entry(session: AsyncSession, seq: Any) -> ServiceLogEntry | None:
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return await session.get(ServiceLogEntry, seq)


async def verify_receipt(session: AsyncSession, code_text: str, source: Any) -> dict[str, Any]:
    """Check a receipt against the log. `source` is a log_checkpoints.CheckpointSource.

    Raises ValueError for a malformed code and LookupError for an unknown one."""
    from signaling.records.log_checkpoints import verify_log

    code = normalize_code(code_text)
    receipt = (
        await session.execute(select(Receipt).where(Receipt.code == code))
    ).scalar_one_or_none()
    if receipt is None:
        raise LookupError(f"no receipt {format_code(code)}")
    receipt_id, call_id, log_seq = receipt.id, receipt.call_id, receipt.log_seq
    view = await receipt_view(session, receipt)
    report: VerifyReport = await verify_log(session, source)
    checks = [
        _check(
            "log",
            report.ok,
            f"{report.entries} entries, chain, signatures and checkpoints hold"
            if report.ok
            else f"the log is broken at entry {report.broken_seq}: {report.problem}",
        )
    ]
    entry = await _entry(session, log_seq)
    body = json.loads(entry.record) if entry is not None else {}
    checks.append(
        _check(
            "receipt_entry",
            entry is not None
            and entry.kind == KIND_RECEIPT
            and body.get("receipt_code") == code
            and body.get("call_id") == call_id,
            f"entry {log_seq} records receipt {format_code(code)} of call {call_id}"
            if entry is not None
            else f"entry {log_seq} is missing",
        )
    )
    # Every document on the receipt is the call's entry with that hash, and no document the
    # call received before the receipt is missing from it.
    found_documents = body.get("documents")
    listed: list[Any] = found_documents if isinstance(found_documents, list) else []
    problems = []
    for item in listed:
        doc = await _entry(session, item.get("seq") if isinstance(item, dict) else None)
        doc_body = json.loads(doc.record) if doc is not None else {}
        if (
            doc is None
            or doc.kind != KIND_DOCUMENT
            or doc.call_id != call_id
            or doc_body.get("sha256") != item.get("sha256")
        ):
            problems.append(f"document entry {item.get('seq') if isinstance(item, dict) else '?'}")
    logged = [d for d in await _received_documents(session, call_id) if d["seq"] < (log_seq or 0)]
    missing = [d["seq"] for d in logged if d not in listed]
    if missing:
        problems.append(f"documents {missing} are not on the receipt")
    checks.append(
        _check(
            "documents",
            not problems,
            f"{len(listed)} document hashes match the log"
            if not problems
            else "; ".join(problems) + " do not match the log",
        )
    )
    call = await session.get(Call, call_id)
    record_seq = call.record_seq if call is not None else None
    if record_seq is not None:
        record_entry = await _entry(session, record_seq)
        record = json.loads(record_entry.record) if record_entry is not None else {}
        hashes = {d.get("sha256") for d in record.get("documents", []) if isinstance(d, dict)}
        bound = record.get("receipt_code")
        ok = (
            record_entry is not None
            and record_entry.kind == KIND_SERVICE
            and record.get("call_id") == call_id
            and record.get("started_at") == body.get("pending_at")
            and all(isinstance(d, dict) and d.get("sha256") in hashes for d in listed)
            and bound in (None, code)
        )
        detail = (
            f"service record {record_seq} (signed by the expert) names this call"
            + (", this receipt code" if bound == code else " (filed before the receipt)")
            + ", its start and its documents"
            if ok
            else f"service record {record_seq} does not agree with the receipt"
        )
        checks.append(_check("service_record", ok, detail))
    return {
        "valid": all(c["ok"] for c in checks),
        "code": format_code(code),
        "receipt_id": receipt_id,
        "receipt": view,
        "checks": checks,
        "log": {
            "entries": report.entries,
            "head_hash": report.head_hash,
            "first_broken": None
            if report.ok
            else {"seq": report.broken_seq, "problem": report.problem},
        },
    }


# --- events -----------------------------------------------------------------------------------


class IssuePayload(EventModel):
    call_id: DbId


@on_event("receipt:issue", IssuePayload, roles={Role.ENDPOINT})
async def receipt_issue(ctx: EventContext, data: IssuePayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        receipt, new = await issue_receipt(session, ctx.principal.id, data.call_id, utcnow())
        view = await receipt_view(session, receipt)
    if new:
        from signaling.records.log_checkpoints import checkpoint_after_append

        await checkpoint_after_append(ctx.services)
    return {"receipt": view}


# --- HTTP -------------------------------------------------------------------------------------


async def get_receipt_verify(request: web.Request) -> web.Response:
    """GET /api/receipts/{code}: the receipt checked against the log (administrators)."""
    from signaling.records.log_checkpoints import CheckpointSource
    from signaling.transport.protocol import ErrorCode

    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    source = CheckpointSource.from_settings(services.settings)
    try:
        async with services.sessions() as session:
            result = await verify_receipt(session, request.match_info["code"], source)
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID, str(exc)) from None
    except LookupError as exc:
        raise ApiError(ErrorCode.NOT_FOUND, str(exc)) from None
    return json_ok(**result)


def setup(app: web.Application, _services: Any) -> None:
    app.router.add_get("/api/receipts/{code}", get_receipt_verify)


# --- CLI --------------------------------------------------------------------------------------



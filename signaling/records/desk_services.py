"""The clerk's own entries in the service log: services given at the office's desk.

The service secretary (role `clerk`, a user of one office) helps customers at the desk without
a video call: with an authority's e-service, by handing over a form, by checking an identity.
Compensation is paid from the service log (apudiaari, seed 004), so each such service is an
entry of the same hash-chained log, kind "desk", signed by the clerk exactly as an expert signs
a service record (his Ed25519 key registered with `signing:register_key`, the record body's
canonical JSON signed in the browser):

    desk:services  {}                                     → {services, authorities}
    desk:draft     {authority_id, desk_service}           → {body, canonical}
    desk:file      {authority_id, desk_service, served_at, signature} → {entry}
    desk:history   {limit?}                               → {entries} (his own, newest first)

The draft fixes `served_at`; `desk:file` sends it back and the server rebuilds the same body
(the clerk's and office's names as they are now) and checks the signature against it. A draft
older than DRAFT_VALID is refused (`stale_draft`): the time in the log is the time of service.
Sending the same signed entry twice (a retry after a lost answer) files it once.

Each office may have its own list (the administrator's "Desk services" on the office's offer
page, `PUT /api/admin/offices/{id}/desk-services`, table `office_desk_services`): its clerks
are offered, and may file, only those; an office without a list uses DESK_SERVICES.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.desk_catalogue import DESK_SERVICE_CODES, DESK_SERVICES, office_desk_codes
from signaling.flow.flow_common import (
    authority_view,
    enabled_authorities,
    forbidden,
    invalid,
    iso,
    office_name,
)
from signaling.records.record_signing import RecordSignatureError, verify_record
from signaling.records.service_log import KIND_DESK, append_entry, entry_view
from signaling.store.flow_models import ServiceLogEntry
from signaling.store.models import Authority, User
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.wire.canonical import canonical_json

# How long a draft may wait for its signature, and how far ahead of the server's clock a
# `served_at` may be (clock skew between two signaling processes).
DRAFT_VALID = timedelta(minutes=15)
CLOCK_SKEW = timedelta(seconds=60)


def _clerk_office(clerk: Principal) -> int:
    if clerk.office_id is None:
        raise forbidden("a clerk without an office cannot record desk services", "no_office")
    return clerk.office_id


async def build_desk_record(
    session: AsyncSession,
    clerk: Principal,
    authority_id: int,
    desk_service: str,
    served_at: datetime,
) -> dict[str, Any]:
    """The body of a desk entry (what the clerk signs); refuses an unknown service or a
    disabled or unknown authority."""
    office_id = _clerk_office(clerk)
    if desk_service not in DESK_SERVICE_CODES:
        raise invalid(
            f"desk_service must be one of {', '.join(DESK_SERVICE_CODES)}", "unknown_desk_service"
        )
    if desk_service not in await office_desk_codes(session, office_id):
        raise forbidden(
            f"{desk_service} is not on this office's list of desk services",
            "desk_service_not_listed",
        )
    authority = await session.get(Authority, authority_id)
    if authority is None or not authority.enabled:
        raise invalid(f"no enabled authority {authority_id}", "unknown_authority")
    user = await session.get(User, clerk.id)
    return {
        "desk_service": desk_service,
        "authority_id": authority.id,
        "authority_code": authority.code,
        "office_id": office_id,
        "office_name": await office_name(session, office_id),
        "clerk_id": clerk.id,
        "clerk_name": user.display_name if user is not None else clerk.name,
        "served_at": iso(served_at),
    }


def parse_served_at(text: str, now: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid("served_at is not an ISO 8601 time", "bad_served_at") from None
    if value.tzinfo is None:
        raise invalid("served_at must carry its time zone", "bad_served_at")
    if value > now + CLOCK_SKEW:
        raise invalid("served_at is in the future", "bad_served_at")
    if value < now - DRAFT_VALID:
        raise invalid("the draft is too old: ask for a new one and sign it", "stale_draft")
    return value


async def file_desk_entry(
    session: AsyncSession,
    clerk: Principal,
    authority_id: int,
    desk_service: str,
    served_at_text: str,
    signature: str,
    now: datetime,
) -> ServiceLogEntry:
    """Verify the clerk's signature over the rebuilt body and append the entry (committed)."""
    served_at = parse_served_at(served_at_text, now)
    record = await build_desk_record(session, clerk, authority_id, desk_service, served_at)
    user = await session.get(User, clerk.id)
    public_key = user.signing_public_key if user is not None else None
    if not public_key:
        raise invalid(
            "you have no registered signing key: register one first (the console does it at "
            "login; event signing:register_key), then sign the entry",
            "no_signing_key",
        )
    try:
        verify_record(record, signature, public_key)
    except RecordSignatureError as exc:
        raise invalid(f"the signature does not verify: {exc}", "bad_signature") from exc
    # A retry of an entry already filed (the answer was lost): the same signature over the
    # same body, so the same entry.
    earlier = (
        await session.execute(
            select(ServiceLogEntry)
            .where(
                ServiceLogEntry.kind == KIND_DESK,
                ServiceLogEntry.expert_id == clerk.id,
                ServiceLogEntry.signature == signature,
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    if earlier is not None:
        return earlier
    entry = await append_entry(
        session,
        kind=KIND_DESK,
        record=record,
        now=now,
        signature=signature,
        signer_public_key=public_key,
    )
    await session.commit()
    return entry


# --- events -----------------------------------------------------------------------------------


class Empty(EventModel):
    pass


class DeskPayload(EventModel):
    authority_id: DbId
    desk_service: str = Field(min_length=1, max_length=32)


class DeskFilePayload(DeskPayload):
    served_at: str = Field(min_length=20, max_length=40)
    signature: str = Field(min_length=86, max_length=86)


class DeskHistoryPayload(EventModel):
    limit: int = Field(default=20, ge=1, le=100)


@on_event("desk:services", Empty, roles={Role.CLERK})
async def desk_services(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    office_id = _clerk_office(ctx.principal)
    async with ctx.services.sessions() as session:
        authorities = await enabled_authorities(session)
        codes = await office_desk_codes(session, office_id)
    return {
        "services": [s.view() for s in DESK_SERVICES if s.code in codes],
        "authorities": [authority_view(a) for a in authorities],
    }


@on_event("desk:draft", DeskPayload, roles={Role.CLERK})
async def desk_draft(ctx: EventContext, data: DeskPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        body = await build_desk_record(
            session, ctx.principal, data.authority_id, data.desk_service, utcnow()
        )
    return {"body": body, "canonical": canonical_json(body).decode("utf-8")}


@on_event("desk:file", DeskFilePayload, roles={Role.CLERK})
async def desk_file(ctx: EventContext, data: DeskFilePayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        entry = await file_desk_entry(
            session,
            ctx.principal,
            data.authority_id,
            data.desk_service,
            data.served_at,
            data.signature,
            utcnow(),
        )
        view = entry_view(entry)
    # Committed: anchor the new head outside the database before answering.
    from signaling.records.log_checkpoints import checkpoint_after_append

    await checkpoint_after_append(ctx.services)
    return {"entry": view}


@on_event("desk:history", DeskHistoryPayload, roles={Role.CLERK})
async def desk_history(ctx: EventContext, data: DeskHistoryPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        rows = await session.execute(
            select(ServiceLogEntry)
            .where(ServiceLogEntry.kind == KIND_DESK, ServiceLogEntry.expert_id == ctx.principal.id)
            .order_by(ServiceLogEntry.seq.desc())
            .limit(data.limit)
        )
        entries = [entry_view(e) for e in rows.scalars()]
    return {"entries": entries}

"""The kiosk's one feedback question after a call ("How did it go?"), anonymous.

Seed 002 asks for customers' feedback on waiting and service. After a call the kiosk shows three
faces (good / neutral / bad) and an optional reason (waiting time, connection, the service
itself, other):

    feedback:give {call_id, answer, reason?}   (the kiosk of that call, within FEEDBACK_WINDOW)

The call id only proves that this kiosk just had a call and says whose office and authority it
was; it is not stored with the answer. Answers are counted in `feedback_tallies` per office,
authority, Finnish local hour, answer and reason (signaling/store/desk_models.py): there is no row
per
answer, so nothing links an answer to a call, a ticket or a customer. A kiosk answers once per
call (`feedback_claims`, dropped when the window has passed). The figures:

    GET /api/stats/feedback?by=authority|office|authority_office|month&from=YYYY-MM&to=YYYY-MM

Known limit: an hour with a single answer at one office and authority can be matched to the
one call of that hour by someone who also reads the calls table; hours are the finest grain.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Role
from signaling.flow.flow_common import conflict, forbidden, not_found
from signaling.store.desk_models import FeedbackClaim, FeedbackTally
from signaling.store.flow_models import Call, CallStatus
from signaling.store.models import Authority, Office
from signaling.transport.http import ApiError, json_ok, require_principal, services_of
from signaling.transport.protocol import EventContext, EventModel, on_event

ANSWERS = ("good", "neutral", "bad")
REASONS = ("waiting", "connection", "service", "other")
# The kiosk asks right after the call; a kiosk that was offline may answer a little later.
FEEDBACK_WINDOW = timedelta(minutes=30)
GROUPINGS = ("authority", "office", "authority_office", "month")
TALLY_ATTEMPTS = 5


def hour_bucket(now: datetime) -> str:
    """The Finnish local hour of `now`, e.g. "2026-11-05T11"."""
    from signaling.records.statistics import LOCAL_ZONE

    return now.astimezone(LOCAL_ZONE).strftime("%Y-%m-%dT%H")


async def _count(
    session: AsyncSession, office_id: int, authority_id: int, hour: str, answer: str, reason: str
) -> None:
    key = (
        FeedbackTally.office_id == office_id,
        FeedbackTally.authority_id == authority_id,
        FeedbackTally.hour == hour,
        FeedbackTally.answer == answer,
        FeedbackTally.reason == reason,
    )
    for _attempt in range(TALLY_ATTEMPTS):
        result = await session.execute(
            update(FeedbackTally)
            .where(*key)
            .values(count=FeedbackTally.count + 1)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) == 1:
            return
        try:
            async with session.begin_nested():
                session.add(
                    FeedbackTally(
                        office_id=office_id,
                        authority_id=authority_id,
                        hour=hour,
                        answer=answer,
                        reason=reason,
                        count=1,
                    )
                )
            return
        except IntegrityError:
            continue  # another process created the row first: count on it
    raise conflict("the feedback counter is busy; try again", "feedback_busy")


async def give_feedback(
    session: AsyncSession,
    endpoint_id: int,
    call_id: int,
    answer: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Count one answer for the office and authority of the kiosk's ended call (committed)."""
    call = await session.get(Call, call_id)
    if call is None:
        raise not_found(f"no call {call_id}")
    if call.endpoint_id != endpoint_id:
        raise forbidden(f"call {call_id} was not at this kiosk", "not_your_call")
    if call.status == CallStatus.ACTIVE or call.ended_at is None:
        raise conflict("the call has not ended", "call_active")
    if now - call.ended_at > FEEDBACK_WINDOW:
        raise conflict("the call ended too long ago for feedback", "feedback_window_closed")
    office_id, authority_id = call.office_id, call.authority_id
    # Claims of calls whose window has passed prove nothing any more: drop them.
    await session.execute(
        delete(FeedbackClaim)
        .where(
            FeedbackClaim.call_id.in_(select(Call.id).where(Call.ended_at < now - FEEDBACK_WINDOW))
        )
        .execution_options(synchronize_session=False)
    )
    try:
        async with session.begin_nested():
            session.add(FeedbackClaim(call_id=call_id))
    except IntegrityError:
        await session.rollback()
        raise conflict("this call's feedback was already given", "already_answered") from None
    await _count(session, office_id, authority_id, hour_bucket(now), answer, reason or "")
    await session.commit()


async def feedback_rows(
    session: AsyncSession, by: str, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    """Answers (and reasons) per authority, office, authority × office or month."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    query = select(FeedbackTally)
    if start:
        query = query.where(FeedbackTally.hour >= start)
    if end:
        # "2026-11" < "2026-11-30T23" < "2026-11~": the whole last month.
        query = query.where(FeedbackTally.hour < end + "~")
    authorities = {a.id: a for a in (await session.execute(select(Authority))).scalars()}
    offices = {o.id: o.name for o in (await session.execute(select(Office))).scalars()}
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for tally in (await session.execute(query)).scalars():
        key: tuple[Any, ...] = {
            "authority": (tally.authority_id,),
            "office": (tally.office_id,),
            "authority_office": (tally.authority_id, tally.office_id),
            "month": (tally.hour[:7],),
        }[by]
        row = groups.get(key)
        if row is None:
            row = {"answers": 0, **{a: 0 for a in ANSWERS}, "reasons": {r: 0 for r in REASONS}}
            if by in ("authority", "authority_office"):
                authority = authorities.get(tally.authority_id)
                row["authority_id"] = tally.authority_id
                row["authority_code"] = authority.code if authority else ""
            if by in ("office", "authority_office"):
                row["office_id"] = tally.office_id
                row["office_name"] = offices.get(tally.office_id, "")
            if by == "month":
                row["month"] = tally.hour[:7]
            groups[key] = row
        row["answers"] += tally.count
        row[tally.answer] = row.get(tally.answer, 0) + tally.count
        if tally.reason:
            row["reasons"][tally.reason] = row["reasons"].get(tally.reason, 0) + tally.count
    return [groups[k] for k in sorted(groups, key=lambda k: tuple(str(x) for x in k))]


# --- events -----------------------------------------------------------------------------------


class FeedbackPayload(EventModel):
    call_id: DbId
    answer: str = Field(pattern="^(good|neutral|bad)$")
    reason: str | None = Field(default=None, pattern="^(waiting|connection|service|other)$")


@on_event("feedback:give", FeedbackPayload, roles={Role.ENDPOINT})
async def feedback_give(ctx: EventContext, data: FeedbackPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        await give_feedback(
            session, ctx.principal.id, data.call_id, data.answer, data.reason, utcnow()
        )
    return {}


# --- HTTP -------------------------------------------------------------------------------------


async def get_feedback(request: web.Request) -> web.Response:
    from signaling.records.statistics import _month_param
    from signaling.transport.protocol import ErrorCode

    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    by = request.query.get("by", "authority")
    if by not in GROUPINGS:
        raise ApiError(ErrorCode.INVALID, f"by must be one of {', '.join(GROUPINGS)}")
    start, end = _month_param(request, "from"), _month_param(request, "to")
    async with services.sessions() as session:
        rows = await feedback_rows(session, by, start, end)
    return json_ok(by=by, rows=rows)


def setup(app: web.Application, _services: Any) -> None:
    app.router.add_get("/api/stats/feedback", get_feedback)

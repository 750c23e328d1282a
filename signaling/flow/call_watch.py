"""The call watchdog: ends calls whose expert did not come back, and calls nobody is in.

Every `call_watch_interval` seconds it reads the active calls and their participants from the
DATABASE (`call_participants.connected` / `disconnected_at`), so it works the same after a
restart and with several signaling processes:

- no participant (kiosk, expert, interpreters; a document camera does not count) has been
  connected for `empty_call_seconds` → the call ends with `abandoned`;
- otherwise, the expert has not been connected for `expert_return_seconds` → the call ends
  with `expert_lost`, and its kiosk may take a new ticket at the head of the same line
  (`ticket:requeue`, signaling/flow/queues.py) for `requeue_window_seconds`.

A participant who never joined counts from when he was added to the call. Ending goes through
`calls.end_call` (a conditional UPDATE on `status = 'active'`: when two processes decide at
once, one wins and the other skips) and `calls.finish_call` (closes the relay room, pushes
`call:ended`). Each end is logged (`log.info`) and kept as the call's `end_reason`.

At startup a lone process (no Redis) marks every participant of the still-active calls as
not connected since now (`socket_lost`): nobody holds a socket to a process that has just
started, and the watchdog's clocks start from the restart. Clients reconnect and `call:join`
again; whoever does not come back is ended by the rules above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from signaling.db import utcnow
from signaling.flow.calls import end_call, finish_call
from signaling.flow.flow_common import FlowError, participants_of
from signaling.store.flow_models import (
    Call,
    CallParticipant,
    CallStatus,
    EndReason,
    GoneReason,
    ParticipantRole,
)
from signaling.transport.services import Services

log = logging.getLogger(__name__)


def _since(participant: CallParticipant) -> datetime:
    """Since when he has not been connected (or was added, if he never joined)."""
    return participant.disconnected_at or participant.left_at or participant.added_at


def verdict(
    participants: Iterable[CallParticipant],
    now: datetime,
    *,
    expert_return_seconds: float,
    empty_call_seconds: float,
) -> EndReason | None:
    """How the watchdog ends a call with these participants now, or None to let it run."""
    people = [p for p in participants if p.role != ParticipantRole.DOCUMENT_CAMERA]
    if not people:
        return None
    if not any(p.connected for p in people):
        empty_since = max(_since(p) for p in people)
        if now - empty_since >= timedelta(seconds=empty_call_seconds):
            return EndReason.ABANDONED
    for expert in (p for p in people if p.role == ParticipantRole.EXPERT):
        if not expert.connected and now - _since(expert) >= timedelta(
            seconds=expert_return_seconds
        ):
            return EndReason.EXPERT_LOST
    return None


async def check_calls(services: Services, now: datetime | None = None) -> list[tuple[int, str]]:
    """One round: end what the rules say. Returns (call id, reason) of the calls it ended."""
    now = now or utcnow()
    settings = services.settings
    rules: dict[str, float] = {
        "expert_return_seconds": settings.expert_return_seconds,
        "empty_call_seconds": settings.empty_call_seconds,
    }
    async with services.sessions() as session:
        rows = await session.execute(
            select(CallParticipant)
            .join(Call, Call.id == CallParticipant.call_id)
            .where(Call.status == CallStatus.ACTIVE)
            .order_by(CallParticipant.call_id, CallParticipant.id)
        )
        by_call: dict[int, list[CallParticipant]] = {}
        for row in rows.scalars():
            by_call.setdefault(row.call_id, []).append(row)
    candidates = [
        call_id for call_id, people in by_call.items() if verdict(people, now, **rules) is not None
    ]
    ended: list[tuple[int, str]] = []
    for call_id in candidates:
        reason = await end_if_due(services, call_id, now, rules)
        if reason is not None:
            ended.append((call_id, reason))
    return ended


async def end_if_due(
    services: Services, call_id: int, now: datetime, rules: dict[str, float]
) -> str | None:
    """Re-check one call in its own transaction and end it; None when it was not due any
    more (someone came back) or someone else ended it first."""
    async with services.sessions() as session:
        call = await session.get(Call, call_id, populate_existing=True)
        if call is None or call.status != CallStatus.ACTIVE:
            return None
        reason = verdict(await participants_of(session, call_id), now, **rules)
        if reason is None:
            return None
        try:
            withdrawn = await end_call(session, call, now, reason.value)
        except FlowError:
            await session.rollback()
            return None
        ids = [r.id for r in withdrawn]
        await session.commit()
    if reason == EndReason.EXPERT_LOST:
        log.info(
            "call %s ended: expert_lost (the expert was not connected for %g s)",
            call_id,
            rules["expert_return_seconds"],
        )
    else:
        log.info(
            "call %s ended: abandoned (nobody was connected for %g s)",
            call_id,
            rules["empty_call_seconds"],
        )
    await finish_call(services, call_id, ids, reason.value)
    return reason.value


async def mark_participants_disconnected(services: Services, now: datetime | None = None) -> int:
    """At the start of a lone process: nobody in an active call is connected; their clocks
    start now. Returns how many participant rows were touched."""
    now = now or utcnow()
    active = select(Call.id).where(Call.status == CallStatus.ACTIVE).scalar_subquery()
    async with services.sessions() as session:
        await session.execute(
            update(CallParticipant)
            .where(CallParticipant.call_id.in_(active), CallParticipant.connected.is_(True))
            .values(connected=False, gone_reason=GoneReason.SOCKET_LOST.value)
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(
            update(CallParticipant)
            .where(CallParticipant.call_id.in_(active), CallParticipant.left_at.is_(None))
            .values(connected=False, disconnected_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def run_watch(services: Services) -> None:
    interval = services.settings.call_watch_interval
    while True:
        await asyncio.sleep(interval)
        try:
            await check_calls(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call watch round failed")


def setup(app: Any, services: Services) -> None:
    async def watch(_app: Any) -> AsyncIterator[None]:
        if not services.settings.redis_url:
            # Runs after the migration (signaling.server.app._lifecycle comes first).
            touched = await mark_participants_disconnected(services)
            if touched:
                log.info("%d participants of active calls marked disconnected at start", touched)
        task = asyncio.ensure_future(run_watch(services))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(watch)

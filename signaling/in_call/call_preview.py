"""The clerk's preview of the office's document camera during a call (issue 15).

The service secretary lays the customer's page under the document camera and takes the still;
to do that well he must see what the camera sees. He is not a participant of the call: he is
sent the call's `document` source alone (the relay joins him with `subscribe=["document"]`),
publishes nothing, is never a recipient of documents, and is not in the call's participant
list, its service-log record or its lifecycle (his preview coming or going changes nothing).

Events (docs/signaling-events.md, "Document camera"):
- `call:preview {call_id}` → `{participant_id, offer, ice_servers}`: the relay's offer for
  the preview; later offers (the camera joins, reconnects, changes codec) come as the usual
  `call:offer {call_id, offer}` push to this socket.
- `call:preview_answer {call_id, sdp}` → `{}`.
- `call:preview_stop {call_id}` → `{}`; also when the socket goes away.

Only a clerk of the call's office, only while the call is active.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from signaling.db import DbId
from signaling.directory.principals import Principal, Role
from signaling.flow.calls import (
    call_sessions,
    ice_servers_for,
    load_call,
    relay_for,
    relay_unavailable,
)
from signaling.flow.flow_common import conflict, forbidden, invalid
from signaling.store.flow_models import CallStatus
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# What a preview is sent of the call: the document camera's picture (the customer's and the
# expert's faces and voices are not the clerk's business).
PREVIEW_SOURCES = ["document"]


def preview_participant(user_id: int) -> str:
    """The relay participant id of a clerk's preview (never a call participant's id)."""
    return f"preview-{user_id}"


@dataclass
class Previews:
    """The previews whose relay sessions this process opened: sid -> {(call_id, room, node)}."""

    by_sid: dict[str, set[tuple[int, str, str]]] = field(default_factory=dict)


def previews_of(services: Services) -> Previews:
    found = services.extras.get("call_previews")
    if not isinstance(found, Previews):
        found = Previews()
        services.extras["call_previews"] = found
    return found


class PreviewRef(EventModel):
    call_id: DbId


class PreviewAnswer(EventModel):
    call_id: DbId
    sdp: str = Field(min_length=1, max_length=200_000)


async def _office_call(ctx: EventContext, call_id: int) -> Any:
    async with ctx.services.sessions() as session:
        call = await load_call(session, call_id)
    if ctx.principal.office_id != call.office_id:
        raise forbidden(f"call {call.id} is not at your office", "other_office")
    if call.status != CallStatus.ACTIVE:
        raise conflict(f"call {call.id} has ended", "call_ended")
    return call


@on_event("call:preview", PreviewRef, roles={Role.CLERK})
async def start_preview(ctx: EventContext, data: PreviewRef) -> dict[str, Any]:
    call = await _office_call(ctx, data.call_id)
    pid = preview_participant(ctx.principal.id)
    relay = await relay_for(ctx.services, call)
    sessions = call_sessions(ctx.services)
    # The relay's later offers for the preview reach this socket like a participant's.
    sessions.bind(call.id, pid, ctx.sid)
    try:
        offer = await relay.join(call.room_id, pid, publish=[], subscribe=PREVIEW_SOURCES)
    except Exception as exc:
        sessions.unbind(call.id, pid, ctx.sid)
        log.warning("relay preview %s/%s failed: %s", call.room_id, pid, exc)
        raise relay_unavailable() from exc
    previews_of(ctx.services).by_sid.setdefault(ctx.sid, set()).add(
        (call.id, call.room_id, call.relay_node)
    )
    return {
        "participant_id": pid,
        "offer": offer,
        "ice_servers": ice_servers_for(ctx.services, ctx.principal),
    }


@on_event("call:preview_answer", PreviewAnswer, roles={Role.CLERK})
async def answer_preview(ctx: EventContext, data: PreviewAnswer) -> dict[str, Any]:
    call = await _office_call(ctx, data.call_id)
    pid = preview_participant(ctx.principal.id)
    if call_sessions(ctx.services).sid_of(call.id, pid) != ctx.sid:
        raise conflict("start the preview first (call:preview)", "not_joined")
    relay = await relay_for(ctx.services, call)
    try:
        await relay.answer(call.room_id, pid, data.sdp)
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise invalid(f"the relay refused the answer: {message}") from exc
    return {}


@on_event("call:preview_stop", PreviewRef, roles={Role.CLERK})
async def stop_preview(ctx: EventContext, data: PreviewRef) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        call = await load_call(session, data.call_id)
    if ctx.principal.office_id != call.office_id:
        raise forbidden(f"call {call.id} is not at your office", "other_office")
    await _leave(ctx.services, ctx.sid, ctx.principal.id,
                 (call.id, call.room_id, call.relay_node))
    return {}


async def _leave(
    services: Services, sid: str, user_id: int, preview: tuple[int, str, str]
) -> None:
    call_id, room_id, node = preview
    pid = preview_participant(user_id)
    call_sessions(services).unbind(call_id, pid, sid)
    held = previews_of(services).by_sid.get(sid)
    if held is not None:
        held.discard(preview)
        if not held:
            previews_of(services).by_sid.pop(sid, None)
    from signaling.transport.relay_placement import router_of

    router = router_of(services)
    if router is None:
        return
    # The call may have ended (its relay room closed) or moved: nothing to leave then.
    with contextlib.suppress(Exception):
        relay = await router.client(node)
        await relay.leave(room_id, pid)


async def _forget_socket(services: Services, sid: str, principal: Principal) -> None:
    for preview in list(previews_of(services).by_sid.get(sid, ())):
        await _leave(services, sid, principal.id, preview)


def setup(_app: Any, services: Services) -> None:
    services.connections.on_disconnect(_forget_socket)

"""`document_camera:take_still`: the call's expert or the office's clerk asks the office's
document camera for a full-resolution still (docs/signaling-events.md, "Document camera").

The endpoint agent (endpoint/agent.py) listens for the push `document_camera:still` and sends
the still into the call through the encrypted document channel. Who gets the push comes from
the call's participant rows, not from this process's socket map, so it reaches the agent
whichever signaling process holds its socket (the push goes through the endpoint's room).
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select

from signaling.db import DbId
from signaling.directory.principals import Role
from signaling.flow.calls import load_call
from signaling.flow.flow_common import conflict, forbidden
from signaling.store.flow_models import CallParticipant, CallStatus, ParticipantRole
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event

STILL_PUSH = "document_camera:still"


class TakeStill(EventModel):
    call_id: DbId
    format: Literal["png", "jpeg"] = "png"


async def call_cameras(ctx: EventContext, call_id: int) -> tuple[int, list[tuple[str, int]]]:
    """The active call, checked against the asker (its expert, or a clerk of its office), and
    its connected document cameras as (participant id, endpoint id). Refused as the document-
    camera events of docs/signaling-events.md say: `not_your_call`, `other_office`,
    `call_ended`, `no_document_camera`."""
    principal = ctx.principal
    async with ctx.services.sessions() as session:
        call = await load_call(session, call_id)
        if principal.role == Role.EXPERT and call.expert_id != principal.id:
            raise forbidden(f"call {call.id} is not yours", "not_your_call")
        if principal.role == Role.CLERK and principal.office_id != call.office_id:
            raise forbidden(f"call {call.id} is not at your office", "other_office")
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has ended", "call_ended")
        cameras = (
            (
                await session.execute(
                    select(CallParticipant).where(
                        CallParticipant.call_id == call.id,
                        CallParticipant.role == ParticipantRole.DOCUMENT_CAMERA.value,
                        CallParticipant.connected.is_(True),
                    )
                )
            )
            .scalars()
            .all()
        )
        found = sorted({(c.participant_id, c.principal_id) for c in cameras})
    if not found:
        raise conflict(f"no document camera is in call {call.id}", "no_document_camera")
    return call.id, found


@on_event("document_camera:take_still", TakeStill, roles={Role.EXPERT, Role.CLERK})
async def take_still(ctx: EventContext, data: TakeStill) -> dict[str, Any]:
    call_id, targets = await call_cameras(ctx, data.call_id)
    payload = {"call_id": call_id, "format": data.format}
    for _pid, endpoint_id in targets:
        # The endpoint's room also holds its kiosk page, which ignores this push; the agent
        # acts only on a request for the call it is in.
        await ctx.services.sio.emit(STILL_PUSH, payload, room=rooms.endpoint(endpoint_id))
    return {"document_cameras": [pid for pid, _ in targets]}

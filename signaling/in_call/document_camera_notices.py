"""`document_camera:notice`: the office's document camera tells the clerk what is wrong with
the picture it can give (document_camera/notices.py), e.g. that the camera's resolution is
too low for the office's documents (document_camera/guidance.py, CAMERA_TOO_COARSE).

Only the call's own kiosk may speak for its document camera, and only after the camera
joined the call (`participant_for`, as for its other events). The notice goes, with its
Finnish, Swedish and English texts, to the office's room (the clerks' consoles show it on the
call's row; the kiosk page ignores it). Nothing is stored: the agent says it again on every
join of the call.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from document_camera.notices import Notice, NoticeCode
from signaling.db import DbId
from signaling.directory.principals import Role
from signaling.flow.calls import load_call, participant_for
from signaling.flow.flow_common import conflict
from signaling.store.flow_models import Call, CallStatus
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event

NOTICE_PUSH = "document_camera:notice"


class CameraNotice(EventModel):
    call_id: DbId = Field(strict=True)
    code: Literal["camera_too_coarse"]  # the only notice an agent sends the clerk for now
    detail: str = Field(default="", max_length=200)


async def camera_call(ctx: EventContext, call_id: int) -> Call:
    """The active call whose joined document camera this kiosk speaks for (its notices, its
    stitching progress); refused otherwise: `call_ended`, `not_participant`, `not_joined`."""
    async with ctx.services.sessions() as session:
        call = await load_call(session, call_id)
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has ended", "call_ended")
        await participant_for(session, call, ctx.principal, "document_camera")
    return call


@on_event("document_camera:notice", CameraNotice, roles={Role.ENDPOINT})
async def camera_notice(ctx: EventContext, data: CameraNotice) -> dict[str, Any]:
    call = await camera_call(ctx, data.call_id)
    notice = Notice(NoticeCode(data.code), data.detail)
    payload = {"call_id": call.id, **notice.to_dict()}
    await ctx.services.sio.emit(NOTICE_PUSH, payload, room=rooms.office(call.office_id))
    return {"sent": True}

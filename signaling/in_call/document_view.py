"""`document_camera:view`: the call's expert tells the office's document camera which region
of the page he is looking at (remote zoom, docs/signaling-events.md "Document camera").

The endpoint agent (endpoint/agent.py) gets the push `document_camera:region {call_id,
region}` and its document track then sends that region from the camera's full-resolution
pixels (document_camera/zoom.py); `region: null` returns the whole page. As for stills, the
push goes through the endpoint's room, so it reaches the agent whichever signaling process
holds its socket.

Only the call's expert steers: the document track is one picture for everyone in the call,
and the interpreter and the clerk's preview see what the expert's zoom shows (each frame says
which part of the page it is, so their views place it correctly).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from document_camera.zoom import Region
from signaling.db import DbId
from signaling.directory.principals import Role
from signaling.in_call.still_requests import call_cameras
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event

REGION_PUSH = "document_camera:region"


class ViewRegion(EventModel):
    """x, y, w, h in 0..1 of the rectified page; the rules are `document_camera.zoom.Region`'s
    (within the page, no side under MIN_REGION_SIZE), so both ends check the same."""

    x: float = Field(strict=True)
    y: float = Field(strict=True)
    w: float = Field(strict=True)
    h: float = Field(strict=True)

    @model_validator(mode="after")
    def _within_the_page(self) -> ViewRegion:
        Region(self.x, self.y, self.w, self.h)  # ValueError → `invalid`
        return self


class DocumentView(EventModel):
    call_id: DbId = Field(strict=True)
    region: ViewRegion | None  # None: the whole page (zoomed out)


@on_event("document_camera:view", DocumentView, roles={Role.EXPERT})
async def document_view(ctx: EventContext, data: DocumentView) -> dict[str, Any]:
    call_id, cameras = await call_cameras(ctx, data.call_id)
    region = data.region
    payload = {
        "call_id": call_id,
        "region": None if region is None else {"x": region.x, "y": region.y,
                                               "w": region.w, "h": region.h},
    }
    for endpoint_id in {endpoint for _pid, endpoint in cameras}:
        await ctx.services.sio.emit(REGION_PUSH, payload, room=rooms.endpoint(endpoint_id))
    return {"region": payload["region"]}

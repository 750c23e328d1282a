"""Stitching a large sheet during a call (docs/signaling-events.md, "Document camera").

- `document_camera:stitch {call_id, sheet}`: the office's clerk (or the call's expert) asks
  the office's document camera to guide a tiled capture of an A2 or A1 sheet; the server
  pushes `document_camera:stitch` to the agent (endpoint/stitch_session.py).
- `document_camera:stitch_cancel {call_id}`: the same people stop it; pushed on likewise.
- `document_camera:stitch_progress {...}`: the agent reports each step (which tile to lay
  under the camera, hold still, stitching, done, refused with the library's reason); the
  server passes it on to the office's clerks (office room) and the call's expert.

As for stills, the pushes to the agent go through the endpoint's room, so they reach it
whichever signaling process holds its socket; only the call's own kiosk may report for its
document camera, and only after the camera joined the call (`camera_call` of
signaling/in_call/document_camera_notices.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from document_camera.notices import Notice, NoticeCode
from signaling.db import DbId
from signaling.directory.principals import Role
from signaling.in_call.document_camera_notices import camera_call
from signaling.in_call.still_requests import call_cameras
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event

STITCH_PUSH = "document_camera:stitch"
CANCEL_PUSH = "document_camera:stitch_cancel"
PROGRESS_PUSH = "document_camera:stitch_progress"

# The sheets the console offers: TileGuide.plan("A2") is 3×3, ("A1") 4×4.
Sheet = Literal["A2", "A1"]
MAX_TILES = 16
# Reasons a stitch was refused: the stitching library's notice codes.
REFUSAL_CODES = (
    NoticeCode.TILES_DO_NOT_OVERLAP,
    NoticeCode.TILES_TOO_PLAIN,
    NoticeCode.STITCH_REJECTED,
)


class StitchRequest(EventModel):
    call_id: DbId = Field(strict=True)
    sheet: Sheet
    format: Literal["png", "jpeg"] = "jpeg"


class StitchCancel(EventModel):
    call_id: DbId = Field(strict=True)


class StitchProgress(EventModel):
    call_id: DbId = Field(strict=True)
    sheet: Sheet
    state: Literal["place", "hold_still", "stitching", "done", "refused", "cancelled", "failed"]
    tile: int = Field(ge=1, le=MAX_TILES, strict=True)
    of: int = Field(ge=2, le=MAX_TILES, strict=True)
    rows: int = Field(ge=1, le=MAX_TILES, strict=True)
    cols: int = Field(ge=1, le=MAX_TILES, strict=True)
    row: int = Field(ge=0, lt=MAX_TILES, strict=True)
    col: int = Field(ge=0, lt=MAX_TILES, strict=True)
    captured: int = Field(ge=0, le=MAX_TILES, strict=True)
    code: (
        Literal[
            "moving",
            "blurred",
            "timeout",
            "no_camera",
            "not_delivered",
            "tiles_do_not_overlap",
            "tiles_too_plain",
            "stitch_rejected",
        ]
        | None
    ) = None
    detail: str = Field(default="", max_length=300)
    filename: str | None = Field(default=None, max_length=120, pattern=r"^sheet-A[0-4]-[\w.-]+$")
    width: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    height: int | None = Field(default=None, ge=1, le=100_000, strict=True)

    @model_validator(mode="after")
    def _consistent(self) -> StitchProgress:
        if self.rows * self.cols != self.of:
            raise ValueError("rows × cols must be the number of tiles")
        if self.tile > self.of or self.captured > self.of:
            raise ValueError("tile and captured must be within the grid")
        if (self.row, self.col) != divmod(self.tile - 1, self.cols):
            raise ValueError("row and col must be the tile's place in the grid")
        if self.state == "refused" and self.code not in REFUSAL_CODES:
            raise ValueError("a refusal needs the stitching library's reason")
        return self


async def _endpoints_of_cameras(ctx: EventContext, call_id: int) -> tuple[int, list[int]]:
    checked, cameras = await call_cameras(ctx, call_id)
    return checked, sorted({endpoint_id for _pid, endpoint_id in cameras})


@on_event("document_camera:stitch", StitchRequest, roles={Role.EXPERT, Role.CLERK})
async def stitch(ctx: EventContext, data: StitchRequest) -> dict[str, Any]:
    call_id, cameras = await _endpoints_of_cameras(ctx, data.call_id)
    payload = {"call_id": call_id, "sheet": data.sheet, "format": data.format}
    for endpoint_id in cameras:
        # The kiosk page in the same room ignores it; the agent acts only for its call.
        await ctx.services.sio.emit(STITCH_PUSH, payload, room=rooms.endpoint(endpoint_id))
    return {"sheet": data.sheet}


@on_event("document_camera:stitch_cancel", StitchCancel, roles={Role.EXPERT, Role.CLERK})
async def stitch_cancel(ctx: EventContext, data: StitchCancel) -> dict[str, Any]:
    call_id, cameras = await _endpoints_of_cameras(ctx, data.call_id)
    for endpoint_id in cameras:
        await ctx.services.sio.emit(
            CANCEL_PUSH, {"call_id": call_id}, room=rooms.endpoint(endpoint_id)
        )
    return {"cancelled": True}


@on_event("document_camera:stitch_progress", StitchProgress, roles={Role.ENDPOINT})
async def stitch_progress(ctx: EventContext, data: StitchProgress) -> dict[str, Any]:
    call = await camera_call(ctx, data.call_id)
    payload = data.model_dump(exclude_none=True)
    if data.state == "refused" and data.code is not None:
        # The library's reason in the clerk's three languages (document_camera/notices.py).
        payload["text"] = Notice(NoticeCode(data.code)).to_dict()["text"]
    await ctx.services.sio.emit(PROGRESS_PUSH, payload, room=rooms.office(call.office_id))
    if call.expert_id is not None:
        await ctx.services.sio.emit(PROGRESS_PUSH, payload, room=rooms.user(call.expert_id))
    return {"sent": True}

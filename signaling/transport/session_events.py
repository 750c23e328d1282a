"""Events about the socket itself: who am I, and a cheap round trip (used by the benchmark)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from signaling.directory.principals import Principal, Role
from signaling.transport.protocol import EventContext, EventModel, on_event

EVERYONE = set(Role)


def principal_dict(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "id": principal.id,
        "role": str(principal.role),
        "name": principal.name,
        "office_id": principal.office_id,
        "authority_ids": sorted(principal.authority_ids),
        "languages": sorted(principal.languages),
    }


class WhoAmI(EventModel):
    pass


class Ping(EventModel):
    seq: int = Field(default=0, ge=0, le=2**53)


@on_event("session:whoami", WhoAmI, roles=EVERYONE)
async def whoami(ctx: EventContext, _payload: WhoAmI) -> dict[str, Any]:
    return {"principal": principal_dict(ctx.principal)}


@on_event("session:ping", Ping, roles=EVERYONE)
async def ping(_ctx: EventContext, payload: Ping) -> dict[str, Any]:
    return {"seq": payload.seq, "server_time": time.time()}

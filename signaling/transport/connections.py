"""The live sockets of this process: who is behind each, and hooks run on connect/disconnect.

`services.connections.principal(sid)` gives the Principal of a socket. Features that must react
when a person or kiosk comes or goes (presence, calls) register a hook:

    services.connections.on_connect(hook)      # async hook(services, sid, principal)
    services.connections.on_disconnect(hook)   # async hook(services, sid, principal)

A disconnect hook runs after the sid has left the map, so `is_online(principal)` already says
whether another socket of the same person is still connected to this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signaling.directory.principals import Principal, Role

if TYPE_CHECKING:
    from signaling.transport.services import Services

ConnectionHook = Callable[["Services", str, Principal], Awaitable[None]]
PrincipalKey = tuple[str, int]  # ("user" | "endpoint", id)


def key_of(principal: Principal) -> PrincipalKey:
    return (principal.kind, principal.id)


@dataclass
class Connections:
    by_sid: dict[str, Principal] = field(default_factory=dict)
    by_principal: dict[PrincipalKey, set[str]] = field(default_factory=dict)
    connect_hooks: list[ConnectionHook] = field(default_factory=list)
    disconnect_hooks: list[ConnectionHook] = field(default_factory=list)

    def on_connect(self, hook: ConnectionHook) -> None:
        self.connect_hooks.append(hook)

    def on_disconnect(self, hook: ConnectionHook) -> None:
        self.disconnect_hooks.append(hook)

    def add(self, sid: str, principal: Principal) -> None:
        self.by_sid[sid] = principal
        self.by_principal.setdefault(key_of(principal), set()).add(sid)

    def remove(self, sid: str) -> Principal | None:
        principal = self.by_sid.pop(sid, None)
        if principal is not None:
            sids = self.by_principal.get(key_of(principal))
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self.by_principal[key_of(principal)]
        return principal

    def principal(self, sid: str) -> Principal | None:
        return self.by_sid.get(sid)

    def sids_of(self, kind: str, ident: int) -> set[str]:
        return set(self.by_principal.get((kind, ident), ()))

    def is_online(self, principal: Principal) -> bool:
        return key_of(principal) in self.by_principal

    def __len__(self) -> int:
        return len(self.by_sid)


async def disconnect_sids(services: Services, sids: Iterable[str]) -> int:
    """Disconnect these sockets of this process; returns how many were."""
    count = 0
    for sid in list(sids):
        with contextlib.suppress(Exception):
            await services.sio.disconnect(sid)
            count += 1
    return count


async def disconnect_principal(services: Services, kind: str, ident: int) -> int:
    """Disconnect every socket of a person ("user") or kiosk ("endpoint") in this process.
    Other processes find out by their sweep within `revocation_check_seconds`."""
    sids = services.connections.sids_of(kind, ident)
    return await disconnect_sids(services, sids)

async def disconnect_office(services: Services, office_id: int) -> int:
    """Disconnect this process's kiosks and clerks of an office (it was disabled)."""
    sids = [
        sid
        for sid, principal in services.connections.by_sid.items()
        if principal.office_id == office_id
        and (principal.kind == "endpoint" or principal.role == Role.CLERK)
    ]
    return await disconnect_sids(services, sids)

"""The socket.io server, refusing every event name that is not declared before any handler runs.

python-socketio dispatches a client's event by looking its name up among the server's handlers,
and the server's own lifecycle handlers are registered there too: a client that emits an event
named `connect` or `disconnect` would run them (a new rate-limit bucket, a second presence
registration, a disconnect hook for a socket that stays connected). `GuardedServer` lets only
the names of `signaling.transport.protocol.REGISTRY` through; any other name — the reserved ones
below,
unknown ones, and names that are not strings at all — goes to `refuse`, which the dispatcher
sets (it charges the socket's rate limit and acks `{ok: false, error}`), and no handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import socketio
from socketio import packet

# Names socket.io (server, client or the JavaScript EventEmitter under them) treats specially.
# A client may never emit them as events.
RESERVED_EVENT_NAMES = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "message",  # what python-socketio's send() emits
        "*",  # python-socketio's catch-all handler
    }
)

Refusal = Callable[[str, str, tuple[Any, ...]], Awaitable[dict[str, Any]]]


async def _refuse_everything(_sid: str, name: str, _args: tuple[Any, ...]) -> dict[str, Any]:
    return {"ok": False, "error": {"code": "unknown_event", "message": f"unknown event {name!r}"}}


class GuardedServer(socketio.AsyncServer):
    """An AsyncServer that hands only `accepted_events` to the handlers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accepted_events: Collection[str] = frozenset()
        self.refuse: Refusal = _refuse_everything

    async def _handle_event_internal(
        self,
        server: socketio.AsyncServer,
        sid: str,
        eio_sid: str,
        data: list[Any],
        namespace: str,
        id: int | None,
    ) -> None:
        name = data[0] if data else None
        if isinstance(name, str) and name in self.accepted_events:
            await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
            return
        shown = name if isinstance(name, str) else repr(name)
        ack = await self.refuse(sid, shown[:100], tuple(data[1:]))
        if id is not None:
            await server._send_packet(
                eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[ack])
            )


__all__ = ["RESERVED_EVENT_NAMES", "GuardedServer"]

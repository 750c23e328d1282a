"""Wires the declared events (`signaling.transport.protocol.REGISTRY`) into the socket.io server.

At connect the socket must authenticate (`auth: {token}` for a person, `{endpoint_id,
credential}` for a kiosk) or it is refused. Its Principal is kept in `services.connections`
and it joins the rooms of `signaling.transport.rooms.rooms_for`. Each event then passes, in order:

1. the per-socket rate limit (token bucket: `rate_limit_events` per `rate_limit_window` s)
   and, with Redis, the per-person/kiosk one over all processes (signaling/flow/leases.py),
2. the message size limit (`max_message_bytes`; engine.io drops a socket whose single packet
   exceeds about twice that, before anything is decoded),
3. a known event name, 4. the role check, 5. the pydantic schema,

and only then reaches the handler. The ack is `{ok: true, ...}` or `{ok: false, error}`; a
handler's unexpected exception is logged and acked as `internal`, never propagated.

Sockets of a disabled person or kiosk, or whose session expired, are disconnected: at once
by `disconnect_principal` in the process that disabled it, and by a periodic sweep in every
process (which also covers `etapalvelu admin` changes made from another process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import socketio
from pydantic import ValidationError
from sqlalchemy import select

from signaling.db import utcnow
from signaling.directory.identity import AuthenticationError, authenticate_socket
from signaling.directory.principals import Principal, Role
from signaling.flow.leases import ProcessLeases, leases_of
from signaling.store.models import Endpoint, Office, User, UserSession
from signaling.transport import rooms
from signaling.transport.connections import disconnect_sids
from signaling.transport.protocol import (
    ErrorCode,
    EventContext,
    EventRegistry,
    EventSpec,
    ProtocolError,
    ok,
)
from signaling.transport.services import Services
from signaling.transport.socket_server import RESERVED_EVENT_NAMES, GuardedServer

log = logging.getLogger(__name__)

# What engine.io accepts in one packet, relative to max_message_bytes: messages a little over
# the limit get a `too_large` ack; much larger ones cost a disconnect before being decoded.
ENGINE_BUFFER_FACTOR = 2
ENGINE_BUFFER_SLACK = 16 * 1024


def engine_buffer_size(max_message_bytes: int) -> int:
    return ENGINE_BUFFER_FACTOR * max_message_bytes + ENGINE_BUFFER_SLACK


class TokenBucket:
    """`capacity` events per `window` seconds, refilled continuously."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, capacity: int, window: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window
        self.tokens = float(capacity)
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def payload_size(value: object, limit: int) -> int:
    """Approximate JSON size of a decoded payload; stops counting once past `limit`."""
    total = 0
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bytes | bytearray):
            total += len(item)
        elif isinstance(item, dict):
            total += 2
            for key, sub in item.items():
                total += len(str(key)) + 4
                stack.append(sub)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            return total
    return total


def error_ack(code: ErrorCode, message: str) -> dict[str, Any]:
    return ProtocolError(code, message).to_ack()


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@dataclass
class Dispatcher:
    services: Services
    registry: EventRegistry

    def __post_init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}
        self.session_expiry: dict[str, datetime] = {}
        # sid -> SHA-256 of the login session's token (people only): a logout disconnects them
        self.session_of: dict[str, str] = {}
        settings = self.services.settings
        self.max_bytes = settings.max_message_bytes
        self.rate_events = settings.rate_limit_events
        self.rate_window = settings.rate_limit_window

    @property
    def leases(self) -> ProcessLeases | None:
        """Counts across processes (with Redis; signaling/flow/leases.py), else None."""
        return leases_of(self.services)

    def install(self) -> None:
        sio = self.services.sio
        reserved = RESERVED_EVENT_NAMES & set(self.registry.events)
        if reserved:
            raise ValueError(f"reserved socket.io event names declared: {sorted(reserved)}")
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        for name in self.registry.events:
            sio.on(name, self._bound(name))
        if isinstance(sio, GuardedServer):
            # Names outside the registry never reach a handler (connect/disconnect included).
            sio.accepted_events = frozenset(self.registry.events)
            sio.refuse = self.dispatch
        else:
            sio.on("*", self.on_unknown)

    def _bound(self, name: str) -> Any:
        async def handle(sid: str, *args: Any) -> dict[str, Any]:
            return await self.dispatch(sid, name, args)

        handle.__name__ = f"event_{name}"
        return handle

    # --- connection lifecycle -------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        metrics = self.services.metrics
        try:
            if isinstance(auth, dict) and set(auth) == {"guest"}:
                # The customer at home: his HttpOnly session cookie
                # (signaling/flow/remote_customer.py).
                from signaling.flow.remote_customer import authenticate_guest

                identity = await authenticate_guest(self.services.sessions, environ)
            else:
                identity = await authenticate_socket(self.services.sessions, auth)
        except AuthenticationError as exc:
            metrics.connects_refused.inc()
            # The client sees {message, data: {code}} (socket.io's connect_error).
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc), {"code": str(ErrorCode.UNAUTHENTICATED)}
            ) from None
        except Exception:
            log.exception("authentication failed unexpectedly")
            metrics.connects_refused.inc()
            raise socketio.exceptions.ConnectionRefusedError(
                "try again later", {"code": str(ErrorCode.UNAVAILABLE)}
            ) from None
        principal = identity.principal
        settings = self.services.settings
        limit = (
            settings.max_sockets_per_endpoint
            if principal.kind == "endpoint"
            else settings.max_sockets_per_user
        )
        # No await between this check and `add`: concurrent connects cannot both slip in.
        # With Redis, `register` checks and counts over all processes in one atomic step.
        if len(self.services.connections.sids_of(principal.kind, principal.id)) >= limit or (
            self.leases is not None and not await self.leases.register(principal, limit)
        ):
            metrics.connects_refused.inc()
            raise socketio.exceptions.ConnectionRefusedError(
                f"already {limit} connections open; close one first",
                {"code": str(ErrorCode.RATE_LIMITED)},
            )
        self.services.connections.add(sid, principal)
        self.buckets[sid] = TokenBucket(self.rate_events, self.rate_window)
        if identity.expires_at is not None:
            self.session_expiry[sid] = identity.expires_at
        if identity.session_hash is not None:
            self.session_of[sid] = identity.session_hash
        for room in rooms.rooms_for(principal):
            await self.services.sio.enter_room(sid, room)
        metrics.sockets.inc()
        for hook in list(self.services.connections.connect_hooks):
            try:
                await hook(self.services, sid, principal)
            except Exception:
                log.exception("connect hook %r failed for %s", hook, sid)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.buckets.pop(sid, None)
        self.session_expiry.pop(sid, None)
        self.session_of.pop(sid, None)
        principal = self.services.connections.remove(sid)
        if principal is None:
            return
        if self.leases is not None:
            await self.leases.unregister(principal)
        self.services.metrics.sockets.dec()
        for hook in list(self.services.connections.disconnect_hooks):
            try:
                await hook(self.services, sid, principal)
            except Exception:
                log.exception("disconnect hook %r failed for %s", hook, sid)

    # --- events ---------------------------------------------------------------------------

    async def on_unknown(self, event: Any, sid: str, *args: Any) -> dict[str, Any]:
        return await self.dispatch(sid, str(event)[:100], args)

    async def dispatch(self, sid: str, name: str, args: tuple[Any, ...]) -> dict[str, Any]:
        started = time.perf_counter()
        ack = await self._dispatch(sid, name, args)
        metrics = self.services.metrics
        result = "ok" if ack.get("ok") else str(ack["error"]["code"])
        known = name if name in self.registry.events else "(unknown)"
        metrics.events.labels(known, result).inc()
        metrics.event_seconds.observe(time.perf_counter() - started)
        return ack

    async def _dispatch(self, sid: str, name: str, args: tuple[Any, ...]) -> dict[str, Any]:
        principal = self.services.connections.principal(sid)
        bucket = self.buckets.get(sid)
        if principal is None or bucket is None:
            return error_ack(ErrorCode.UNAUTHENTICATED, "this socket is not authenticated")
        if not bucket.take():
            return error_ack(
                ErrorCode.RATE_LIMITED,
                f"more than {self.rate_events} events in {self.rate_window:g} s; slow down",
            )
        if self.leases is not None and not await self.leases.allow_event(principal):
            return error_ack(
                ErrorCode.RATE_LIMITED,
                f"more than {self.leases.rate_events} events in {self.rate_window:g} s "
                "from all your connections; slow down",
            )
        size = payload_size(args, self.max_bytes)
        if size > self.max_bytes:
            return error_ack(ErrorCode.TOO_LARGE, f"message larger than {self.max_bytes} bytes")
        spec = self.registry.events.get(name)
        if spec is None:
            if name in RESERVED_EVENT_NAMES:
                return error_ack(
                    ErrorCode.UNKNOWN_EVENT, f"{name!r} is a reserved name; clients may not send it"
                )
            return error_ack(ErrorCode.UNKNOWN_EVENT, f"unknown event {name!r}")
        if principal.role not in spec.roles:
            return error_ack(ErrorCode.FORBIDDEN, f"role {principal.role} may not send {name!r}")
        if len(args) > 1:
            return error_ack(ErrorCode.INVALID, "send one payload object")
        data = args[0] if args else {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return error_ack(ErrorCode.INVALID, "the payload must be an object")
        try:
            payload = spec.schema.model_validate(data)
        except ValidationError as exc:
            return error_ack(ErrorCode.INVALID, _describe_validation(exc))
        return await self._call(spec, sid, principal, payload)

    async def _call(
        self, spec: EventSpec, sid: str, principal: Principal, payload: Any
    ) -> dict[str, Any]:
        context = EventContext(sid=sid, principal=principal, services=self.services)
        try:
            result = await spec.handler(context, payload)
        except ProtocolError as exc:
            return exc.to_ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler of %r failed (sid %s, %s)", spec.name, sid, principal.role)
            return error_ack(ErrorCode.INTERNAL, "internal error; it has been logged")
        if result is None:
            return ok()
        if not isinstance(result, dict):
            log.error("handler of %r returned %r, not a dict", spec.name, type(result))
            return error_ack(ErrorCode.INTERNAL, "internal error; it has been logged")
        if "ok" in result:
            return result
        return ok(**result)

    # --- revocation -----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Disconnect this process's sockets whose person/kiosk (or, for a kiosk or a clerk,
        office) was disabled, whose session expired, or whose session was logged out.
        Returns how many were disconnected."""
        connections = self.services.connections
        if not connections.by_sid:
            return 0
        async with self.services.sessions() as session:
            disabled_users = set(
                (await session.execute(select(User.id).where(User.enabled.is_(False)))).scalars()
            )
            disabled_endpoints = set(
                (
                    await session.execute(select(Endpoint.id).where(Endpoint.enabled.is_(False)))
                ).scalars()
            )
            disabled_offices = set(
                (
                    await session.execute(select(Office.id).where(Office.enabled.is_(False)))
                ).scalars()
            )
            hashes = set(self.session_of.values())
            live_sessions: set[str] = set()
            if hashes:
                live_sessions = set(
                    (
                        await session.execute(
                            select(UserSession.token_hash).where(
                                UserSession.token_hash.in_(hashes)
                            )
                        )
                    ).scalars()
                )
        now = utcnow()
        doomed = [
            sid
            for sid, principal in list(connections.by_sid.items())
            if (principal.kind == "user" and principal.id in disabled_users)
            or (principal.kind == "endpoint" and principal.id in disabled_endpoints)
            or (
                principal.office_id in disabled_offices
                and (principal.kind == "endpoint" or principal.role == Role.CLERK)
            )
            or (sid in self.session_expiry and self.session_expiry[sid] <= now)
            or (sid in self.session_of and self.session_of[sid] not in live_sessions)
        ]
        return await disconnect_sids(self.services, doomed)

    async def run_sweeper(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("revocation sweep failed")


def dispatcher_of(services: Services) -> Dispatcher:
    dispatcher = services.extras.get("dispatcher")
    if not isinstance(dispatcher, Dispatcher):
        raise RuntimeError("the dispatcher is not installed (create_app does that)")
    return dispatcher


async def disconnect_session(services: Services, session_hash: str) -> int:
    """Disconnect this process's sockets opened with one login session (its token's SHA-256).
    Other processes find out by their sweep within `revocation_check_seconds`."""
    dispatcher = dispatcher_of(services)
    sids = [sid for sid, value in dispatcher.session_of.items() if value == session_hash]
    return await disconnect_sids(services, sids)


__all__ = [
    "Dispatcher",
    "TokenBucket",
    "disconnect_session",
    "dispatcher_of",
    "engine_buffer_size",
    "payload_size",
]

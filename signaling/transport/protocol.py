"""The socket.io protocol's contract: how events are declared, acknowledged and refused.

Every event is declared once with `@on_event(name, Schema, roles=...)`. The dispatcher
(`signaling.server.dispatch`) authenticates the socket, checks the role, the message size and the
rate limit, validates the payload against the pydantic schema and only then calls the
handler. The handler returns a dict of extra ack fields, or raises `ProtocolError`; either
way the client gets one ack:

    {"ok": true, ...fields}                        on success
    {"ok": false, "error": {"code": ..., "message": ...}}   on refusal

A refused event changes nothing: handlers validate and authorise before they write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from signaling.directory.principals import Principal, Role

if TYPE_CHECKING:
    from signaling.transport.services import Services


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    INVALID = "invalid"  # schema validation failed
    UNKNOWN_EVENT = "unknown_event"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # e.g. the ticket was already taken
    UNAVAILABLE = "unavailable"
    CLOSED = "closed"  # outside the service hours; the error carries `opens_at`
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A refusal that the client sees as `{ok: false, error: {code, message}}`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_ack(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": str(self.code), "message": self.message}}


class EventModel(BaseModel):
    """Base of every event payload schema: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


@dataclass
class EventContext:
    sid: str
    principal: Principal
    services: Services


M = TypeVar("M", bound=EventModel)
Handler = Callable[[EventContext, Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class EventSpec:
    name: str
    schema: type[EventModel]
    roles: frozenset[Role]
    handler: Handler


@dataclass
class EventRegistry:
    events: dict[str, EventSpec] = field(default_factory=dict)

    def add(self, spec: EventSpec) -> None:
        if spec.name in self.events:
            raise ValueError(f"event {spec.name!r} declared twice")
        self.events[spec.name] = spec


REGISTRY = EventRegistry()


def on_event(
    name: str, schema: type[M], *, roles: Iterable[Role]
) -> Callable[
    [Callable[[EventContext, M], Awaitable[dict[str, Any] | None]]],
    Callable[[EventContext, M], Awaitable[dict[str, Any] | None]],
]:
    """Declare a socket.io event handled by the decorated coroutine."""

    def decorate(
        fn: Callable[[EventContext, M], Awaitable[dict[str, Any] | None]],
    ) -> Callable[[EventContext, M], Awaitable[dict[str, Any] | None]]:
        REGISTRY.add(EventSpec(name, schema, frozenset(roles), fn))
        return fn

    return decorate


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}

"""The relay control wire format, spoken over the node's WebSocket `/control` (media_relay/node.py)
and by its client (media_relay/remote.py). Defined once here; both sides import it.

Every frame is one JSON object in a text frame:

    request (client → node)
        {"id": 7, "op": "join", "args": {"room": "call-1", ...}}
    reply (node → client)
        {"id": 7, "ok": true, "result": {...}}
        {"id": 7, "ok": false, "error": {"code": "unknown_room", "message": "..."}}
    event (node → client)
        {"event": "offer", "room": "call-1", "participant": "user-3", "offer": {...}}
        {"event": "gone", "room": ..., "participant": ..., "reason": "ice_failed"}
        {"event": "speaker", "room": ..., "participant": ...}

Operations and their `args` are `OPS` below. A request that cannot be parsed (not JSON, too large,
not an object, unknown op, bad args) gets an error reply with its id when the id could be read,
else id 0; the connection stays up and nothing changes. `RelayError` codes from the relay pass
through unchanged (media_relay.errors; docs/interfaces.md lists them).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = [
    "EVENTS",
    "MAX_NODE_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "OPS",
    "SOURCES",
    "AnswerArgs",
    "DrainArgs",
    "Event",
    "JoinArgs",
    "NoArgs",
    "ParticipantArgs",
    "Reply",
    "Request",
    "RoomArgs",
    "SourceArgs",
    "WireError",
    "encode_error",
    "encode_event",
    "encode_reply",
    "encode_request",
    "parse_node_message",
    "parse_request",
]

# A request is small (the biggest is an SDP answer, ~5-20 KB); replies can be large (stats
# of a full node: ~1-2 KB per participant).
MAX_REQUEST_BYTES = 256 * 1024
MAX_NODE_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_SDP_CHARS = 200_000
MAX_ID_CHARS = 128  # as media_relay.room.MAX_PARTICIPANT_ID
MAX_REQUEST_ID = 2**53 - 1  # exact in every JSON implementation
MAX_SOURCES = 8

# Room and participant ids: what signaling makes (`call-12`, `user-3`, `doccam-7`) and a
# little more; nothing that needs quoting in logs, metrics labels or Redis keys.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
]
# media_relay.room.SOURCES (tests/media_relay/test_wire.py holds them equal); kept here so
# that the wire format imports nothing of the relay
SOURCES = ("audio", "camera", "document", "screen")
Source = Literal["audio", "camera", "document", "screen"]

# error codes of the wire itself (the relay's own pass through)
BAD_MESSAGE = "bad_message"
UNKNOWN_OP = "unknown_op"
BAD_ARGS = "bad_args"
# bad values of these fields get the code LocalRelay gives them
FIELD_CODES = {"publish": "bad_source", "source": "bad_source", "participant": "bad_participant"}
INTERNAL = "internal"


class WireError(Exception):
    """A frame that is not a valid request; `request_id` is 0 when the id could not be read."""

    def __init__(self, code: str, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoArgs(_Args):
    """`stats`, `rooms`."""


class RoomArgs(_Args):
    """`create_room`, `close_room`."""

    room: Identifier


class ParticipantArgs(_Args):
    """`leave`; `claim` (route this participant's events to the sending connection)."""

    room: Identifier
    participant: Identifier


class JoinArgs(_Args):
    room: Identifier
    participant: Identifier
    publish: list[Source] = Field(default_factory=list, max_length=MAX_SOURCES)
    # true: everything of the others; false: nothing; a list: only those sources
    subscribe: bool | Annotated[list[Source], Field(max_length=MAX_SOURCES)] = Field(
        True, union_mode="left_to_right"
    )


class AnswerArgs(_Args):
    room: Identifier
    participant: Identifier
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]


class SourceArgs(_Args):
    """`publish`, `unpublish`."""

    room: Identifier
    participant: Identifier
    source: Source


class DrainArgs(_Args):
    draining: bool


# op → its arguments. Results: join → {"offer": {...}}; stats → LocalRelay.stats() plus
# {"node": {...}}; rooms → [room ids]; drain → {"draining": bool}; the others → null.
OPS: dict[str, type[_Args]] = {
    "create_room": RoomArgs,
    "close_room": RoomArgs,
    "join": JoinArgs,
    "answer": AnswerArgs,
    "publish": SourceArgs,
    "unpublish": SourceArgs,
    "leave": ParticipantArgs,
    "claim": ParticipantArgs,
    "stats": NoArgs,
    "rooms": NoArgs,
    "drain": DrainArgs,
}

EVENTS = ("offer", "gone", "speaker")


class Request(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    op: str
    args: _Args


class ErrorBody(BaseModel):
    model_config = ConfigDict(strict=True)

    code: str
    message: str


class Reply(BaseModel):
    model_config = ConfigDict(strict=True)

    id: int
    ok: bool
    result: Any = None
    error: ErrorBody | None = None


class Offer(BaseModel):
    """The relay's SDP offer; `tracks` and anything else it carries pass through."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["offer"]
    sdp: str


class Event(BaseModel):
    model_config = ConfigDict(strict=True)

    event: Literal["offer", "gone", "speaker"]
    room: Identifier
    participant: Identifier
    offer: Offer | None = None
    reason: str | None = None


# -- requests (the node parses, the client encodes)


def parse_request(data: str | bytes) -> Request:
    """Parse and validate one request frame; raises WireError."""
    if _size(data) > MAX_REQUEST_BYTES:
        raise WireError(BAD_MESSAGE, f"message larger than {MAX_REQUEST_BYTES} bytes")
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError(BAD_MESSAGE, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(BAD_MESSAGE, "a request is a JSON object")
    request_id = message.get("id")
    if (
        not isinstance(request_id, int)
        or isinstance(request_id, bool)
        or not 0 < request_id <= MAX_REQUEST_ID
    ):
        raise WireError(BAD_MESSAGE, f"id must be an integer in 1..{MAX_REQUEST_ID}")
    unknown = set(message) - {"id", "op", "args"}
    if unknown:
        raise WireError(BAD_MESSAGE, f"unknown fields {sorted(unknown)}", request_id)
    op = message.get("op")
    if not isinstance(op, str) or op not in OPS:
        shown = op[:40] if isinstance(op, str) else type(op).__name__
        raise WireError(
            UNKNOWN_OP, f"unknown op {shown!r}; expected one of {sorted(OPS)}", request_id
        )
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise WireError(BAD_ARGS, "args must be an object", request_id)
    try:
        parsed = OPS[op].model_validate(args)
    except ValidationError as exc:
        raise WireError(_code_for(exc), _describe(exc), request_id) from None
    return Request(id=request_id, op=op, args=parsed)


def encode_request(request_id: int, op: str, args: dict[str, Any]) -> str:
    """Validate (the client refuses to send what the node would refuse) and encode."""
    model = OPS.get(op)
    if model is None:
        raise WireError(UNKNOWN_OP, f"unknown op {op!r}", request_id)
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        raise WireError(_code_for(exc), _describe(exc), request_id) from None
    data = json.dumps({"id": request_id, "op": op, "args": parsed.model_dump()})
    if _size(data) > MAX_REQUEST_BYTES:
        raise WireError(BAD_ARGS, f"request larger than {MAX_REQUEST_BYTES} bytes", request_id)
    return data


# -- replies and events (the node encodes, the client parses)


def encode_reply(request_id: int, result: Any) -> str:
    return json.dumps({"id": request_id, "ok": True, "result": result})


def encode_error(request_id: int, code: str, message: str) -> str:
    return json.dumps(
        {"id": request_id, "ok": False, "error": {"code": code, "message": message[:1000]}}
    )


def encode_event(
    event: str,
    room: str,
    participant: str,
    *,
    offer: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str:
    message: dict[str, Any] = {"event": event, "room": room, "participant": participant}
    if offer is not None:
        message["offer"] = offer
    if reason is not None:
        message["reason"] = reason
    return json.dumps(message)


def parse_node_message(data: str | bytes) -> Reply | Event:
    """Parse a frame from the node; raises WireError when it is neither a reply nor an event."""
    if _size(data) > MAX_NODE_MESSAGE_BYTES:
        raise WireError(BAD_MESSAGE, f"message larger than {MAX_NODE_MESSAGE_BYTES} bytes")
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError(BAD_MESSAGE, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(BAD_MESSAGE, "a node message is a JSON object")
    try:
        if "event" in message:
            event = Event.model_validate(message)
            if event.event == "offer" and event.offer is None:
                raise WireError(BAD_MESSAGE, "an offer event carries an offer")
            if event.event == "gone" and event.reason is None:
                raise WireError(BAD_MESSAGE, "a gone event carries a reason")
            return event
        reply = Reply.model_validate(message)
    except ValidationError as exc:
        raise WireError(BAD_MESSAGE, _describe(exc)) from None
    if not reply.ok and reply.error is None:
        raise WireError(BAD_MESSAGE, "a failed reply carries an error")
    return reply


def _size(data: str | bytes) -> int:
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def _code_for(exc: ValidationError) -> str:
    codes = {
        FIELD_CODES.get(str(error["loc"][0]) if error["loc"] else "", BAD_ARGS)
        for error in exc.errors()
    }
    return codes.pop() if len(codes) == 1 else BAD_ARGS


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)

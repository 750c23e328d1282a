"""Text chat in a call, end-to-end encrypted: the server relays ciphertext only (issue 18).

Every message is sealed in the sender's browser with the call keys of the document exchange
(docs/document-protocol.md §8: a random message key under AES-GCM, wrapped to each person's
attested call key by ECDH from the sender's call key), so the server sees who sent how many
bytes to whom, never the words. Nothing is stored: a message goes to the people who are in
the call's documents room now (`documents:key` put them there), and is gone with the call. A
hard-of-hearing customer who does not sign can follow the call this way.

Event (docs/signaling-events.md, "Chat"):
- `chat:send {call_id, envelope}` → `{id}`; the others get the push
  `chat:message {call_id, sender, envelope}` (the sender's participant id comes from the
  server, never from the envelope). People only: a document camera cannot chat.
- The office's clerk chats too (he is not a participant of the call): he publishes call keys
  with `documents:key` like a participant, attested with role `clerk` and participant id
  `user-<id>` (`clerk_member`), so the others seal their messages to him as well; he is never a
  recipient of documents (`documents:offer` refuses him, `chat_only`). `chat:leave {call_id}`
  (or his socket going) withdraws his keys, and the others stop sealing to him.
- `chat:history {call_id, envelope}` → `{id}`: a page of the chat so far, sealed by one who
  holds it to one person whose call key is new (a reloaded page, a late interpreter, the clerk
  opening the chat); he gets the push `chat:history {call_id, sender, envelope}` alone. The
  server relays it and keeps nothing (below, "History").
- `chat:transcript {call_id, sha256, size, messages}` (the call's expert): the SHA-256 of the
  transcript he built in his browser goes into the call's service record (`chat_transcript`,
  `transcript_field`), signed with the rest; the transcript itself never reaches the server.
"""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import delete, select

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.flow_common import conflict, forbidden, invalid, not_found, participant_id_for
from signaling.flow.leases import leases_of
from signaling.in_call.documents import (
    CallMember,
    call_member,
    documents_room,
    is_device,
    key_views,
    load_keys,
    participant_room,
)
from signaling.records.chat_transcripts import _transcript_view
from signaling.store.flow_models import Call, CallStatus, DocumentCallKey
from signaling.store.kiosk_health_models import ChatTranscript
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

# base64url without padding, as every binary field of the document protocol
B64U = r"^[A-Za-z0-9_-]+$"
# A message is at most 2,000 characters: its sealed body (UTF-8, JSON, GCM tag) fits in this.
MAX_CIPHERTEXT_CHARS = 12_000
MAX_RECIPIENTS = 8
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")

Binary = Annotated[str, StringConstraints(pattern=B64U)]


class Envelope(EventModel):
    v: Literal[1]
    suite: Literal[1, 2]
    id: Annotated[Binary, StringConstraints(min_length=22, max_length=22)]  # 16 bytes
    iv: Annotated[Binary, StringConstraints(min_length=16, max_length=16)]  # 12 bytes
    ct: Annotated[Binary, StringConstraints(min_length=22, max_length=MAX_CIPHERTEXT_CHARS)]
    # recipient participant id -> wrapped message key (12-byte IV + 32-byte key + 16-byte tag)
    keys: dict[str, Annotated[Binary, StringConstraints(min_length=80, max_length=80)]] = Field(
        min_length=1, max_length=MAX_RECIPIENTS
    )


class ChatSend(EventModel):
    call_id: DbId
    envelope: Envelope


# The attested role of the office's clerk in a call's key list: he reads and writes the chat,
# never receives documents (signaling/in_call/documents.py refuses him as a recipient).
CLERK_ROLE = "clerk"


async def clerk_member(services: Services, call_id: int, principal: Principal) -> CallMember:
    """The office's clerk in an active call of his office, as the chat knows him."""
    async with services.sessions() as session:
        call = await session.get(Call, call_id, populate_existing=True)
    if call is None:
        raise not_found(f"no call {call_id}")
    if principal.office_id is None or principal.office_id != call.office_id:
        raise forbidden(f"call {call_id} is not at your office", "other_office")
    if call.status != CallStatus.ACTIVE:
        raise conflict(f"call {call_id} has ended", "call_ended")
    return CallMember(participant_id_for("user", principal.id, ""), "user", principal.id,
                      CLERK_ROLE, principal.name)


async def _member(ctx: EventContext, call_id: int) -> CallMember:
    if ctx.principal.role == Role.CLERK:
        return await clerk_member(ctx.services, call_id, ctx.principal)
    return await call_member(ctx.services, call_id, ctx.principal, "kiosk")


@on_event(
    "chat:send", ChatSend,
    roles={Role.ENDPOINT, Role.EXPERT, Role.INTERPRETER, Role.CUSTOMER, Role.CLERK},
)
async def send_message(ctx: EventContext, data: ChatSend) -> dict[str, Any]:
    """Relay a sealed message to the call's people; the server learns nothing of its text."""
    for pid in data.envelope.keys:
        if not PARTICIPANT_ID.match(pid):
            raise invalid("a recipient is not a participant id", "bad_recipient")
    member = await _member(ctx, data.call_id)
    if is_device(member.role):
        raise forbidden("a device does not chat", "device")
    if member.participant_id in data.envelope.keys:
        raise invalid("a message is not sealed to its own sender", "bad_recipient")
    await ctx.services.sio.emit(
        "chat:message",
        {
            "call_id": data.call_id,
            "sender": member.participant_id,
            "envelope": data.envelope.model_dump(),
        },
        room=documents_room(data.call_id),
        skip_sid=ctx.sid,
    )
    return {"id": data.envelope.id}


# --- history for a new key ---------------------------------------------------------------------
#
# A page that reloads makes a new call key and has lost the chat; an interpreter or the clerk
# who comes later never had it. The messages cannot be sealed to him again by their senders
# alone (a reloaded expert's own messages are gone with his old key, and a sender may have
# left), and the server cannot help: it holds no key, and ciphertext kept for the call's
# duration would be sealed to keys that are gone. So the people who hold the chat send it to
# the new key, sealed end to end (docs/document-protocol.md §8, "History"), and the server
# stores nothing, during the call or after.
#
# Who answers: every holder, and the new key de-duplicates by message id. Not the kiosk
# alone, though it is there all call: it reloads too (then it is the one in need), a customer
# at home has no kiosk, and with every holder answering a page that misattributes a message
# disagrees with the others' copies, which the receiver shows (a single forwarder would be
# believed blindly). A call has a handful of people, so the copies cost little.

# A page's sealed body is at most 32 KiB (chat.js packs messages into pages): its base64url
# ciphertext fits in one event under max_message_bytes (64 KiB by default).
MAX_HISTORY_CIPHERTEXT_CHARS = 44_000


class HistoryEnvelope(Envelope):
    """The §8 envelope of a history page: a larger body, sealed to one person."""

    ct: Annotated[
        Binary, StringConstraints(min_length=22, max_length=MAX_HISTORY_CIPHERTEXT_CHARS)
    ]
    # sealed to one person only: the one whose key is new
    keys: dict[str, Annotated[Binary, StringConstraints(min_length=80, max_length=80)]] = Field(
        min_length=1, max_length=1
    )


class ChatHistory(EventModel):
    call_id: DbId
    envelope: HistoryEnvelope


@on_event(
    "chat:history", ChatHistory,
    roles={Role.ENDPOINT, Role.EXPERT, Role.INTERPRETER, Role.CUSTOMER, Role.CLERK},
)
async def send_history(ctx: EventContext, data: ChatHistory) -> dict[str, Any]:
    """Relay a sealed page of the chat's history to the one person it is sealed to."""
    [recipient] = data.envelope.keys
    if not PARTICIPANT_ID.match(recipient):
        raise invalid("the recipient is not a participant id", "bad_recipient")
    member = await _member(ctx, data.call_id)
    if is_device(member.role):
        raise forbidden("a device does not chat", "device")
    if recipient == member.participant_id:
        raise invalid("a history page is not sealed to its own sender", "bad_recipient")
    async with ctx.services.sessions() as session:
        roles = set((await session.scalars(select(DocumentCallKey.role).where(
            DocumentCallKey.call_id == data.call_id,
            DocumentCallKey.participant_id == recipient,
        ))).all())
    if not roles or any(is_device(role) for role in roles):
        raise invalid(f"{recipient} holds no chat key in call {data.call_id}", "bad_recipient")
    await ctx.services.sio.emit(
        "chat:history",
        {
            "call_id": data.call_id,
            "sender": member.participant_id,
            "envelope": data.envelope.model_dump(),
        },
        room=participant_room(data.call_id, recipient),
        skip_sid=ctx.sid,
    )
    return {"id": data.envelope.id}


# --- the clerk leaves the chat -----------------------------------------------------------------


class ChatRef(EventModel):
    call_id: DbId


async def _withdraw_keys(services: Services, call_id: int, participant_id: str) -> None:
    """Remove a clerk's keys from the call and tell the others (they stop sealing to him)."""
    async with services.sessions() as session:
        await session.execute(delete(DocumentCallKey).where(
            DocumentCallKey.call_id == call_id,
            DocumentCallKey.participant_id == participant_id,
            DocumentCallKey.role == CLERK_ROLE,
        ))
        await session.commit()
        views = key_views(await load_keys(session, call_id))
    await services.sio.emit("documents:keys", {"call_id": call_id, "keys": views},
                            room=documents_room(call_id))


@on_event("chat:leave", ChatRef, roles={Role.CLERK})
async def leave_chat(ctx: EventContext, data: ChatRef) -> dict[str, Any]:
    """The clerk closes the call's chat: his keys go, and so do its pushes to this socket."""
    pid = participant_id_for("user", ctx.principal.id, "")
    with contextlib.suppress(Exception):
        await ctx.services.sio.leave_room(ctx.sid, documents_room(data.call_id))
        await ctx.services.sio.leave_room(ctx.sid, participant_room(data.call_id, pid))
    await _withdraw_keys(ctx.services, data.call_id, pid)
    return {}


async def _clerk_socket_gone(services: Services, sid: str, principal: Principal) -> None:
    """The clerk's socket went: his keys go (a reconnecting console publishes them again),
    unless another console of his is still connected, to this process or any other (the
    leases' registry). The documents' own hook may have cleared the key's sid already, hence
    `""` too."""
    if principal.role != Role.CLERK or services.connections.is_online(principal):
        return
    leases = leases_of(services)
    if leases is not None and await leases.held_anywhere(principal):
        return
    pid = participant_id_for("user", principal.id, "")
    async with services.sessions() as session:
        calls = (await session.scalars(select(DocumentCallKey.call_id).where(
            DocumentCallKey.participant_id == pid, DocumentCallKey.role == CLERK_ROLE,
            DocumentCallKey.sid.in_([sid, ""])))).all()
    for call_id in set(calls):
        await _withdraw_keys(services, call_id, pid)


# --- the transcript in the service record ------------------------------------------------------


class TranscriptPayload(EventModel):
    call_id: DbId
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, le=50_000_000)
    messages: int = Field(gt=0, le=100_000)


@on_event("chat:transcript", TranscriptPayload, roles={Role.EXPERT})
async def attach_transcript(ctx: EventContext, data: TranscriptPayload) -> dict[str, Any]:
    """The call's expert attaches his chat transcript's hash to the call's service record
    (again with a newer transcript, until the record is filed)."""
    async with ctx.services.sessions() as session:
        call = await session.get(Call, data.call_id, populate_existing=True)
        if call is None:
            raise not_found(f"no call {data.call_id}")
        if call.expert_id != ctx.principal.id:
            raise forbidden(f"call {data.call_id} is not yours", "not_your_call")
        if call.record_seq is not None:
            raise conflict("the record of this call was already filed", "already_filed")
        row = await session.get(ChatTranscript, data.call_id)
        if row is None:
            row = ChatTranscript(call_id=data.call_id)
            session.add(row)
        row.sha256, row.size, row.messages = data.sha256, data.size, data.messages
        row.attached_by, row.attached_at = ctx.principal.id, utcnow()
        await session.commit()
        view = _transcript_view(row)
    return {"transcript": view}


def setup(_app: Any, services: Services) -> None:
    services.connections.on_disconnect(_clerk_socket_gone)

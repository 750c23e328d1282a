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
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from signaling.documents import call_member, documents_room, is_device
from signaling.flow_common import forbidden, invalid
from signaling.protocol import EventContext, EventModel, Role, on_event

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
    call_id: int = Field(gt=0)
    envelope: Envelope


@on_event("chat:send", ChatSend, roles={Role.ENDPOINT, Role.EXPERT, Role.INTERPRETER})
async def send_message(ctx: EventContext, data: ChatSend) -> dict[str, Any]:
    """Relay a sealed message to the call's people; the server learns nothing of its text."""
    for pid in data.envelope.keys:
        if not PARTICIPANT_ID.match(pid):
            raise invalid("a recipient is not a participant id", "bad_recipient")
    member = await call_member(ctx.services, data.call_id, ctx.principal, "kiosk")
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

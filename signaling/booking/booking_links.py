"""Manage links `/booking/<token>` in every booking message (issue 17).

The booking's own token goes out once, in the answer to the booking request (the page right
after booking shows its link), while the appointment keeps only its SHA-256
(`appointments.manage_token_hash`), so no message can rebuild that link. Each message that
carries a manage link (the confirmation, a reminder, a move) gets a fresh token instead, made
when it is sent (signaling/booking/booking_outbox.py): `issue` keeps only its SHA-256 in
`booking_links`, and `appointment_for` finds the booking from any of its live tokens
(signaling/booking/booking.py `by_token` asks here when the appointment's own hash does not
match). So no outbox row waits with a token in it.

Why fresh tokens and not the first token kept encrypted under a server key: the database then
still holds nothing that opens a booking, and there is no key to generate, share between the
signaling processes, keep out of backups and rotate (rotating it would break every link
already sent). A stolen copy of the database yields hashes of 192-bit random tokens, as for
the first token and the join links (signaling/flow/join_tokens.py). The price is one small row per
message sent (a handful per booking), deleted with the appointment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.booking.booking import new_manage_token, token_hash
from signaling.store.booking_models import BookingLink
from signaling.store.flow_models import Appointment


async def issue(session: AsyncSession, appointment_id: int, now: datetime) -> str:
    """A fresh token for the appointment's manage link (added to `session`; the caller
    commits before the link leaves the server)."""
    token = new_manage_token()
    session.add(
        BookingLink(token_hash=token_hash(token), appointment_id=appointment_id, created_at=now)
    )
    await session.flush()
    return token


async def appointment_for(session: AsyncSession, token: str) -> Appointment | None:
    """The appointment whose message carried this token, or None."""
    found = await session.execute(
        select(Appointment)
        .join(BookingLink, BookingLink.appointment_id == Appointment.id)
        .where(BookingLink.token_hash == token_hash(token))
    )
    return found.scalars().first()


__all__ = ["appointment_for", "issue"]

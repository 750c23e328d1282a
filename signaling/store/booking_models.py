"""Tables of booking (issue 17): when experts take booked appointments, the slot length of each
authority, and the outbox of confirmations and reminders. Created by
`signaling/migrations/versions/0010_bookings.py` (which also adds the booking columns of
`appointments`, see `flow_models.Appointment`); keep the two in step. The manage links of later
messages (`booking_links`) come with 0017_booking_links.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime, utcnow
from signaling.store import flow_models as _flow_models  # noqa: F401  # the tables our keys refer to


class ExpertAvailability(Base):
    """When an expert takes booked appointments of one authority: a weekly pattern in the
    service-hours syntax (signaling/directory/service_hours.py), Helsinki wall-clock time; closed on
    Finnish public holidays."""

    __tablename__ = "expert_availability"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    # JSON list of normalised weekly specs ("mon-thu 09:00-12:00").
    weekly: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BookingSlotLength(Base):
    """An authority's slot length in minutes (missing: `booking_slot_minutes`)."""

    __tablename__ = "booking_slot_lengths"

    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    minutes: Mapped[int] = mapped_column(Integer)


class BookingMessage(Base):
    """One message to a booked customer (e-mail or SMS), sent by whichever process claims it.

    `(appointment_id, kind, channel, starts_at)` is unique, so a reminder for one booked time is
    queued once however many processes sweep; a process claims a row with a conditional UPDATE
    (`pending` → `sending`) before it sends, so it is sent once. A failed send goes back to
    `pending` with a later `next_attempt_at`, and to `failed` after `booking_send_attempts`.
    """

    __tablename__ = "booking_messages"
    __table_args__ = (
        UniqueConstraint(
            "appointment_id", "kind", "channel", "starts_at", name="uq_booking_messages_once"
        ),
        Index("ix_booking_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    # "confirmation", "reminder_24h" (the hours before), "cancelled", "rebooked"
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(8))  # "email" | "sms"
    # The booked time the message is about (a rebooked slot gets its own reminders).
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Written only by releases before migration 0019_outbox_tokens (which erased it): the link
    # token is now made at send time and only its hash kept (signaling/booking/booking_links.py).
    # Kept, always empty, so that an older process still running during a rolling upgrade can
    # queue its messages; to be dropped in a later migration.
    link_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BookingLink(Base):
    """A manage link `/booking/<token>` handed out in a message after the booking's own (a
    reminder, a move): only the token's SHA-256, as for the booking's first token
    (`appointments.manage_token_hash`). Issued and looked up by signaling/booking/booking_links.py;
    created by `signaling/migrations/versions/0017_booking_links.py`."""

    __tablename__ = "booking_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""Tables of the customer at home (issue 18). Created by
`signaling/migrations/versions/0011_remote_join.py`; keep the two in step.

`join_tokens`: the links sent to a customer of a remote appointment. Only the SHA-256 of a
token is stored (a copy of the database holds no usable link); a token is valid between
`valid_from` and `valid_until` and is spent (`used_at`) when the customer enters the waiting
room. `remote_guests`: the one customer at home of an appointment once he has entered: the
SHA-256 of his browser session cookie (a reload in the same browser keeps working, another
browser does not), what the identity step learned of him, whether the expert admitted him,
and the seat of the browser tab in the call (0016_remote_rejoin), and the last result of his
device check (0018_join_check).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime
from signaling.store import flow_models as _flow_models  # noqa: F401  # the tables our keys refer to


class JoinToken(Base):
    """One link `/join/<token>` of a remote appointment."""

    __tablename__ = "join_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RemoteGuest(Base):
    """The customer at home of one appointment, from the moment he entered the waiting room."""

    __tablename__ = "remote_guests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), unique=True
    )
    token_id: Mapped[int] = mapped_column(ForeignKey("join_tokens.id", ondelete="CASCADE"))
    # SHA-256 of the HttpOnly session cookie of the browser that spent the token.
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The browser session (and its socket) ends at this time at the latest.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The identity step's result: provider name ("" = none) and its subject, if any.
    identity_provider: Mapped[str] = mapped_column(String(32), default="")
    identity_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Set while he is let into the call (None while waiting, also after he dropped out:
    # then `call_id` is still his call, and the expert lets him in again).
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    admitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # SHA-256 of the seat: the credential of the one browser tab that is in the call (its
    # sessionStorage), so that a reload of that tab goes back into the call and any other
    # tab goes to the waiting room. None until a tab takes it after the admission.
    seat_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seat_taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last result of his device check, as his page reported it: JSON of fixed codes only
    # (remote_customer.py `JoinCheckPayload`, < 200 bytes), so the expert sees before admitting
    # him whether his camera, sound or network may be trouble. None until reported.
    join_check: Mapped[str | None] = mapped_column(String(500), nullable=True)
    join_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

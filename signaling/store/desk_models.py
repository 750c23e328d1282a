"""Tables of the customer's receipt and of the kiosk's feedback question (issue 17). Created by
`signaling/migrations/versions/0009_desk_receipts_feedback.py`; keep the two in step.

The clerk's desk entries need no table of their own: they are entries of the service log
(kind "desk", signaling/records/desk_services.py).

Feedback is anonymous by construction: `feedback_tallies` holds counts per office, authority,
local hour, answer and reason, never one row per answer, so no row (or row order) can be
matched to a call. `feedback_claims` only stops a kiosk from answering twice for one call; its
rows are dropped once the call's answer window has passed (signaling/records/feedback.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime
from signaling.store import models as _identity_models  # noqa: F401  # the tables our keys refer to


class Receipt(Base):
    """A customer's receipt of one call: its short code and the log entry that records it."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Eight characters of RECEIPT_ALPHABET (signaling/records/receipts.py), stored without the dash.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    # One receipt per call; a call row is never deleted (history), so no foreign key.
    call_id: Mapped[int] = mapped_column(Integer, unique=True)
    # The "receipt" entry of the service log written when the receipt was issued.
    log_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedbackTally(Base):
    """How many customers gave one answer (and reason) at one office, for one authority, in one
    hour (Finnish local time, "2026-11-05T14")."""

    __tablename__ = "feedback_tallies"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[str] = mapped_column(String(13), primary_key=True)
    answer: Mapped[str] = mapped_column(String(8), primary_key=True)  # good | neutral | bad
    # waiting | connection | service | other; "" when the customer gave no reason.
    reason: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FeedbackClaim(Base):
    """A call whose kiosk has already answered the feedback question (kept only while the
    call's answer window is open)."""

    __tablename__ = "feedback_claims"

    call_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)

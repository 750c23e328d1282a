"""Tables of the interpreters reserved for booked appointments (issue 17): one row per booked
appointment with an interpreting need, and the 5-minute cells of an interpreter's time a live
reservation covers (their primary key keeps two reservations of one interpreter from
overlapping, whichever process books). Rules: signaling/flow/interpreter_reservations.py.
Created by migration 0014_interpreter_reservations.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime, utcnow
from signaling.store import flow_models as _flow_models  # noqa: F401  # the tables our keys refer to


class InterpreterReservation(Base):
    """One booked appointment's interpreter (at most one per appointment)."""

    __tablename__ = "interpreter_reservations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), unique=True
    )
    interpreter_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    language: Mapped[str] = mapped_column(String(3))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the booking was cancelled (or found no longer live); the cells are gone then.
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InterpreterReservationCell(Base):
    """A 5-minute cell of an interpreter's time taken by a reservation: the primary key is what
    keeps two reservations of one interpreter from overlapping."""

    __tablename__ = "interpreter_reservation_cells"

    interpreter_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    cell_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    reservation_id: Mapped[int] = mapped_column(
        ForeignKey(
            "interpreter_reservations.id",
            ondelete="CASCADE",
            # The convention's name is longer than PostgreSQL's 63 characters.
            name="fk_interpreter_reservation_cells_reservation",
        ),
        index=True,
    )

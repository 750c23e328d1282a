"""Tables of what an office offers (issue 17): its catalogue of authorities and languages, and
each authority's service hours there. Created by
`signaling/migrations/versions/0008_service_hours.py`; keep the two in step.

No rows mean the old behaviour: an office without catalogue rows offers every enabled
authority in every language, an (office, authority) without an hours row is open at all times.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime, utcnow
from signaling.store import models as _identity_models  # noqa: F401  # the tables our keys refer to


class OfficeCatalogueEntry(Base):
    """One authority the office offers; `languages` the ISO 639-3 codes it is offered in,
    comma-separated ("" = any language)."""

    __tablename__ = "office_catalogue"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    languages: Mapped[str] = mapped_column(String(200), default="")


class ServiceHoursRule(Base):
    """An authority's weekly hours at an office (signaling/directory/service_hours.py syntax)."""

    __tablename__ = "service_hours"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    # JSON list of weekly specs, normalised ("mon-thu 09:00-15:00").
    weekly: Mapped[str] = mapped_column(Text, default="[]")
    # Closed on Finnish public holidays unless a dated exception says otherwise.
    public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceHoursDate(Base):
    """A dated exception to the weekly hours: other hours that day, or closed ("")."""

    __tablename__ = "service_hours_dates"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    authority_id: Mapped[int] = mapped_column(
        ForeignKey("authorities.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, local date
    intervals: Mapped[str] = mapped_column(String(200), default="")

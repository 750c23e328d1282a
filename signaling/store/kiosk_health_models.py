"""Tables of the kiosk's device self-test and of the chat transcripts attached to service
records (issue 18). Created by `signaling/migrations/versions/0012_kiosk_selftest.py`; keep the
two in step.

`kiosk_self_tests`: each kiosk's latest self-test (camera, microphone, speaker, relay), one row
per kiosk, replaced by every report (signaling/flow/kiosk_health.py), so the administrator's pages
and the office's clerks see it whichever signaling process the kiosk talks to.
`chat_transcripts`: the SHA-256 of the chat transcript the expert attached to a call's service
record (signaling/in_call/chat.py); the transcript itself never reaches the server.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base, UTCDateTime
from signaling.store import models as _identity_models  # noqa: F401  # the tables our keys refer to


class KioskSelfTest(Base):
    """A kiosk's latest device self-test."""

    __tablename__ = "kiosk_self_tests"

    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    # JSON {check: {status, code, ms}} for camera, microphone, speaker, relay (< 1 kB).
    results: Mapped[str] = mapped_column(String(2000))
    trigger: Mapped[str] = mapped_column(String(16))  # startup | hourly | manual
    # When the kiosk's checks started failing (kept while they keep failing), else None.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChatTranscript(Base):
    """The chat transcript's hash that goes into a call's service record."""

    __tablename__ = "chat_transcripts"

    # A call row is never deleted (history), so no foreign key (as for receipts).
    call_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)
    attached_by: Mapped[int] = mapped_column(Integer)  # the expert's user id
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""The desk services an office's clerk may record (issue 17). Created by
`signaling/migrations/versions/0013_office_interpreting.py`; keep the two in step.

No rows for an office: its clerk records from the global list (signaling/records/desk_services.py
DESK_SERVICES), as before. The same migration adds `tickets.interpreting` (the customer's
interpreting need, signaling/store/flow_models.py).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from signaling.db import Base
from signaling.store import models as _identity_models  # noqa: F401  # the tables our keys refer to


class OfficeDeskService(Base):
    """One desk service (a DESK_SERVICES code) the office's clerk may record."""

    __tablename__ = "office_desk_services"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(32), primary_key=True)

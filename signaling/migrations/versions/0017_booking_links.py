"""Manage links in every booking message, not only the confirmation (issue 17).

`booking_links`: the SHA-256 of each `/booking/<token>` token handed out in a message after
the booking's own (a reminder, a move), with its appointment. The booking's first token stays
in `appointments.manage_token_hash`. Model: signaling/store/booking_models.py `BookingLink`; code:
signaling/booking/booking_links.py.

Revision ID: 0017_booking_links
Revises: 0016_remote_rejoin
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017_booking_links"
down_revision: str | None = "0016_remote_rejoin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_links",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_booking_links"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_booking_links_appointment_id_appointments",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_booking_links_appointment_id", "booking_links", ["appointment_id"])


def downgrade() -> None:
    op.drop_index("ix_booking_links_appointment_id", table_name="booking_links")
    op.drop_table("booking_links")

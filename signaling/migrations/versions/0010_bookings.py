"""Bookings by customers and the service secretary, reminders (issue 17).

`expert_availability`: when each expert takes booked appointments of an authority (weekly
specs). `booking_slot_lengths`: an authority's slot length. `booking_messages`: the outbox of
confirmations and reminders (e-mail, SMS), sent once by whichever process claims a row.
`appointments` gains the booking's end, who booked, the customer's contact and message
language, `remote`, the interpreting language, the hash of the manage link's token, the
rebook counter, and a partial unique index: one live appointment per expert per start time.
Models: signaling/store/booking_models.py and flow_models.Appointment.

Revision ID: 0010_bookings
Revises: 0009_desk_receipts_feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010_bookings"
down_revision: str | None = "0009_desk_receipts_feedback"
branch_labels = None
depends_on = None

LIVE = "status IN ('booked', 'checked_in')"


def upgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("booked_via", sa.String(16), nullable=True))
        batch.add_column(sa.Column("contact_email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("contact_phone", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("message_language", sa.String(2), nullable=False, server_default="fi")
        )
        batch.add_column(
            sa.Column("remote", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
        batch.add_column(sa.Column("interpreting", sa.String(3), nullable=True))
        batch.add_column(sa.Column("manage_token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
        batch.create_unique_constraint("uq_appointments_manage_token_hash", ["manage_token_hash"])
    op.create_index(
        "uq_appointments_expert_live_slot",
        "appointments",
        ["expert_id", "starts_at"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.create_table(
        "expert_availability",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("weekly", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "authority_id", name="pk_expert_availability"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_expert_availability_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name="fk_expert_availability_authority_id_authorities",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "booking_slot_lengths",
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("authority_id", name="pk_booking_slot_lengths"),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name="fk_booking_slot_lengths_authority_id_authorities",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "booking_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link_token", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_booking_messages"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_booking_messages_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "appointment_id", "kind", "channel", "starts_at", name="uq_booking_messages_once"
        ),
    )
    op.create_index("ix_booking_messages_appointment_id", "booking_messages", ["appointment_id"])
    op.create_index("ix_booking_messages_due", "booking_messages", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("booking_messages")
    op.drop_table("booking_slot_lengths")
    op.drop_table("expert_availability")
    op.drop_index("uq_appointments_expert_live_slot", table_name="appointments")
    with op.batch_alter_table("appointments") as batch:
        batch.drop_constraint("uq_appointments_manage_token_hash", type_="unique")
        for column in (
            "sequence",
            "manage_token_hash",
            "interpreting",
            "remote",
            "message_language",
            "contact_phone",
            "contact_email",
            "booked_via",
            "ends_at",
        ):
            batch.drop_column(column)

"""Remote appointments: join tokens for the customer at home (issue 18).

`join_tokens`: links `/join/<token>` of remote appointments (SHA-256 of the token only, its
validity window, when it was spent). `remote_guests`: the customer at home of an appointment
once he entered the waiting room (SHA-256 of his browser session, identity step result,
admission). Models: signaling/store/remote_models.py. The appointment's `remote` flag comes from
0010_bookings.

Revision ID: 0011_remote_join
Revises: 0010_bookings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011_remote_join"
down_revision: str | None = "0010_bookings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "join_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_join_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_join_tokens_token_hash"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_join_tokens_appointment_id_appointments",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_join_tokens_appointment_id", "join_tokens", ["appointment_id"])
    op.create_table(
        "remote_guests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("identity_provider", sa.String(32), nullable=False),
        sa.Column("identity_subject", sa.String(255), nullable=True),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("admitted_by", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_remote_guests"),
        sa.UniqueConstraint("appointment_id", name="uq_remote_guests_appointment_id"),
        sa.UniqueConstraint("session_hash", name="uq_remote_guests_session_hash"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_remote_guests_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["join_tokens.id"],
            name="fk_remote_guests_token_id_join_tokens",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["admitted_by"],
            ["users.id"],
            name="fk_remote_guests_admitted_by_users",
            ondelete="SET NULL",
        ),
    )


def downgrade() -> None:
    op.drop_table("remote_guests")
    op.drop_index("ix_join_tokens_appointment_id", table_name="join_tokens")
    op.drop_table("join_tokens")

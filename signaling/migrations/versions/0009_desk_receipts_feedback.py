"""The customer's receipt and the kiosk's feedback question (issue 17).

`receipts`: one per call, its short code and the service-log entry ("receipt") that records
it. `feedback_tallies`: anonymous counts of answers per office, authority, local hour, answer
and reason (no row per answer, no call or ticket). `feedback_claims`: calls whose kiosk has
already answered, kept only while the answer window is open. The clerk's desk entries are
service-log entries and need no table. Models: signaling/store/desk_models.py.

Revision ID: 0009_desk_receipts_feedback
Revises: 0008_service_hours
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009_desk_receipts_feedback"
down_revision: str | None = "0008_service_hours"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("log_seq", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.UniqueConstraint("code", name="uq_receipts_code"),
        sa.UniqueConstraint("call_id", name="uq_receipts_call_id"),
    )
    op.create_table(
        "feedback_tallies",
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.String(13), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "office_id", "authority_id", "hour", "answer", "reason", name="pk_feedback_tallies"
        ),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["offices.id"],
            name="fk_feedback_tallies_office_id_offices",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name="fk_feedback_tallies_authority_id_authorities",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "feedback_claims",
        sa.Column("call_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_feedback_claims"),
    )


def downgrade() -> None:
    op.drop_table("feedback_claims")
    op.drop_table("feedback_tallies")
    op.drop_table("receipts")

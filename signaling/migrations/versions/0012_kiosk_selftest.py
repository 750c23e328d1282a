"""Kiosk device self-test results and chat transcripts (issue 18).

`kiosk_self_tests`: each kiosk's latest self-test of its camera, microphone, speaker and the
relay (one row per kiosk). `chat_transcripts`: the SHA-256, size and message count of the chat
transcript an expert attached to a call's service record (the transcript stays with him).
Models: signaling/store/kiosk_health_models.py.

Revision ID: 0012_kiosk_selftest
Revises: 0011_remote_join
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012_kiosk_selftest"
down_revision: str | None = "0011_remote_join"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kiosk_self_tests",
        sa.Column("endpoint_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("results", sa.String(2000), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_kiosk_self_tests"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_kiosk_self_tests_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "chat_transcripts",
        sa.Column("call_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("attached_by", sa.Integer(), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_chat_transcripts"),
    )


def downgrade() -> None:
    op.drop_table("chat_transcripts")
    op.drop_table("kiosk_self_tests")

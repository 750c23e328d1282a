"""Documents in the database: call keys, transfers, recipients and ciphertext chunks.

Call keys and transfers lived in one process's memory, so with several signaling processes one
process's `documents:keys` broadcast carried only its own participants and a transfer offered on
one process was unknown to the others (issue 14). Keys, transfers and recipients are rows now;
with several processes (redis_url set) the ciphertext is in `document_chunks` (transfer_id, seq,
bytes), which PostgreSQL and SQLite both hold. Everything goes with its call (`CASCADE`).

Revision ID: 0006_document_exchange
Revises: 0005_secretary_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_document_exchange"
down_revision: str | None = "0005_secretary_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_call_keys",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(100), nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "participant_id", "suite", name="pk_document_call_keys"),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name="fk_document_call_keys_call_id_calls",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "document_transfers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("sender_kind", sa.String(16), nullable=False),
        sa.Column("sender_principal_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.Integer(), nullable=False),
        sa.Column("ciphertext_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("upload_token", sa.String(64), nullable=False),
        sa.Column("received_bytes", sa.Integer(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_document_transfers"),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name="fk_document_transfers_call_id_calls",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_document_transfers_call_id", "document_transfers", ["call_id"])
    op.create_index("ix_document_transfers_created", "document_transfers", ["created"])
    op.create_table(
        "document_recipients",
        sa.Column("transfer_id", sa.String(32), nullable=False),
        sa.Column("participant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("download_token", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("transfer_id", "participant_id", name="pk_document_recipients"),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["document_transfers.id"],
            name="fk_document_recipients_transfer_id_document_transfers",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "document_chunks",
        sa.Column("transfer_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id", "seq", name="pk_document_chunks"),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["document_transfers.id"],
            name="fk_document_chunks_transfer_id_document_transfers",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("document_chunks")
    op.drop_table("document_recipients")
    op.drop_index("ix_document_transfers_created", table_name="document_transfers")
    op.drop_index("ix_document_transfers_call_id", table_name="document_transfers")
    op.drop_table("document_transfers")
    op.drop_table("document_call_keys")

"""A recipient's refusal reason is kept with his answer.

A sender who is disconnected when a recipient answers misses the `documents:delivered` push
(issue 14: kill -9 of his signaling process). The answered transfer's rows now stay (its
ciphertext is deleted at once, as before) until the sender's next `documents:key` replays the
verdicts, the call ends or the retention time passes; the replay needs the reason too.

Revision ID: 0007_document_reasons
Revises: 0006_document_exchange
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_document_reasons"
down_revision: str | None = "0006_document_exchange"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document_recipients") as batch:
        batch.add_column(sa.Column("reason", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_recipients") as batch:
        batch.drop_column("reason")

"""The expert sees the customer at home's device check (issue 18 follow-up).

`remote_guests.join_check`: the last result of the device check on the `/join` page (camera,
microphone, speaker, relay, TURN: fixed codes only, as JSON), and `join_check_at`: when his
page reported it. Models: signaling/store/remote_models.py; code:
signaling/flow/remote_customer.py `remote:check`.

Revision ID: 0018_join_check
Revises: 0017_booking_links
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018_join_check"
down_revision: str | None = "0017_booking_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("remote_guests") as batch:
        batch.add_column(sa.Column("join_check", sa.String(500), nullable=True))
        batch.add_column(sa.Column("join_check_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_guests") as batch:
        batch.drop_column("join_check_at")
        batch.drop_column("join_check")

"""The customer at home gets back into his call (issue 18 follow-up).

`remote_guests.seat_hash` / `seat_taken_at`: the SHA-256 of the seat, the credential the one
browser tab in the call keeps in its sessionStorage (a reload of that tab goes back into the
call; another tab, or the link opened again, goes to the waiting room), and when a tab took
it. `admitted_at` now goes back to NULL when he drops out, while `call_id` keeps his call, so
the expert can let him in again. Models: signaling/store/remote_models.py.

Revision ID: 0016_remote_rejoin
Revises: 0015_shared_flow_state
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016_remote_rejoin"
down_revision: str | None = "0015_shared_flow_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("remote_guests") as batch:
        batch.add_column(sa.Column("seat_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("seat_taken_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_guests") as batch:
        batch.drop_column("seat_taken_at")
        batch.drop_column("seat_hash")

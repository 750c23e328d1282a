"""Call lifecycle: when and why a participant went away, and a call's one requeued ticket.

`call_participants.disconnected_at` / `gone_reason` are set when a participant's relay session
or socket goes away and cleared when he joins again; the call watchdog
(signaling/flow/call_watch.py) reads them from the database, so it works after a restart and with
several processes. `calls.requeue_ticket_id` is the ticket a kiosk took with `ticket:requeue`
after the call ended with `expert_lost` (at most one per call).

Revision ID: 0003_call_lifecycle
Revises: 0002_service_flow
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_call_lifecycle"
down_revision: str | None = "0002_service_flow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_participants") as batch:
        batch.add_column(sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("gone_reason", sa.String(32), nullable=True))
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("requeue_ticket_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("requeue_ticket_id")
    with op.batch_alter_table("call_participants") as batch:
        batch.drop_column("gone_reason")
        batch.drop_column("disconnected_at")

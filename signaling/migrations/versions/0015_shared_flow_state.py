"""Flow state that every signaling process must see: the widening deadline of an interpreter
ring (issue 17's reserved interpreter goes first).

`interpreter_requests.widen_at`: when a ring that alerted the reserved interpreter alone is
widened to every interpreter of the language; NULL once widened (or when the ring had no head
start). A sweep on every process widens the due rings, each claimed by a conditional UPDATE, so
the ring widens once even if the process that opened it died. Model: signaling/store/flow_models.py
`InterpreterRequest`; rules: signaling/flow/interpreter_reservations.py.

Revision ID: 0015_shared_flow_state
Revises: 0014_interpreter_reservations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015_shared_flow_state"
down_revision: str | None = "0014_interpreter_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interpreter_requests") as batch:
        batch.add_column(sa.Column("widen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_interpreter_requests_widen_at", "interpreter_requests", ["widen_at"])


def downgrade() -> None:
    op.drop_index("ix_interpreter_requests_widen_at", table_name="interpreter_requests")
    with op.batch_alter_table("interpreter_requests") as batch:
        batch.drop_column("widen_at")

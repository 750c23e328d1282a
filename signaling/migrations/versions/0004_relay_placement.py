"""Relay placement: the relay node each call is on, and an office's relay site.

`calls.relay_node` names the relay node the call was placed on when it was created ("local"
for the in-process relay of a single-process deployment); `relay_epoch` grows by one each time
the call moves to another node (failover or drain), so a client can tell a stale move from
a new one. `offices.relay_site` is an optional site/region label: a call from that office is
placed on a node with the same label when one is live.

Revision ID: 0004_relay_placement
Revises: 0003_call_lifecycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_relay_placement"
down_revision: str | None = "0003_call_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("relay_node", sa.String(128), nullable=False, server_default="local")
        )
        batch.add_column(
            sa.Column("relay_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("offices") as batch:
        batch.add_column(sa.Column("relay_site", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offices") as batch:
        batch.drop_column("relay_site")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("relay_epoch")
        batch.drop_column("relay_node")
